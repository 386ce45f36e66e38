#ifndef SWIFT_FCGI_CEPOLL_SHIM_H
#define SWIFT_FCGI_CEPOLL_SHIM_H
// Linux epoll and eventfd (part of glibc; Swift's Glibc module leaves them out),
// for the connection poller and the wake-ups (Sources/FastCGI/Internals).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
