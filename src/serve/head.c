/* head.c - screens a request's head before libmicrohttpd parses it: its
 * 0.9.75 answers a malformed Content-Length itself and writes that 400's
 * status line and headers twice, so the acceptor answers those heads
 * instead (one well-formed OpenAI-shaped 400) and hands libmicrohttpd
 * only heads it parses cleanly. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "serve/serve.h"

/* 1 if v[0..n) is a plain decimal (digits only) that fits 64 bits; *out its value */
static int plain_decimal(const char *v, size_t n, uint64_t *out) {
    uint64_t x = 0;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *out = x;
    return 1;
}

int http_head_check(const char *buf, size_t n) {
    /* the head ends at its first empty line (CRLF or a bare LF, as libmicrohttpd accepts) */
    size_t end = 0;
    for (size_t i = 0; i < n && !end; i++)
        if (buf[i] == '\n' && ((i >= 1 && buf[i - 1] == '\n') ||
                               (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n')))
            end = i + 1;
    if (!end) return 0;
    static const char name[] = "content-length:";
    int seen = 0;
    uint64_t first = 0;
    const char *line = memchr(buf, '\n', end); /* the request line is not a header */
    for (line = line ? line + 1 : buf + end; line < buf + end;) {
        const char *nl = memchr(line, '\n', (size_t)(buf + end - line));
        size_t len = (size_t)(nl - line);
        const char *next = nl + 1;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (len >= sizeof name - 1 && !strncasecmp(line, name, sizeof name - 1)) {
            const char *v = line + sizeof name - 1, *e = line + len;
            /* white space before the value is skipped; after it libmicrohttpd
             * fails the value (and doubles its answer), so it is malformed here */
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            uint64_t x;
            if (!plain_decimal(v, (size_t)(e - v), &x) || (seen && x != first)) return -1;
            first = x;
            seen = 1;
        }
        line = next;
    }
    return 1;
}
