#ifndef SWIFT_FCGI_CZLIB_SHIM_H
#define SWIFT_FCGI_CZLIB_SHIM_H
// zlib's deflate for GZipRequest (Debian package zlib1g-dev).
#include <zlib.h>
#endif
