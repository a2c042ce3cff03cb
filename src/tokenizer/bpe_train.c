/* bpe_train.c - learns BPE merges. The corpus is pre-tokenized once (in
 * parallel) into unique words with frequencies; then each merge updates
 * pair counts incrementally: a pair table, a pair -> words index and a
 * max-heap with lazy invalidation, so only the words that contain the
 * chosen pair are touched. Never re-scans the corpus per merge.
 *
 * Determinism: the pair with the highest count wins, ties go to the smaller
 * (left, right). Safety net: a merge whose bytes equal an existing token is
 * skipped, because tokenizer.json keys tokens by their text. With merges
 * applied to every occurrence this cannot happen between merges (a string
 * evolves the same way in every word), but a merge could spell a special
 * name such as "<PAD>" if pre-tokenization ever allowed it. */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tokenizer/bpe_internal.h"
#include "util/common.h"

/* ---- word counting ---- */

typedef struct {
    bpe_strmap_t map; /* pre-token bytes (offsets into the text) -> count */
    const char *base;
    int oom;
} count_ctx_t;

static int count_word(void *ctx, const char *s, size_t n) {
    count_ctx_t *c = ctx;
    if (n > INT32_MAX) return c->oom = 1, -1;
    int64_t *v =
        bpe_strmap_put(&c->map, (const unsigned char *)c->base, (const unsigned char *)s, n, NULL);
    if (!v) return c->oom = 1, -1;
    (*v)++;
    return 0;
}

/* Fills *out with the unique pre-tokens of text and their counts. */
static int count_words(const pretok_t *pt, const char *text, size_t len, bpe_strmap_t *out,
                       char *err) {
    int nt = 1, rc = -1, failed = 0;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    count_ctx_t *ctx = NULL;
    size_t *bounds = NULL;
    size_t nc =
        pretok_chunks(text, len, MG_MAX(len / ((size_t)nt * 8), (size_t)(64 << 10)), &bounds);
    if (!nc) {
        mg_fail(err, "bpe_train: out of memory while counting words");
        goto fail;
    }
    ctx = mg_calloc((size_t)nt, sizeof *ctx);
    if (!ctx) {
        mg_fail(err, "bpe_train: out of memory while counting words");
        goto fail;
    }
    for (int i = 0; i < nt; i++) {
        ctx[i].base = text;
        if (bpe_strmap_init(&ctx[i].map, 1 << 14) < 0) {
            mg_fail(err, "bpe_train: out of memory while counting words");
            goto fail;
        }
    }
    /* Static schedule: thread i always gets the same chunks, so the order in
     * which words are met (irrelevant to the result anyway) is reproducible. */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t c = 0; c < nc; c++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        char terr[MG_ERR_LEN] = "out of memory while counting words";
        if (ctx[tid].oom) continue;
        if (pretok_split(pt, text + bounds[c], bounds[c + 1] - bounds[c], count_word, &ctx[tid],
                         terr) < 0) {
            ctx[tid].oom = 1;
#pragma omp critical(bpe_train_err)
            {
                if (!failed) mg_fail(err, "bpe_train: %s", terr);
                failed = 1;
            }
        }
    }
    for (int i = 0; i < nt; i++)
        if (ctx[i].oom) {
            if (!failed) mg_fail(err, "bpe_train: out of memory while counting words");
            goto fail;
        }
    if (bpe_strmap_init(out, ctx[0].map.n) < 0) {
        mg_fail(err, "bpe_train: out of memory while counting words");
        goto fail;
    }
    for (int i = 0; i < nt; i++) {
        for (size_t j = 0; j < ctx[i].map.cap; j++) {
            const bpe_strmap_entry_t *e = &ctx[i].map.e[j];
            if (!e->tag) continue;
            int64_t *v = bpe_strmap_put(out, (const unsigned char *)text,
                                        (const unsigned char *)text + e->off, e->len, NULL);
            if (!v) {
                mg_fail(err, "bpe_train: out of memory while counting words");
                goto fail;
            }
            *v += e->val;
        }
        bpe_strmap_free(&ctx[i].map);
    }
    rc = 0;
