/* common.c - error formatting, counted allocator, RNG, clock, opening and
 * reading a user's regular file. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mg_fail(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, MG_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Each block carries a 64-byte header holding its size, so the returned
 * pointer stays 64-byte aligned and mg_free knows what to subtract. */
#define MG_HDR 64
static _Atomic size_t mem_current;
static _Atomic size_t mem_peak;

static void mem_add(size_t n) {
    size_t now = atomic_fetch_add(&mem_current, n) + n;
    size_t peak = atomic_load(&mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&mem_peak, &peak, now)) {
    }
}

void *mg_malloc(size_t size) {
    if (size > SIZE_MAX - 2 * MG_HDR) return NULL;
    size_t total = (size + MG_HDR + MG_HDR - 1) / MG_HDR * MG_HDR;
    unsigned char *p = aligned_alloc(MG_HDR, total);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    mem_add(size);
    return p + MG_HDR;
}

void *mg_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = mg_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

static size_t block_size(void *p) {
    size_t size;
    memcpy(&size, (unsigned char *)p - MG_HDR, sizeof size);
    return size;
}

void *mg_realloc(void *p, size_t size) {
    if (!p) return mg_malloc(size);
    size_t old = block_size(p);
    void *q = mg_malloc(size);
    if (!q) return NULL;
    memcpy(q, p, MG_MIN(old, size));
    mg_free(p);
    return q;
}

void mg_free(void *p) {
    if (!p) return;
    atomic_fetch_sub(&mem_current, block_size(p));
    free((unsigned char *)p - MG_HDR);
}

char *mg_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mg_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void mg_buf_put(mg_buf_t *b, const void *bytes, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = mg_realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = 0;
}

size_t mg_mem_current(void) { return atomic_load(&mem_current); }
size_t mg_mem_peak(void) { return atomic_load(&mem_peak); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mg_rng_seed(mg_rng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mg_rng_u64(mg_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t mg_rng_below(mg_rng_t *r, uint32_t n) {
    /* Lemire's multiply-shift: unbiased enough for shuffles of < 2^32 items. */
    return (uint32_t)(((mg_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

float mg_rng_float(mg_rng_t *r) { return (float)(mg_rng_u64(r) >> 40) / 16777216.0f; }

float mg_rng_normal(mg_rng_t *r) {
    /* Box-Muller; u1 in (0, 1] so log() is finite. */
    double u1 = ((double)(mg_rng_u64(r) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(mg_rng_u64(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

double mg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *kind_of(mode_t m) {
    return S_ISFIFO(m)   ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "a special file";
}

int mg_open_regular(const char *path, size_t *size, char *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return mg_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        mg_fail(err, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        mg_fail(err, "cannot read '%s': %s", path, strerror(EISDIR));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        mg_fail(err, "cannot read '%s': %s, not a regular file", path, kind_of(st.st_mode));
        goto fail;
    }
    if ((uintmax_t)st.st_size > SIZE_MAX - 1) {
        mg_fail(err, "cannot read '%s': too large (%jd bytes)", path, (intmax_t)st.st_size);
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        mg_fail(err, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (size) *size = (size_t)st.st_size;
    return fd;
fail:
    close(fd);
    return -1;
}

FILE *mg_fopen_regular(const char *path, char *err) {
    int fd = mg_open_regular(path, NULL, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        mg_fail(err, "cannot open '%s': %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

char *mg_read_file(const char *path, size_t *len, char *err) {
    char *buf = NULL;
    size_t size = 0, got = 0;
    int fd = mg_open_regular(path, &size, err);
    if (fd < 0) return NULL;
    buf = mg_malloc(size + 1);
    if (!buf) {
        mg_fail(err, "out of memory reading '%s' (%zu bytes)", path, size);
        goto fail;
    }
    /* the size of the fstat: a file that grows meanwhile is read as it was */
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            mg_fail(err, "cannot read '%s': %s", path,
                    n < 0 ? strerror(errno) : "file shrank while read");
            goto fail;
        }
        got += (size_t)n;
    }
    buf[size] = 0;
    close(fd);
    if (len) *len = size;
    return buf;
fail:
    mg_free(buf);
    close(fd);
    return NULL;
}

const char *mg_parent_dir(const char *path, char *buf, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, n, ".");
    else if (slash == path)
        snprintf(buf, n, "/");
    else
        snprintf(buf, n, "%.*s", (int)(slash - path), path);
    return buf;
}

const char *mg_printable(const char *s, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[9] = "";
        if (*p < 0x20 || *p == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* C1 control, e.g. CSI */
            snprintf(esc, sizeof esc, "\\xc2\\x%02x", p[1]);
            p++;
        }
        size_t n = esc[0] ? strlen(esc) : 1;
        if (o + n + 1 > cap) break;
        if (esc[0])
            memcpy(out + o, esc, n);
        else
            out[o] = (char)*p;
        o += n;
    }
    out[o] = 0;
    return out;
}
