/* bpe_encode.c - text -> ids. Each pre-token is merged exactly like the
 * Hugging Face `tokenizers` BPE model (lowest merge rank first, leftmost on
 * ties, with a heap so long pre-tokens stay O(n log n)). With
 * BPE_ENCODE_SPECIAL the added tokens are cut out of the text first
 * (leftmost, longest, like Hugging Face's added vocabulary) and the pieces
 * between them are encoded on their own. Repeated pre-tokens
 * come from a per-thread cache; large inputs are cut at pre-token-safe
 * newlines and encoded by OpenMP threads, then concatenated in order. */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tokenizer/bpe_cache.h"
#include "tokenizer/bpe_internal.h"
#include "util/common.h"

enum {
    PAR_MIN_BYTES = 1 << 20,    /* below this, threads cost more than they save */
    CHUNK_BYTES = 256 << 10,    /* work unit per thread; many units balance load */
    CACHE_MAX_ENTRIES = 1 << 18 /* ~10 MB per thread at most (the corpus needs 100k) */
};

typedef struct {
    const bpe_t *t;
    int32_t *out; /* room for one id per input byte: a token has >= 1 byte */
    size_t n;
    bpe_cache_t cache; /* cap 0 = no cache */
    /* scratch for merge_word, grown to the longest pre-token seen */
    int32_t *sym, *prev, *next;
    uint64_t *heap;
    size_t scap;
    bpe_trace_fn fn;
    void *fn_ctx;
    int oom;
} enc_state_t;

static void state_free(enc_state_t *st) {
    bpe_cache_free(&st->cache);
    mg_free(st->sym);
    mg_free(st->prev);
    mg_free(st->next);
    mg_free(st->heap);
}

static int scratch_reserve(enc_state_t *st, size_t n) {
    if (n <= st->scap) return 0;
    size_t cap = MG_MAX(n, st->scap * 2);
    mg_free(st->sym);
    mg_free(st->prev);
    mg_free(st->next);
    mg_free(st->heap);
    st->sym = mg_malloc(cap * sizeof *st->sym);
    st->prev = mg_malloc(cap * sizeof *st->prev);
    st->next = mg_malloc(cap * sizeof *st->next);
    st->heap = mg_malloc(3 * cap * sizeof *st->heap); /* n-1 initial + 2 per merge */
    st->scap = (st->sym && st->prev && st->next && st->heap) ? cap : 0;
    return st->scap ? 0 : -1;
}

static int32_t rank_of(const bpe_t *t, int32_t l, int32_t r) {
    return bpe_pairmap_get(&t->ranks, bpe_pair_key(l, r));
}

/* Min-heap on (rank << 32 | position): lowest rank, then leftmost. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* The Hugging Face word merge (tokenizers/src/models/bpe/word.rs,
 * merge_all without dropout): entries are validated lazily on pop. */
