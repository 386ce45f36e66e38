// An LD_PRELOAD allocation counter for scripts/bench and the allocation guard
// test: counts calls to malloc, calloc, realloc, posix_memalign,
// aligned_alloc and memalign in the whole process, and writes the count (a
// decimal number) to the file named by MALLOC_COUNT_FILE every 20 ms, from a
// thread of its own that allocates nothing. Build:
//   cc -O2 -shared -fPIC -o malloc-count.so malloc-count.c -ldl -lpthread
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong count;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

// dlsym may call calloc before real_calloc is known: serve it from here.
static char bootstrap[4096];
static size_t bootstrap_used;

static void resolve(void) {
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
}

void *malloc(size_t size) {
    if (!real_malloc) resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_malloc(size);
}

void *calloc(size_t n, size_t size) {
    if (!real_calloc) {
        size_t total = (n * size + 15) & ~(size_t)15;
        if (bootstrap_used + total > sizeof bootstrap) return NULL;
        void *p = bootstrap + bootstrap_used;
        bootstrap_used += total;
        return p;
    }
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    if (!real_realloc) resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_realloc(p, size);
}

int posix_memalign(void **p, size_t alignment, size_t size) {
    if (!real_posix_memalign) resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_posix_memalign(p, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    if (!real_aligned_alloc) resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_aligned_alloc(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    if (!real_memalign) resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_memalign(alignment, size);
}

void free(void *p) {
    static void (*real_free)(void *);
    if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return;
    if (!real_free) real_free = dlsym(RTLD_NEXT, "free");
    real_free(p);
}

static char final_path[4096], temporary_path[4096];

// Written to a temporary file and renamed over the real one, so a reader
// never sees it half written.
static void *reporter(void *unused) {
    (void)unused;
    char text[32];
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (;;) {
        int fd = open(temporary_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            unsigned long value = atomic_load_explicit(&count, memory_order_relaxed);
            int n = 0;
            char digits[24];
            do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value);
            for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
            text[n] = '\n';
            (void)!write(fd, text, (size_t)n + 1);
            close(fd);
            rename(temporary_path, final_path);
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void) {
    resolve();
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (!path) return;
    if (strlen(path) + 5 >= sizeof final_path) return;
    strcpy(final_path, path);
    strcpy(temporary_path, path);
    strcat(temporary_path, ".tmp");
    // Children the app starts (a pool's workers) inherit the variable: only
    // the process that first sees it reports.
    unsetenv("MALLOC_COUNT_FILE");
    pthread_t thread;
    pthread_create(&thread, NULL, reporter, NULL);
    pthread_detach(thread);
}