fail:
    if (ctx)
        for (int i = 0; i < nt; i++)
            bpe_strmap_free(&ctx[i].map);
    mg_free(ctx);
    mg_free(bounds);
    return rc;
}

/* ---- the merge loop ---- */

typedef struct {
    int64_t count;
    int32_t left, right;
    int32_t head;  /* first block of the word list, -1 none */
    int32_t stamp; /* last merge step that raised it (push once per step); -1 = retired */
} pair_t;

typedef struct {
    int64_t count;
    int32_t left, right, pidx;
} heap_entry_t;

/* Word lists are chains of fixed blocks in one pool (a list per pair would
 * be hundreds of thousands of tiny allocations). Block layout in int32s:
 * BLOCK_WORDS word indices, then next block, then fill count. */
enum { BLOCK_WORDS = 6, BLOCK_INTS = BLOCK_WORDS + 2 };

typedef struct {
    /* words: symbols back to back; merged in place, so lengths only shrink */
    int32_t *syms;
    size_t *woff;
    int32_t *wlen;
    int64_t *wfreq;
    size_t nwords;

    pair_t *pairs;
    size_t npairs, cap_pairs;
    bpe_pairmap_t pidx; /* (left, right) -> index into pairs */

    int32_t *pool;
    size_t nblocks, cap_blocks;
    int32_t free_block;

    heap_entry_t *heap;
    size_t nheap, cap_heap;

    int32_t *touched; /* pairs raised in the current step */
    size_t ntouched, cap_touched;

    /* token bytes, for the duplicate-string check */
    unsigned char *tok;
    size_t ntok, cap_tok;
    uint32_t *tok_off, *tok_len;
    bpe_strmap_t tokset;

    int32_t *mleft, *mright;
    int nmerges;
} trainer_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = MG_MAX(need, *cap * 2);
    nc = MG_MAX(nc, (size_t)16);
    void *q = mg_realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int list_add(trainer_t *tr, pair_t *p, int32_t w) {
    int32_t b = p->head;
    if (b >= 0) {
        int32_t *blk = tr->pool + (size_t)b * BLOCK_INTS;
        int32_t fill = blk[BLOCK_WORDS + 1];
        if (blk[fill - 1] == w) return 0; /* same word again in this pass */
        if (fill < BLOCK_WORDS) {
            blk[fill] = w;
            blk[BLOCK_WORDS + 1] = fill + 1;
            return 0;
        }
    }
    int32_t nb;
    if (tr->free_block >= 0) {
        nb = tr->free_block;
        tr->free_block = tr->pool[(size_t)nb * BLOCK_INTS + BLOCK_WORDS];
    } else {
        if (tr->nblocks >= INT32_MAX) return -1;
        if (grow((void **)&tr->pool, &tr->cap_blocks, (tr->nblocks + 1) * BLOCK_INTS,
                 sizeof *tr->pool) < 0)
            return -1;
        nb = (int32_t)tr->nblocks++;
    }
    int32_t *blk = tr->pool + (size_t)nb * BLOCK_INTS;
    blk[0] = w;
    blk[BLOCK_WORDS] = p->head;
    blk[BLOCK_WORDS + 1] = 1;
    p->head = nb;
    return 0;
}

static void list_release(trainer_t *tr, pair_t *p) {
    int32_t b = p->head;
    while (b >= 0) {
        int32_t next = tr->pool[(size_t)b * BLOCK_INTS + BLOCK_WORDS];
        tr->pool[(size_t)b * BLOCK_INTS + BLOCK_WORDS] = tr->free_block;
        tr->free_block = b;
        b = next;
    }
    p->head = -1;
}

static int better(const heap_entry_t *a, const heap_entry_t *b) {
    if (a->count != b->count) return a->count > b->count;
    if (a->left != b->left) return a->left < b->left;
    return a->right < b->right;
}

static int heap_push(trainer_t *tr, int32_t pi) {
    if (grow((void **)&tr->heap, &tr->cap_heap, tr->nheap + 1, sizeof *tr->heap) < 0) return -1;
    const pair_t *p = &tr->pairs[pi];
    heap_entry_t v = {p->count, p->left, p->right, pi};
    size_t i = tr->nheap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!better(&v, &tr->heap[up])) break;
        tr->heap[i] = tr->heap[up];
        i = up;
    }
    tr->heap[i] = v;
    return 0;
}