static size_t merge_word(enc_state_t *st, const unsigned char *s, size_t n, int32_t *dst) {
    const bpe_t *t = st->t;
    int32_t *sym = st->sym, *prev = st->prev, *next = st->next;
    uint64_t *heap = st->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = t->byte_id[s[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = rank_of(t, sym[i], sym[i + 1]);
        if (r >= 0) heap_push(heap, &hn, (uint64_t)r << 32 | i);
    }
    while (hn > 0) {
        uint64_t top = heap_pop(heap, &hn);
        int32_t r = (int32_t)(top >> 32);
        int32_t pos = (int32_t)(top & 0xffffffffu);
        int32_t nx = next[pos];
        if (sym[pos] < 0 || nx < 0) continue;
        if (rank_of(t, sym[pos], sym[nx]) != r) continue; /* stale entry */
        int32_t merged = t->result[r];
        if (st->fn) st->fn(st->fn_ctx, (const char *)s, n, sym[pos], sym[nx], merged);
        sym[pos] = merged;
        sym[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) {
            int32_t r2 = rank_of(t, sym[prev[pos]], merged);
            if (r2 >= 0) heap_push(heap, &hn, (uint64_t)r2 << 32 | (uint32_t)prev[pos]);
        }
        if (next[pos] >= 0) {
            int32_t r2 = rank_of(t, merged, sym[next[pos]]);
            if (r2 >= 0) heap_push(heap, &hn, (uint64_t)r2 << 32 | (uint32_t)pos);
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        dst[k++] = sym[i];
    return k;
}

static int on_pretoken(void *ctx, const char *s, size_t n) {
    enc_state_t *st = ctx;
    const unsigned char *u = (const unsigned char *)s;
    int32_t *dst = st->out + st->n;
    if (n == 1) {
        dst[0] = st->t->byte_id[u[0]];
        st->n++;
        return 0;
    }
    size_t k = bpe_cache_get(&st->cache, u, n, dst);
    if (k) {
        st->n += k;
        return 0;
    }
    if (n > INT32_MAX || scratch_reserve(st, n) < 0) {
        st->oom = 1;
        return -1;
    }
    k = merge_word(st, u, n, dst);
    st->n += k;
    bpe_cache_put(&st->cache, u, n, dst, k);
    return 0;
}

/* Encodes text[0..len) into out (room for len ids); returns the count. */
static int encode_span(enc_state_t *st, const char *text, size_t len, int32_t *out, size_t *n,
                       char *err) {
    st->out = out;
    st->n = 0;
    if (pretok_split(st->t->pretok, text, len, on_pretoken, st, err) < 0) {
        if (st->oom) mg_fail(err, "bpe_encode: out of memory");
        return -1;
    }
    *n = st->n;
    return 0;
}

static int state_init(enc_state_t *st, const bpe_t *t, int use_cache) {
    memset(st, 0, sizeof *st);
    st->t = t;
    if (use_cache && bpe_cache_init(&st->cache, CACHE_MAX_ENTRIES) < 0) return -1;
    return scratch_reserve(st, 64);
}

/* Shrinks the id buffer to its final size (never fails: keeps it if it must). */
static int32_t *fit(int32_t *ids, size_t n) {
    int32_t *f = mg_realloc(ids, MG_MAX(n, (size_t)1) * sizeof *f);
    if (!f) return ids;
    return f;
}

static int encode_serial(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                         int use_cache, bpe_trace_fn fn, void *ctx, char *err) {
    enc_state_t st;
    int32_t *out = NULL;
    int rc = -1;
    if (state_init(&st, t, use_cache) < 0) {
        mg_fail(err, "bpe_encode: out of memory");
        goto fail;
    }
    st.fn = fn;
    st.fn_ctx = ctx;
    out = mg_malloc(MG_MAX(len, (size_t)1) * sizeof *out);
    if (!out) {
        mg_fail(err, "bpe_encode: out of memory for %zu ids", len);
        goto fail;
    }
    if (encode_span(&st, text, len, out, n, err) < 0) goto fail;
    *ids = fit(out, *n);
    out = NULL;
    rc = 0;
fail:
    mg_free(out);
    state_free(&st);
    return rc;
}

/* Chunks go to threads dynamically (robust to a busy core); each is encoded
 * into the thread's scratch buffer, copied out at its exact size, and the
 * pieces are joined in chunk order, so the result equals serial encoding. */
static int encode_parallel(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                           char *err) {
    size_t *bounds = NULL, *counts = NULL;
    int32_t **outs = NULL;
    int rc = -1, failed = 0;
    size_t nc = pretok_chunks(text, len, CHUNK_BYTES, &bounds);
    if (!nc) {
        mg_fail(err, "bpe_encode: out of memory");
        goto fail;
    }
    outs = mg_calloc(nc, sizeof *outs);
    counts = mg_calloc(nc, sizeof *counts);
    if (!outs || !counts) {
        mg_fail(err, "bpe_encode: out of memory");
        goto fail;
    }
    size_t widest = 1;
    for (size_t c = 0; c < nc; c++)
        widest = MG_MAX(widest, bounds[c + 1] - bounds[c]);
#pragma omp parallel
    {
        enc_state_t st;
        char terr[MG_ERR_LEN] = "bpe_encode: out of memory";
        int32_t *buf = mg_malloc(widest * sizeof *buf);
        int ok = state_init(&st, t, 1) == 0 && buf;
#pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < nc; c++) {
            if (!ok) continue;
            if (encode_span(&st, text + bounds[c], bounds[c + 1] - bounds[c], buf, &counts[c],
                            terr) < 0) {
                ok = 0;
                continue;
            }
            outs[c] = mg_malloc(MG_MAX(counts[c], (size_t)1) * sizeof *buf);
            if (!outs[c]) {
                mg_fail(terr, "bpe_encode: out of memory");
                ok = 0;
                continue;
            }
            memcpy(outs[c], buf, counts[c] * sizeof *buf);
        }
        if (!ok) {
#pragma omp critical(bpe_encode_err)
            {
                if (!failed) mg_fail(err, "%s", terr);
                failed = 1;
            }
        }
        mg_free(buf);
        state_free(&st);
    }
    if (failed) goto fail;
    size_t total = 0;
    for (size_t c = 0; c < nc; c++)
        total += counts[c];
    int32_t *all = mg_malloc(MG_MAX(total, (size_t)1) * sizeof *all);
    if (!all) {
        mg_fail(err, "bpe_encode: out of memory");
        goto fail;
    }
    size_t off = 0;
    for (size_t c = 0; c < nc; c++) {
        memcpy(all + off, outs[c], counts[c] * sizeof *all);
        off += counts[c];
    }
    *ids = all;
    *n = total;
    rc = 0;
fail:
    if (outs)
        for (size_t c = 0; c < nc; c++)
            mg_free(outs[c]);
    mg_free(outs);
    mg_free(counts);
    mg_free(bounds);
    return rc;
}

static int encode_plain(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                        char *err) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (threads > 1 && len >= PAR_MIN_BYTES) return encode_parallel(t, text, len, ids, n, err);
    return encode_serial(t, text, len, ids, n, 1, NULL, NULL, err);
}

/* The added token that matches at text[i] (the longest one), or -1. */
static int added_at(const bpe_t *t, const char *text, size_t len, size_t i, size_t *mlen) {
    int best = -1;
    *mlen = 0;
    for (int k = 0; k < t->n_added; k++) {
        int32_t id = t->added[k];
        size_t l = t->tok_len[id];
        if (l > *mlen && l <= len - i && memcmp(text + i, t->bytes + t->tok_off[id], l) == 0) {
            best = id;
            *mlen = l;
        }
    }
    return best;
}

/* Plain pieces between added tokens, each encoded alone, then joined. */
static int encode_special(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                          char *err) {
    int32_t *all = mg_malloc(MG_MAX(len, (size_t)1) * sizeof *all), *part = NULL;
    size_t total = 0, start = 0, i = 0, k, mlen;
    if (!all) return mg_fail(err, "bpe_encode: out of memory for %zu ids", len);
    while (start < len) {
        int id = -1;
        for (i = start; i < len && (id = added_at(t, text, len, i, &mlen)) < 0; i++) {
        }
        if (i > start) {
            if (encode_plain(t, text + start, i - start, &part, &k, err) != 0) {
                mg_free(all);
                return -1;
            }
            memcpy(all + total, part, k * sizeof *all);
            total += k;
            mg_free(part);
        }
        if (id >= 0) {
            all[total++] = id;
            i += mlen;
        }
        start = i;
    }
    *ids = fit(all, total);
    *n = total;
    return 0;
}

int bpe_encode_ex(const bpe_t *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                  size_t *n, char *err) {
    *ids = NULL;
    *n = 0;
    if ((flags & BPE_ENCODE_SPECIAL) && t->n_added > 0)
        return encode_special(t, text, len, ids, n, err);
    return encode_plain(t, text, len, ids, n, err);
}

int bpe_encode(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n, char *err) {
    return bpe_encode_ex(t, text, len, 0, ids, n, err);
}

int bpe_encode_traced(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                      bpe_trace_fn fn, void *ctx, char *err) {
    *ids = NULL;
    *n = 0;
    /* No cache: a cached pre-token would skip its merges in the trace. */
    return encode_serial(t, text, len, ids, n, 0, fn, ctx, err);
}
