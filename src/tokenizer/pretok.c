/* pretok.c - GPT-2 pre-tokenization with PCRE2 (JIT when available). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretok.h"

#include <pcre2.h>
#include <stdint.h>

#include "util/common.h"

static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* The interpreter, in PCRE2_MATCH_INVALID_UTF mode, scans from the start
 * offset to the end of the valid UTF-8 run on every call, which makes a
 * split quadratic; so without JIT each match sees only a small window of
 * the text (64 bytes: 19 MB/s on the corpus, vs 0.1 MB/s with 64 kB), grown
 * only for long pieces. JIT has no such scan and gets the whole text. */
enum { INTERP_WINDOW = 64, WINDOW_MARGIN = 8 };

struct pretok {
    pcre2_general_context *gctx;
    pcre2_code *code;
    int jit;       /* 1 when pcre2_jit_compile succeeded */
    size_t window; /* bytes a match may see past its start offset; 0 = all */
};

/* PCRE2 allocates through these, so its memory is counted like ours. */
static void *pcre_alloc(PCRE2_SIZE n, void *data) {
    (void)data;
    return mg_malloc(n);
}
static void pcre_free(void *p, void *data) {
    (void)data;
    mg_free(p);
}

pretok_t *pretok_new(char *err) { return pretok_new_ex(1, 0, err); }

pretok_t *pretok_new_ex(int use_jit, size_t window, char *err) {
    pretok_t *p = mg_calloc(1, sizeof *p);
    if (!p) {
        mg_fail(err, "pretok: out of memory");
        goto fail;
    }
    p->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
    if (!p->gctx) {
        mg_fail(err, "pretok: out of memory");
        goto fail;
    }
    pcre2_compile_context *cctx = pcre2_compile_context_create(p->gctx);
    if (!cctx) {
        mg_fail(err, "pretok: out of memory");
        goto fail;
    }
    int ecode;
    PCRE2_SIZE eoff;
    /* MATCH_INVALID_UTF: invalid UTF-8 is skipped instead of failing the
     * match; those bytes become single-byte pre-tokens below. */
    p->code = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, cctx);
    pcre2_compile_context_free(cctx);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        mg_fail(err, "pretok: regex compile failed at %zu: %s", (size_t)eoff, (char *)msg);
        goto fail;
    }
    p->jit = use_jit && pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    p->window = window ? window : p->jit ? 0 : INTERP_WINDOW;
    if (p->window) p->window = MG_MAX(p->window, (size_t)4 * WINDOW_MARGIN);
    return p;
fail:
    pretok_free(p);
    return NULL;
}

void pretok_free(pretok_t *p) {
    if (!p) return;
    pcre2_code_free(p->code);
    pcre2_general_context_free(p->gctx);
    mg_free(p);
}

int pretok_split(const pretok_t *p, const char *text, size_t len, pretok_fn fn, void *ctx,
                 char *err) {
    int rc = -1;
    /* Match data and context are per call: the compiled code is shared
     * read-only between threads, these are not. */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code, p->gctx);
    pcre2_match_context *mctx = pcre2_match_context_create(p->gctx);
    if (!md || !mctx) {
        mg_fail(err, "pretok: out of memory");
        goto fail;
    }
    PCRE2_SPTR subject = (PCRE2_SPTR)text;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t off = 0, win = p->window;
    while (off < len) {
        size_t wend = win && win < len - off ? off + win : len;
        int m = p->jit ? pcre2_jit_match(p->code, subject, wend, off, 0, md, mctx)
                       : pcre2_match(p->code, subject, wend, off, 0, md, mctx);
        /* A match that ends near a window's edge, or no match, might differ
         * with more text in view (runs go on, "'ll" needs 3 bytes, (?!\S)
         * one character): look again with twice the window. Any other match
         * examined only bytes before the edge, so it is final. */
        if (wend < len && (m == PCRE2_ERROR_NOMATCH || (m > 0 && ov[1] + WINDOW_MARGIN > wend))) {
            win *= 2;
            continue;
        }
        win = p->window;
        size_t start, end;
        if (m == PCRE2_ERROR_NOMATCH) {
            start = end = len;
        } else if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            mg_fail(err, "pretok: match failed at byte %zu: %s", off, (char *)msg);
            goto fail;
        } else {
            start = ov[0];
            end = ov[1];
            if (start < off || end < start || end > wend) {
                mg_fail(err, "pretok: bad match bounds at byte %zu", off);
                goto fail;
            }
        }
        /* Bytes skipped by the matcher are invalid UTF-8: one piece each. */
        for (; off < start; off++)
            if (fn(ctx, text + off, 1)) goto fail;
        if (end == start) { /* cannot happen with this pattern; never loop */
            if (start < len && fn(ctx, text + start, 1)) goto fail;
            off = start + 1;
            continue;
        }
        if (fn(ctx, text + start, end - start)) goto fail;
        off = end;
    }
    rc = 0;
fail:
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
    return rc;
}

static int ascii_graphic(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* Why this is safe: the '\n' is whitespace between two non-whitespace
 * characters, so in the whole text it is a one-character match (\s+ after
 * \s+(?!\S) fails) and no match spans it; the cut text ends with the same
 * "\n" matched by \s+(?!\S) at end of subject, and the pattern has no
 * look-behind, so matching after the cut starts fresh either way. */
size_t pretok_cut(const char *text, size_t len, size_t pos) {
    const unsigned char *t = (const unsigned char *)text;
    if (pos < 2) pos = 2;
    for (; pos < len; pos++)
        if (t[pos - 1] == '\n' && ascii_graphic(t[pos]) && ascii_graphic(t[pos - 2])) return pos;
    return len;
}

size_t pretok_chunks(const char *text, size_t len, size_t target, size_t **bounds) {
    if (target == 0) target = 1;
    size_t max = len / target + 2, n = 0;
    size_t *b = mg_malloc((max + 1) * sizeof *b);
    if (!b) return 0;
    b[0] = 0;
    size_t pos = 0;
    while (pos < len && n + 1 < max) {
        size_t next = pos + target >= len ? len : pretok_cut(text, len, pos + target);
        b[++n] = next;
        pos = next;
    }
    if (b[n] != len) b[++n] = len; /* only when max was reached; keeps tiling exact */
    if (n == 0) b[++n] = len;      /* empty text: one empty chunk */
    *bounds = b;
    return n;
}
