/*
 * hop-floor: a measuring instrument for scripts/bench, not an application.
 *
 * It answers the question "what does the protocol firewall's hop cost by itself?"
 * (SPEC §4: measure what the extra hop costs against the C reference). It serves
 * the echo contract the way swift-fcgi serves levels 0/1, minus all parsing: the
 * thread that owns the connection reads the socket, writes the bytes into a pipe,
 * libfcgi's FCGX_Accept_r reads them back from the pipe, the handler runs, and its
 * output is taken from libfcgi's buffer (emptyBuffProc) and sent to the socket
 * with END_REQUEST. The same system calls per request as swift-fcgi's inline path
 * (read socket, write pipe, read pipe, send), none of its work.
 *
 * It trusts its peer completely: it assumes every read holds exactly one whole
 * canonical request with FCGI_KEEP_CONN, as `fcgi bench -k` sends. It validates
 * nothing, so it has every libfcgi weakness the firewall exists to remove. Never
 * point anything but the benchmark at it.
 *
 * usage: hop-floor HOST:PORT   (10 threads, like reference-echo)
 */
#include <fcgiapp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd;
static __thread int current_socket;
static __thread int current_id;
static __thread unsigned char *out_start;

static void header(unsigned char *h, int type, int id, int length, int padding) {
    h[0] = 1; h[1] = (unsigned char)type; h[2] = (unsigned char)(id >> 8); h[3] = (unsigned char)id;
    h[4] = (unsigned char)(length >> 8); h[5] = (unsigned char)length; h[6] = (unsigned char)padding; h[7] = 0;
}

/* libfcgi's stdout buffer goes straight to the socket, as in swift-fcgi. */
static void send_stdout(FCGX_Stream *stream, int closing) {
    static __thread unsigned char out[8192 + 64];
    int n = (int)(stream->wrNext - out_start), length = 0;
    if (n > 0) {
        int padding = (8 - n % 8) % 8;
        header(out, 6, current_id, n, padding);
        memcpy(out + 8, out_start, (size_t)n);
        memset(out + 8 + n, 0, (size_t)padding);
        length = 8 + n + padding;
    }
    if (closing) {
        header(out + length, 6, current_id, 0, 0);   /* end of FCGI_STDOUT */
        header(out + length + 8, 3, current_id, 8, 0); /* FCGI_END_REQUEST, complete */
        memset(out + length + 16, 0, 8);
        length += 24;
    }
    if (length > 0) send(current_socket, out, (size_t)length, MSG_NOSIGNAL);
    stream->wrNext = out_start;
}

static void drop_stderr(FCGX_Stream *stream, int closing) { (void)stream; (void)closing; }

static void *worker(void *unused) {
    (void)unused;
    int hop[2];
    if (pipe(hop) != 0) exit(1);
    FCGX_Request request;
    FCGX_InitRequest(&request, -1, 0);
    request.ipcFd = hop[0];      /* libfcgi reads the pipe, never the network */
    request.keepConnection = 1;
    unsigned char *input = malloc(65536);
    char chunk[65536];
    for (;;) {
        int s = accept(listen_fd, NULL, NULL);
        if (s < 0) continue;
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        current_socket = s;
        for (;;) {
            ssize_t n = read(s, input, 65536);
            if (n < 16) break;
            current_id = (input[2] << 8) | input[3];
            if (write(hop[1], input, (size_t)n) != n) break;
            if (FCGX_Accept_r(&request) < 0) exit(1);
            out_start = request.out->wrNext;
            request.out->emptyBuffProc = send_stdout;
            request.err->emptyBuffProc = drop_stderr;
            FCGX_PutS("Content-Type: application/octet-stream\r\n\r\n", request.out);
            int k;
            while ((k = FCGX_GetStr(chunk, sizeof chunk, request.in)) > 0) FCGX_PutStr(chunk, k, request.out);
            FCGX_FClose(request.out);
        }
        close(s);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2 || FCGX_Init() != 0) {
        fprintf(stderr, "usage: hop-floor HOST:PORT\n");
        return 2;
    }
    signal(SIGTERM, SIG_DFL); /* libfcgi's handler only flags a shutdown its accept would see */
    listen_fd = FCGX_OpenSocket(argv[1], 128);
    if (listen_fd < 0) return 1;
    pthread_t thread;
    for (int i = 1; i < 10; i++) pthread_create(&thread, NULL, worker, NULL);
    worker(NULL);
    return 0;
}
