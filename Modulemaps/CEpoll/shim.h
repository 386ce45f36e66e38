#ifndef SWIFT_FCGI_CEPOLL_SHIM_H
#define SWIFT_FCGI_CEPOLL_SHIM_H
// Linux epoll (part of glibc; Swift's Glibc module leaves it out), for the
// watcher that reads connections whose thread runs a handler.
#include <sys/epoll.h>
#endif
