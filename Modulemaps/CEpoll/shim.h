#ifndef SWIFT_FCGI_CEPOLL_SHIM_H
#define SWIFT_FCGI_CEPOLL_SHIM_H
// Linux calls that Swift's Glibc module leaves out, for Sources/FastCGI/Internals:
// epoll and eventfd (the connection poller and the wake-ups), accept4, and
// O_TMPFILE (spill files).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

// accept4(2) is declared by glibc only with _GNU_SOURCE, which the Glibc module is
// built without: the system call itself. Returns -1 with errno set on failure.
static inline int swift_fcgi_accept4(int fd, void *address, void *length, int flags) {
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}

// O_TMPFILE is defined by glibc only with _GNU_SOURCE, and its value differs by
// architecture (it includes O_DIRECTORY): opens an unnamed file in `directory`.
#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif
static inline int swift_fcgi_open_tmpfile(const char *directory) {
    return (int)syscall(SYS_openat, AT_FDCWD, directory, __O_TMPFILE | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0600);
}
#endif
