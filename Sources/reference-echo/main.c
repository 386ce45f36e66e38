/*
 * reference-echo: the echo contract of the Swift `echo` example, written on
 * libfcgi alone, as a C reference for the differential tests and benchmarks.
 *
 *   responder   "Content-Type: application/octet-stream\r\n\r\n" + stdin;
 *               with ECHO_PARAMS=1: "Content-Type: text/plain\r\n\r\n" + NAME=VALUE lines sorted;
 *               with ECHO_PARAM=NAME: "Content-Type: text/plain\r\n\r\n" + the value of NAME
 *               (FCGX_GetParam's answer, "(absent)" if none);
 *               with ECHO_DISCARD=1: stdin read and thrown away, "Content-Type: text/plain\r\n\r\nok\n"
 *   filter      "Content-Type: text/plain\r\n\r\n" + stdin + data
 *   authorizer  "Status: 200" + "Variable-AUTH_USER: <REMOTE_USER or anonymous>" when
 *               HTTP_AUTHORIZATION is present, else "Status: 403"
 *
 * usage: reference-echo [--bind ADDRESS] [--workers N]   (default: fd 0, 10 workers)
 */
#include <fcgiapp.h>

#define ROLE_AUTHORIZER 2 /* FCGI_AUTHORIZER (fastcgi.h is not installed by libfcgi-dev) */
#define ROLE_FILTER 3     /* FCGI_FILTER */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int listen_fd = 0;

static int compare(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    /* Sort by name: compare up to '=' as the Swift echo sorts name bytes. */
    for (;; x++, y++) {
        unsigned char cx = (*x == '=') ? 0 : (unsigned char)*x;
        unsigned char cy = (*y == '=') ? 0 : (unsigned char)*y;
        if (cx != cy || cx == 0) return (int)cx - (int)cy;
    }
}

static void copy_stream(FCGX_Stream *in, FCGX_Stream *out) {
    char buffer[65536];
    int n;
    while ((n = FCGX_GetStr(buffer, sizeof buffer, in)) > 0) FCGX_PutStr(buffer, n, out);
}

static void handle(FCGX_Request *request) {
    FCGX_Stream *out = request->out;
    if (request->role == ROLE_AUTHORIZER) {
        if (FCGX_GetParam("HTTP_AUTHORIZATION", request->envp)) {
            const char *user = FCGX_GetParam("REMOTE_USER", request->envp);
            FCGX_PutS("Status: 200\r\nVariable-AUTH_USER: ", out);
            FCGX_PutS(user ? user : "anonymous", out);
            FCGX_PutS("\r\n\r\n", out);
        } else {
            FCGX_PutS("Status: 403\r\n\r\n", out);
        }
        return;
    }
    if (request->role == ROLE_FILTER) {
        FCGX_PutS("Content-Type: text/plain\r\n\r\n", out);
        copy_stream(request->in, out);
        if (FCGX_StartFilterData(request->in) == 0) copy_stream(request->in, out);
        return;
    }
    const char *lookup = FCGX_GetParam("ECHO_PARAM", request->envp);
    if (lookup) {
        /* The value FCGX_GetParam gives for the param named by ECHO_PARAM. */
        const char *value = FCGX_GetParam(lookup, request->envp);
        FCGX_PutS("Content-Type: text/plain\r\n\r\n", out);
        FCGX_PutS(value ? value : "(absent)", out);
        return;
    }
    const char *discard = FCGX_GetParam("ECHO_DISCARD", request->envp);
    if (discard && strcmp(discard, "1") == 0) {
        /* A handler that ignores its body: libfcgi leaves unread stdin in the
           stream, so C must read it to keep the connection usable. */
        char buffer[65536];
        while (FCGX_GetStr(buffer, sizeof buffer, request->in) > 0) {}
        FCGX_PutS("Content-Type: text/plain\r\n\r\nok\n", out);
        return;
    }
    const char *flag = FCGX_GetParam("ECHO_PARAMS", request->envp);
    if (flag && strcmp(flag, "1") == 0) {
        size_t count = 0;
        while (request->envp[count]) count++;
        char **sorted = malloc((count + 1) * sizeof *sorted);
        memcpy(sorted, request->envp, (count + 1) * sizeof *sorted);
        qsort(sorted, count, sizeof *sorted, compare);
        FCGX_PutS("Content-Type: text/plain\r\n\r\n", out);
        for (size_t i = 0; i < count; i++) {
            FCGX_PutS(sorted[i], out);
            FCGX_PutS("\n", out);
        }
        free(sorted);
        return;
    }
    FCGX_PutS("Content-Type: application/octet-stream\r\n\r\n", out);
    copy_stream(request->in, out);
}

static void *worker(void *unused) {
    (void)unused;
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_fd, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        handle(&request);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int workers = 10;
    const char *bind = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: reference-echo [--bind ADDRESS] [--workers N]\n");
            return 2;
        }
    }
    if (FCGX_Init() != 0) return 1;
    if (bind) {
        if (strncmp(bind, "unix:", 5) == 0) bind += 5;
        listen_fd = FCGX_OpenSocket(bind, 128);
        if (listen_fd < 0) {
            fprintf(stderr, "reference-echo: cannot listen on %s\n", bind);
            return 1;
        }
        fprintf(stderr, "reference-echo: listening on %s\n", bind);
    }
    if (workers < 1) workers = 1;
    pthread_t *threads = calloc((size_t)workers, sizeof *threads);
    for (int i = 1; i < workers; i++) pthread_create(&threads[i], NULL, worker, NULL);
    worker(NULL);
    return 0;
}
