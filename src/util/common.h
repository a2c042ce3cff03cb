/* common.h - project-wide helpers: error reporting, the counted allocator,
 * a deterministic RNG and a monotonic clock. Every module includes this. */
#ifndef MG_COMMON_H
#define MG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Functions that can fail take `char *err` (a buffer of MG_ERR_LEN bytes),
 * return -1 (or NULL) on failure and leave a one-line reason in it.
 * Only main() prints errors and exits. */
#define MG_ERR_LEN 512

#if defined(__GNUC__)
#define MG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MG_PRINTF(a, b)
#endif

/* Formats a reason into err (may be NULL) and returns -1, so that callers
 * can write `return mg_fail(err, "bad %s", x);`. */
int mg_fail(char *err, const char *fmt, ...) MG_PRINTF(2, 3);

/* The counted allocator: every heap allocation of the project goes through
 * these, so memory figures printed by the program are measured, not guessed.
 * Returned blocks are 64-byte aligned (good for SIMD and cache lines).
 * mg_free(NULL) is a no-op. The caller that allocates frees. */
void *mg_malloc(size_t size);
void *mg_calloc(size_t n, size_t size);
void *mg_realloc(void *p, size_t size);
void mg_free(void *p);
char *mg_strdup(const char *s);
/* A growing byte buffer, kept NUL-terminated. After a failed allocation
 * appends do nothing and oom stays set. The owner frees data (mg_free). */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} mg_buf_t;
void mg_buf_put(mg_buf_t *b, const void *bytes, size_t n);
size_t mg_mem_current(void); /* bytes live now */
size_t mg_mem_peak(void);    /* high-water mark */

/* Deterministic RNG (xoshiro256**, seeded with splitmix64). The whole state
 * is four words so it can be saved in a checkpoint. */
typedef struct {
    uint64_t s[4];
} mg_rng_t;
void mg_rng_seed(mg_rng_t *r, uint64_t seed);
uint64_t mg_rng_u64(mg_rng_t *r);
uint32_t mg_rng_below(mg_rng_t *r, uint32_t n); /* uniform in [0, n) */
float mg_rng_float(mg_rng_t *r);                /* uniform in [0, 1) */
float mg_rng_normal(mg_rng_t *r);               /* standard normal */

/* Monotonic wall clock in seconds. */
double mg_now(void);

/* Opens a user's file for reading, refusing anything but a regular file in
 * one line ("cannot read 'P': Is a directory", "...: a FIFO, not a regular
 * file"). The open itself cannot block: O_NONBLOCK keeps open() of a FIFO
 * from waiting for a writer (and of a terminal device for a carrier); it
 * is cleared again once the file is known to be regular. Every read of a
 * path the user gave goes through here. Returns the descriptor (close-on-
 * exec, the caller closes it) and its size in *size (may be NULL), or -1. */
int mg_open_regular(const char *path, size_t *size, char *err);
/* The same as a stdio stream ("rb"); the caller fcloses it. NULL on failure. */
FILE *mg_fopen_regular(const char *path, char *err);

/* Reads a whole regular file (mg_open_regular) into a NUL-terminated
 * buffer (owned by the caller, free with mg_free). *len gets the size
 * without the NUL. */
char *mg_read_file(const char *path, size_t *len, char *err);

/* The folder holding path, into buf (n bytes): "." for a bare name, "/"
 * for "/x", else path up to its last '/' (cut short if longer than buf).
 * Returns buf. */
const char *mg_parent_dir(const char *path, char *buf, size_t n);

/* s with its control characters (C0, DEL and the UTF-8 C1 range U+0080..
 * U+009F) written as \xNN, for showing an untrusted name on a terminal: an
 * escape sequence in it cannot recolour the terminal, a newline cannot
 * split a table row. Other text (UTF-8 included) is kept. out holds cap
 * bytes (4 * strlen(s) + 1 always suffice); a longer result is cut
 * short. Returns out. */
const char *mg_printable(const char *s, char *out, size_t cap);

#define MG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MG_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