static heap_entry_t heap_pop(trainer_t *tr) {
    heap_entry_t top = tr->heap[0], v = tr->heap[--tr->nheap];
    size_t i = 0, n = tr->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!better(&tr->heap[c], &v)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n) tr->heap[i] = v;
    return top;
}

/* Index of pair (l, r), created with count 0 if new; -1 when out of memory. */
static int32_t pair_get(trainer_t *tr, int32_t l, int32_t r) {
    int32_t *slot = bpe_pairmap_put(&tr->pidx, bpe_pair_key(l, r));
    if (!slot) return -1;
    if (*slot >= 0) return *slot;
    if (tr->npairs >= INT32_MAX ||
        grow((void **)&tr->pairs, &tr->cap_pairs, tr->npairs + 1, sizeof *tr->pairs) < 0)
        return -1;
    pair_t *p = &tr->pairs[tr->npairs];
    p->count = 0;
    p->left = l;
    p->right = r;
    p->head = -1;
    p->stamp = 0;
    *slot = (int32_t)tr->npairs++;
    return *slot;
}

static void pair_sub(trainer_t *tr, int32_t l, int32_t r, int64_t f) {
    int32_t pi = bpe_pairmap_get(&tr->pidx, bpe_pair_key(l, r));
    if (pi >= 0) tr->pairs[pi].count -= f; /* always present: it was counted */
}

/* Raises (l, r) by f for word w during merge step `step` (>= 1). */
static int pair_add(trainer_t *tr, int32_t l, int32_t r, int64_t f, int32_t w, int32_t step) {
    int32_t pi = pair_get(tr, l, r);
    if (pi < 0) return -1;
    pair_t *p = &tr->pairs[pi];
    p->count += f;
    if (list_add(tr, p, w) < 0) return -1;
    if (p->stamp != step) {
        p->stamp = step;
        if (grow((void **)&tr->touched, &tr->cap_touched, tr->ntouched + 1, sizeof *tr->touched) <
            0)
            return -1;
        tr->touched[tr->ntouched++] = pi;
    }
    return 0;
}

/* Replaces every (a, b) in word w by z, left to right, reporting the pair
 * changes the way Hugging Face's Word::merge does (neighbours of each
 * occurrence lose their old pair and gain one with z). */
static int merge_in_word(trainer_t *tr, int32_t w, int32_t a, int32_t b, int32_t z, int32_t step) {
    int32_t *s = tr->syms + tr->woff[w];
    int32_t n = tr->wlen[w], i = 0, j = 0;
    int64_t f = tr->wfreq[w];
    while (i < n) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (j > 0) {
                pair_sub(tr, s[j - 1], a, f);
                if (pair_add(tr, s[j - 1], z, f, w, step) < 0) return -1;
            }
            if (i + 2 < n) {
                pair_sub(tr, b, s[i + 2], f);
                if (pair_add(tr, z, s[i + 2], f, w, step) < 0) return -1;
            }
            s[j++] = z;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    tr->wlen[w] = j;
    return 0;
}

static int tok_add(trainer_t *tr, const unsigned char *bytes, size_t len, int *dup) {
    *dup = 0;
    if (len > UINT32_MAX) return -1;
    if (grow((void **)&tr->tok, &tr->cap_tok, tr->ntok + len, 1) < 0) return -1;
    memcpy(tr->tok + tr->ntok, bytes, len);
    int is_new;
    if (!bpe_strmap_put(&tr->tokset, tr->tok, tr->tok + tr->ntok, len, &is_new)) return -1;
    if (!is_new) {
        *dup = 1;
        return 0;
    }
    tr->ntok += len;
    return 0;
}

