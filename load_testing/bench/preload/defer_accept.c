/* LD_PRELOAD shim, for measurements only (docs/performance.md, "Where the time goes per
 * request"): every listen() on a TCP socket first sets TCP_DEFER_ACCEPT (1 s), so that accept()
 * returns a connection only once its first bytes have arrived. Lets a benchmark show what the
 * option would change without rebuilding the router (or nginx: `listen ... deferred`).
 *
 *   gcc -shared -fPIC -O2 -o /tmp/defer_accept.so load_testing/bench/preload/defer_accept.c -ldl
 *   printf '#!/bin/sh\nexec env LD_PRELOAD=/tmp/defer_accept.so BINARY "$@"\n' > WRAPPER
 *   (LT_BIN=WRAPPER for the router; a wrapper named nginx first in PATH for nginx)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
int listen(int fd, int backlog) {
    static int (*real_listen)(int, int);
    if (!real_listen) real_listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    int one = 1, type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one);
    return real_listen(fd, backlog);
}
