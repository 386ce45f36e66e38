#ifndef SWIFT_FCGI_CEPOLL_SHIM_H
#define SWIFT_FCGI_CEPOLL_SHIM_H
// Linux calls that Swift's Glibc module leaves out, for Sources/FastCGI/Internals:
// epoll and eventfd (the connection poller and the wake-ups), and accept4.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

// accept4(2) is declared by glibc only with _GNU_SOURCE, which the Glibc module is
// built without: the system call itself. Returns -1 with errno set on failure.
static inline int swift_fcgi_accept4(int fd, void *address, void *length, int flags) {
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}
#endif