static int trainer_init(trainer_t *tr, const bpe_strmap_t *words, const char *text, int vocab) {
    memset(tr, 0, sizeof *tr);
    tr->free_block = -1;
    size_t total = 0;
    for (size_t j = 0; j < words->cap; j++)
        if (words->e[j].tag) total += words->e[j].len;
    tr->nwords = words->n;
    tr->syms = mg_malloc(MG_MAX(total, (size_t)1) * sizeof *tr->syms);
    tr->woff = mg_malloc(MG_MAX(tr->nwords, (size_t)1) * sizeof *tr->woff);
    tr->wlen = mg_malloc(MG_MAX(tr->nwords, (size_t)1) * sizeof *tr->wlen);
    tr->wfreq = mg_malloc(MG_MAX(tr->nwords, (size_t)1) * sizeof *tr->wfreq);
    tr->tok_off = mg_malloc((size_t)vocab * sizeof *tr->tok_off);
    tr->tok_len = mg_malloc((size_t)vocab * sizeof *tr->tok_len);
    tr->mleft = mg_malloc((size_t)vocab * sizeof *tr->mleft);
    tr->mright = mg_malloc((size_t)vocab * sizeof *tr->mright);
    if (!tr->syms || !tr->woff || !tr->wlen || !tr->wfreq || !tr->tok_off || !tr->tok_len ||
        !tr->mleft || !tr->mright)
        return -1;
    if (bpe_pairmap_init(&tr->pidx, 1 << 16) < 0) return -1;
    if (bpe_strmap_init(&tr->tokset, (size_t)vocab) < 0) return -1;

    /* Base tokens: the special names and the 256 bytes. */
    for (int id = 0; id < BPE_FIRST_MERGE; id++) {
        unsigned char b = (unsigned char)(id - BPE_BYTE0);
        const unsigned char *s = id < BPE_BYTE0 ? (const unsigned char *)bpe_special_names[id] : &b;
        size_t l = id < BPE_BYTE0 ? strlen(bpe_special_names[id]) : 1;
        int dup;
        tr->tok_off[id] = (uint32_t)tr->ntok;
        tr->tok_len[id] = (uint32_t)l;
        if (tok_add(tr, s, l, &dup) < 0) return -1;
    }

    size_t w = 0, off = 0;
    for (size_t j = 0; j < words->cap; j++) {
        const bpe_strmap_entry_t *e = &words->e[j];
        if (!e->tag) continue;
        const unsigned char *src = (const unsigned char *)text + e->off;
        tr->woff[w] = off;
        tr->wlen[w] = (int32_t)e->len;
        tr->wfreq[w] = e->val;
        for (uint32_t k = 0; k < e->len; k++)
            tr->syms[off + k] = BPE_BYTE0 + src[k];
        off += e->len;
        w++;
    }
    /* Initial pair counts and word lists. */
    for (w = 0; w < tr->nwords; w++) {
        const int32_t *s = tr->syms + tr->woff[w];
        for (int32_t k = 0; k + 1 < tr->wlen[w]; k++) {
            int32_t pi = pair_get(tr, s[k], s[k + 1]);
            if (pi < 0) return -1;
            tr->pairs[pi].count += tr->wfreq[w];
            if (list_add(tr, &tr->pairs[pi], (int32_t)w) < 0) return -1;
        }
    }
    /* Pairs below 2 can never win: existing pairs only lose occurrences. */
    for (size_t pi = 0; pi < tr->npairs; pi++)
        if (tr->pairs[pi].count >= 2 && heap_push(tr, (int32_t)pi) < 0) return -1;
    return 0;
}

static void trainer_free(trainer_t *tr) {
    mg_free(tr->syms);
    mg_free(tr->woff);
    mg_free(tr->wlen);
    mg_free(tr->wfreq);
    mg_free(tr->pairs);
    bpe_pairmap_free(&tr->pidx);
    mg_free(tr->pool);
    mg_free(tr->heap);
    mg_free(tr->touched);
    mg_free(tr->tok);
    mg_free(tr->tok_off);
    mg_free(tr->tok_len);
    bpe_strmap_free(&tr->tokset);
    mg_free(tr->mleft);
    mg_free(tr->mright);
}

/* One merge step: pops until a live pair wins. 0 = merged, 1 = no pair
 * left with count >= 2, -1 = out of memory. */
