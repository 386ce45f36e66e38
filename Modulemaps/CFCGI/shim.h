#ifndef SWIFT_FCGI_CFCGI_SHIM_H
#define SWIFT_FCGI_CFCGI_SHIM_H
// libfcgi's request-level API (Debian package libfcgi-dev).
#include <fcgiapp.h>
#endif
