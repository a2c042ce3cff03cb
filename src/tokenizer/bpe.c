/* bpe.c - the tokenizer object: construction from a merge list, accessors
 * and decoding. Encoding lives in bpe_encode.c, training in bpe_train.c. */
#include <string.h>

#include "tokenizer/bpe_internal.h"
#include "util/common.h"

const char *const bpe_special_names[4] = {"<PAD>", "<UNK>", "<BOS>", "<EOS>"};

bpe_t *bpe_build(const int32_t *left, const int32_t *right, int num_merges, char *err) {
    bpe_t *t = NULL;
    if (num_merges < 0 || num_merges > BPE_MAX_VOCAB - BPE_FIRST_MERGE) {
        mg_fail(err, "bpe: bad merge count %d", num_merges);
        goto fail;
    }
    t = mg_calloc(1, sizeof *t);
    if (!t) {
        mg_fail(err, "bpe: out of memory");
        goto fail;
    }
    int nv = BPE_FIRST_MERGE + num_merges;
    t->vocab_size = nv;
    t->num_merges = num_merges;
    t->left = mg_malloc(((size_t)num_merges + 1) * sizeof *t->left);
    t->right = mg_malloc(((size_t)num_merges + 1) * sizeof *t->right);
    t->tok_off = mg_malloc((size_t)nv * sizeof *t->tok_off);
    t->tok_len = mg_malloc((size_t)nv * sizeof *t->tok_len);
    if (!t->left || !t->right || !t->tok_off || !t->tok_len) {
        mg_fail(err, "bpe: out of memory");
        goto fail;
    }
    if (bpe_pairmap_init(&t->ranks, (size_t)num_merges) < 0) {
        mg_fail(err, "bpe: out of memory");
        goto fail;
    }

    /* First pass: validate and size; token lengths add up exactly. */
    size_t total = 0;
    for (int id = 0; id < BPE_FIRST_MERGE; id++) {
        t->tok_len[id] = id < BPE_BYTE0 ? (uint32_t)strlen(bpe_special_names[id]) : 1;
        total += t->tok_len[id];
    }
    for (int i = 0; i < num_merges; i++) {
        int id = BPE_FIRST_MERGE + i;
        int32_t l = left[i], r = right[i];
        if (l < BPE_BYTE0 || r < BPE_BYTE0 || l >= id || r >= id) {
            mg_fail(err, "bpe: merge %d (%d, %d) uses an id that is special or not yet defined", i,
                    (int)l, (int)r);
            goto fail;
        }
        uint64_t len = (uint64_t)t->tok_len[l] + t->tok_len[r];
        if (len > UINT32_MAX) {
            mg_fail(err, "bpe: merge %d makes a token too long", i);
            goto fail;
        }
        t->tok_len[id] = (uint32_t)len;
        total += len;
        int32_t *slot = bpe_pairmap_put(&t->ranks, bpe_pair_key(l, r));
        if (!slot) {
            mg_fail(err, "bpe: out of memory");
            goto fail;
        }
        if (*slot >= 0) {
            mg_fail(err, "bpe: merge %d repeats merge %d", i, (int)*slot);
            goto fail;
        }
        *slot = i;
        t->left[i] = l;
        t->right[i] = r;
    }
    t->bytes = mg_malloc(total + 1);
    if (!t->bytes) {
        mg_fail(err, "bpe: out of memory");
        goto fail;
    }
    size_t off = 0;
    for (int id = 0; id < nv; id++) {
        t->tok_off[id] = off;
        if (id < BPE_BYTE0) {
            memcpy(t->bytes + off, bpe_special_names[id], t->tok_len[id]);
        } else if (id < BPE_FIRST_MERGE) {
            t->bytes[off] = (unsigned char)(id - BPE_BYTE0);
        } else {
            int32_t l = t->left[id - BPE_FIRST_MERGE], r = t->right[id - BPE_FIRST_MERGE];
            memcpy(t->bytes + off, t->bytes + t->tok_off[l], t->tok_len[l]);
            memcpy(t->bytes + off + t->tok_len[l], t->bytes + t->tok_off[r], t->tok_len[r]);
        }
        off += t->tok_len[id];
    }
    t->pretok = pretok_new(err);
    if (!t->pretok) goto fail;
    return t;
fail:
    bpe_free(t);
    return NULL;
}

void bpe_free(bpe_t *t) {
    if (!t) return;
    mg_free(t->left);
    mg_free(t->right);
    mg_free(t->tok_off);
    mg_free(t->tok_len);
    mg_free(t->bytes);
    bpe_pairmap_free(&t->ranks);
    pretok_free(t->pretok);
    mg_free(t);
}

int bpe_vocab_size(const bpe_t *t) { return t->vocab_size; }
int bpe_num_merges(const bpe_t *t) { return t->num_merges; }

void bpe_merge_pair(const bpe_t *t, int id, int *left, int *right) {
    int ok = id >= BPE_FIRST_MERGE && id < t->vocab_size;
    if (left) *left = ok ? t->left[id - BPE_FIRST_MERGE] : -1;
    if (right) *right = ok ? t->right[id - BPE_FIRST_MERGE] : -1;
}

const unsigned char *bpe_token_bytes(const bpe_t *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_len[id];
    return t->bytes + t->tok_off[id];
}

int bpe_decode(const bpe_t *t, const int32_t *ids, size_t n, char **out, size_t *len, char *err) {
    *out = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return mg_fail(err, "bpe_decode: id %d at position %zu is out of range [0, %d)",
                           (int)ids[i], i, t->vocab_size);
        if (ids[i] >= BPE_BYTE0) total += t->tok_len[ids[i]];
    }
    char *s = mg_malloc(total + 1);
    if (!s) return mg_fail(err, "bpe_decode: out of memory for %zu bytes", total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < BPE_BYTE0) continue; /* specials carry no text */
        memcpy(s + off, t->bytes + t->tok_off[ids[i]], t->tok_len[ids[i]]);
        off += t->tok_len[ids[i]];
    }
    s[off] = '\0';
    *out = s;
    if (len) *len = off;
    return 0;
}