static int merge_step(trainer_t *tr) {
    unsigned char buf[256];
    for (;;) {
        if (tr->nheap == 0) return 1;
        heap_entry_t e = heap_pop(tr);
        pair_t *p = &tr->pairs[e.pidx];
        if (p->stamp < 0) continue; /* merged or banned */
        if (p->count != e.count) {
            /* Counts of old pairs only fall: re-queue at the current value. */
            if (p->count >= 2 && heap_push(tr, e.pidx) < 0) return -1;
            continue;
        }
        if (e.count < 2) return 1; /* never queued, but the rule is the rule */
        int32_t a = p->left, b = p->right;
        size_t la = tr->tok_len[a], lb = tr->tok_len[b];
        unsigned char *z = la + lb <= sizeof buf ? buf : mg_malloc(la + lb);
        if (!z) return -1;
        /* Copy first: tok_add may move tr->tok. */
        memcpy(z, tr->tok + tr->tok_off[a], la);
        memcpy(z + la, tr->tok + tr->tok_off[b], lb);
        size_t zoff = tr->ntok;
        int dup, rc = tok_add(tr, z, la + lb, &dup);
        if (z != buf) mg_free(z);
        if (rc < 0) return -1;
        if (dup) { /* same text as an existing token: never merge this pair */
            p->stamp = -1;
            list_release(tr, p);
            continue;
        }
        int32_t zid = BPE_FIRST_MERGE + tr->nmerges;
        int32_t step = tr->nmerges + 1;
        tr->tok_off[zid] = (uint32_t)zoff;
        tr->tok_len[zid] = (uint32_t)(la + lb);
        tr->mleft[tr->nmerges] = a;
        tr->mright[tr->nmerges] = b;
        tr->nmerges++;
        p->stamp = -1;
        tr->ntouched = 0;
        /* Walk the chain; pair_add may grow the pool, so re-derive pointers. */
        int32_t blk = p->head;
        while (blk >= 0) {
            size_t base = (size_t)blk * BLOCK_INTS;
            int32_t fill = tr->pool[base + BLOCK_WORDS + 1];
            for (int32_t k = 0; k < fill; k++) {
                int32_t w = tr->pool[base + k];
                if (merge_in_word(tr, w, a, b, zid, step) < 0) return -1;
            }
            blk = tr->pool[base + BLOCK_WORDS];
        }
        p = &tr->pairs[e.pidx]; /* pairs may have moved */
        p->count = 0;
        list_release(tr, p);
        for (size_t k = 0; k < tr->ntouched; k++) {
            int32_t pi = tr->touched[k];
            if (tr->pairs[pi].count >= 2 && heap_push(tr, pi) < 0) return -1;
        }
        return 0;
    }
}

bpe_t *bpe_train(const char *text, size_t len, int vocab_size, char *err) {
    bpe_t *t = NULL;
    pretok_t *pt = NULL;
    bpe_strmap_t words = {0};
    trainer_t tr;
    memset(&tr, 0, sizeof tr);
    if (vocab_size < BPE_FIRST_MERGE || vocab_size > BPE_MAX_VOCAB) {
        mg_fail(err, "bpe_train: vocab_size %d outside [%d, %d]", vocab_size, BPE_FIRST_MERGE,
                BPE_MAX_VOCAB);
        goto fail;
    }
    if (!text && len) {
        mg_fail(err, "bpe_train: no text");
        goto fail;
    }
    pt = pretok_new(err);
    if (!pt) goto fail;
    if (count_words(pt, len ? text : "", len, &words, err) < 0) goto fail;
    if (trainer_init(&tr, &words, text, vocab_size) < 0) {
        mg_fail(err, "bpe_train: out of memory");
        goto fail;
    }
    bpe_strmap_free(&words); /* the words now live in tr */
    while (BPE_FIRST_MERGE + tr.nmerges < vocab_size) {
        int rc = merge_step(&tr);
        if (rc < 0) {
            mg_fail(err, "bpe_train: out of memory");
            goto fail;
        }
        if (rc > 0) break; /* no pair occurs twice: the text is used up */
    }
    t = bpe_build(tr.mleft, tr.mright, tr.nmerges, err);
fail:
    trainer_free(&tr);
    bpe_strmap_free(&words);
    pretok_free(pt);
    return t;
}
