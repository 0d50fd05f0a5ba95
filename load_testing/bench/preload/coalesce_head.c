/* LD_PRELOAD shim, for measurements only (docs/performance.md, "Where the time goes per
 * request"): a send() that is exactly an HTTP/1.1 response head announcing a non-empty body
 * ("HTTP/1.1 " ... "Content-Length: N", N > 0, ending in CRLF CRLF) is held back and goes out
 * with the next send() on the same socket in one sendmsg(), as a write buffer in front of the
 * socket would do. Shows what one send per proxied answer instead of two (head, body) would
 * save, without rebuilding the router. Not for production: a held head whose body never comes
 * is lost (the proxy benchmark's answers always have a body).
 *
 *   gcc -shared -fPIC -O2 -o /tmp/coalesce_head.so load_testing/bench/preload/coalesce_head.c -ldl -lpthread
 *   printf '#!/bin/sh\nexec env LD_PRELOAD=/tmp/coalesce_head.so BINARY "$@"\n' > WRAPPER
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 65536
static char *held[MAXFD];
static size_t held_len[MAXFD];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ssize_t (*real_send)(int, const void *, size_t, int);
static int (*real_close)(int);

static int is_head_with_body(const char *b, size_t n) {
    if (n < 16 || n > 4096 || memcmp(b, "HTTP/1.1 ", 9) != 0) return 0;
    if (memcmp(b + n - 4, "\r\n\r\n", 4) != 0) return 0;
    const char *p = memmem(b, n, "\r\ncontent-length: ", 18);
    if (!p) p = memmem(b, n, "\r\nContent-Length: ", 18);
    if (!p) return 0;
    return atol(p + 18) > 0;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    if (!real_send) real_send = dlsym(RTLD_NEXT, "send");
    if (fd < 0 || fd >= MAXFD) return real_send(fd, buf, len, flags);
    pthread_mutex_lock(&lock);
    if (held[fd]) {
        struct iovec iov[2] = {{held[fd], held_len[fd]}, {(void *)buf, len}};
        struct msghdr m = {0};
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        ssize_t r = sendmsg(fd, &m, flags);
        if (r < 0) { pthread_mutex_unlock(&lock); return r; }
        if ((size_t)r < held_len[fd]) {  /* the head went out only in part: keep the rest */
            memmove(held[fd], held[fd] + r, held_len[fd] - r);
            held_len[fd] -= r;
            pthread_mutex_unlock(&lock);
            errno = EAGAIN;
            return -1;
        }
        r -= held_len[fd];
        free(held[fd]);
        held[fd] = NULL;
        held_len[fd] = 0;
        pthread_mutex_unlock(&lock);
        return r;
    }
    if (is_head_with_body(buf, len)) {
        held[fd] = malloc(len);
        memcpy(held[fd], buf, len);
        held_len[fd] = len;
        pthread_mutex_unlock(&lock);
        return (ssize_t)len;
    }
    pthread_mutex_unlock(&lock);
    return real_send(fd, buf, len, flags);
}

int close(int fd) {
    if (!real_close) real_close = dlsym(RTLD_NEXT, "close");
    if (fd >= 0 && fd < MAXFD) {
        pthread_mutex_lock(&lock);
        if (held[fd]) { free(held[fd]); held[fd] = NULL; held_len[fd] = 0; }
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}
