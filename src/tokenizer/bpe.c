/* bpe.c - the tokenizer object: construction from a vocabulary and merge
 * list (any byte-level layout, or minigpt's own), accessors and decoding.
 * Encoding lives in bpe_encode.c, training in bpe_train.c, the file
 * formats in bpe_json.c. */
#include <string.h>

#include "tokenizer/bpe_internal.h"
#include "util/common.h"

const char *const bpe_special_names[4] = {"<PAD>", "<UNK>", "<BOS>", "<EOS>"};

static int same_bytes(const bpe_t *t, int id, const void *s, size_t n) {
    return t->tok_len[id] == n && memcmp(t->bytes + t->tok_off[id], s, n) == 0;
}

/* minigpt's layout: specials 0..3 by name, byte b at 4 + b, merge r makes
 * 260 + r, nothing else. */
static int is_minigpt_layout(const bpe_t *t) {
    if (t->vocab_size != BPE_FIRST_MERGE + t->num_merges) return 0;
    for (int id = 0; id < BPE_BYTE0; id++)
        if (!same_bytes(t, id, bpe_special_names[id], strlen(bpe_special_names[id]))) return 0;
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] != BPE_BYTE0 + b) return 0;
    for (int r = 0; r < t->num_merges; r++)
        if (t->result[r] != BPE_FIRST_MERGE + r) return 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i] >= BPE_BYTE0) return 0;
    return 1;
}

static int find_eot(const bpe_t *t) {
    static const char *const names[] = {"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        for (int i = 0; i < t->n_added; i++)
            if (t->kind[t->added[i]] == BPE_KIND_SPECIAL &&
                same_bytes(t, t->added[i], names[k], strlen(names[k])))
                return t->added[i];
    int only = -1, count = 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->kind[t->added[i]] == BPE_KIND_SPECIAL) only = t->added[i], count++;
    return count == 1 ? only : -1;
}

bpe_t *bpe_build_general(const bpe_spec_t *s, char *err) {
    bpe_t *t = NULL;
    int n = s->n, nm = s->num_merges;
    if (n < 256 || n > BPE_MAX_VOCAB || nm < 0 || nm > n || s->n_added < 0 || s->n_added > n) {
        mg_fail(err, "bpe: bad sizes (vocab %d, merges %d)", n, nm);
        goto fail;
    }
    t = mg_calloc(1, sizeof *t);
    if (!t) goto oom;
    t->vocab_size = n;
    t->num_merges = nm;
    size_t total = 0;
    for (int id = 0; id < n; id++)
        total += s->len[id];
    t->left = mg_malloc(((size_t)nm + 1) * sizeof *t->left);
    t->right = mg_malloc(((size_t)nm + 1) * sizeof *t->right);
    t->result = mg_malloc(((size_t)nm + 1) * sizeof *t->result);
    t->rank_of = mg_malloc((size_t)n * sizeof *t->rank_of);
    t->tok_off = mg_malloc((size_t)n * sizeof *t->tok_off);
    t->tok_len = mg_malloc((size_t)n * sizeof *t->tok_len);
    t->kind = mg_malloc((size_t)n);
    t->added = mg_malloc(((size_t)s->n_added + 1) * sizeof *t->added);
    t->added_flags = mg_calloc((size_t)s->n_added + 1, 1);
    t->bytes = mg_malloc(total + 1);
    if (!t->left || !t->right || !t->result || !t->rank_of || !t->tok_off || !t->tok_len ||
        !t->kind || !t->added || !t->added_flags || !t->bytes ||
        bpe_pairmap_init(&t->ranks, (size_t)nm) < 0)
        goto oom;
    size_t off = 0;
    for (int id = 0; id < n; id++) {
        t->tok_off[id] = off;
        t->tok_len[id] = s->len[id];
        memcpy(t->bytes + off, s->bytes + s->off[id], s->len[id]);
        off += s->len[id];
        t->kind[id] = s->kind[id];
        t->rank_of[id] = -1;
        if (s->kind[id] > BPE_KIND_ADDED) {
            mg_fail(err, "bpe: bad kind for id %d", id);
            goto fail;
        }
    }
    t->n_added = s->n_added;
    for (int i = 0; i < s->n_added; i++) {
        int32_t id = s->added[i];
        if (id < 0 || id >= n || s->kind[id] == BPE_KIND_NORMAL || s->len[id] == 0) {
            mg_fail(err, "bpe: added token %d (id %d) is not a non-empty added id", i, (int)id);
            goto fail;
        }
        t->added[i] = id;
        t->added_flags[i] = s->added_flags ? s->added_flags[i] : 0;
    }
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    for (int id = 0; id < n; id++) {
        if (t->kind[id] != BPE_KIND_NORMAL || t->tok_len[id] != 1) continue;
        unsigned char b = t->bytes[t->tok_off[id]];
        if (t->byte_id[b] >= 0) {
            mg_fail(err, "bpe: the byte 0x%02x is both id %d and id %d", b, (int)t->byte_id[b], id);
            goto fail;
        }
        t->byte_id[b] = id;
    }
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] < 0) {
            mg_fail(err, "bpe: the vocabulary has no token for the byte 0x%02x", b);
            goto fail;
        }
    }
    for (int r = 0; r < nm; r++) {
        int32_t l = s->left[r], rr = s->right[r], z = s->result[r];
        if (l < 0 || rr < 0 || z < 0 || l >= n || rr >= n || z >= n ||
            t->kind[l] != BPE_KIND_NORMAL || t->kind[rr] != BPE_KIND_NORMAL ||
            t->kind[z] != BPE_KIND_NORMAL) {
            mg_fail(err, "bpe: merge %d (%d, %d -> %d) uses an id out of range or special", r,
                    (int)l, (int)rr, (int)z);
            goto fail;
        }
        if ((uint64_t)t->tok_len[l] + t->tok_len[rr] != t->tok_len[z] ||
            memcmp(t->bytes + t->tok_off[z], t->bytes + t->tok_off[l], t->tok_len[l]) != 0 ||
            memcmp(t->bytes + t->tok_off[z] + t->tok_len[l], t->bytes + t->tok_off[rr],
                   t->tok_len[rr]) != 0) {
            mg_fail(err, "bpe: merge %d does not spell token %d", r, (int)z);
            goto fail;
        }
        int32_t *slot = bpe_pairmap_put(&t->ranks, bpe_pair_key(l, rr));
        if (!slot) goto oom;
        if (*slot >= 0) {
            mg_fail(err, "bpe: merge %d repeats merge %d", r, (int)*slot);
            goto fail;
        }
        *slot = r;
        t->left[r] = l;
        t->right[r] = rr;
        t->result[r] = z;
        if (t->rank_of[z] < 0) t->rank_of[z] = r;
    }
    t->minigpt = is_minigpt_layout(t);
    if (t->minigpt)
        for (int id = 0; id < BPE_BYTE0; id++)
            t->kind[id] = BPE_KIND_SPECIAL;
    t->eot = t->minigpt ? BPE_EOS : find_eot(t);
    t->pretok = pretok_new(err);
    if (!t->pretok) goto fail;
    return t;
oom:
    mg_fail(err, "bpe: out of memory");
fail:
    bpe_free(t);
    return NULL;
}

bpe_t *bpe_build(const int32_t *left, const int32_t *right, int num_merges, char *err) {
    bpe_t *t = NULL;
    size_t *off = NULL;
    uint32_t *len = NULL;
    unsigned char *bytes = NULL;
    uint8_t *kind = NULL;
    int32_t *result = NULL;
    if (num_merges < 0 || num_merges > BPE_MAX_VOCAB - BPE_FIRST_MERGE) {
        mg_fail(err, "bpe: bad merge count %d", num_merges);
        goto done;
    }
    int nv = BPE_FIRST_MERGE + num_merges;
    off = mg_malloc((size_t)nv * sizeof *off);
    len = mg_malloc((size_t)nv * sizeof *len);
    kind = mg_calloc((size_t)nv, 1);
    result = mg_malloc(((size_t)num_merges + 1) * sizeof *result);
    if (!off || !len || !kind || !result) goto oom;
    /* token lengths first (checking that parts come earlier), then bytes */
    size_t total = 0;
    for (int id = 0; id < nv; id++) {
        if (id < BPE_BYTE0) {
            len[id] = (uint32_t)strlen(bpe_special_names[id]);
            kind[id] = BPE_KIND_SPECIAL;
        } else if (id < BPE_FIRST_MERGE) {
            len[id] = 1;
        } else {
            int i = id - BPE_FIRST_MERGE;
            int32_t l = left[i], r = right[i];
            if (l < BPE_BYTE0 || r < BPE_BYTE0 || l >= id || r >= id) {
                mg_fail(err, "bpe: merge %d (%d, %d) uses an id that is special or not yet defined",
                        i, (int)l, (int)r);
                goto done;
            }
            uint64_t sum = (uint64_t)len[l] + len[r];
            if (sum > UINT32_MAX || total + sum > ((size_t)1 << 40)) {
                mg_fail(err, "bpe: merge %d makes a token too long", i);
                goto done;
            }
            len[id] = (uint32_t)sum;
            result[i] = id;
        }
        off[id] = total;
        total += len[id];
    }
    bytes = mg_malloc(total + 1);
    if (!bytes) goto oom;
    for (int id = 0; id < nv; id++) {
        if (id < BPE_BYTE0) {
            memcpy(bytes + off[id], bpe_special_names[id], len[id]);
        } else if (id < BPE_FIRST_MERGE) {
            bytes[off[id]] = (unsigned char)(id - BPE_BYTE0);
        } else {
            int32_t l = left[id - BPE_FIRST_MERGE], r = right[id - BPE_FIRST_MERGE];
            memcpy(bytes + off[id], bytes + off[l], len[l]);
            memcpy(bytes + off[id] + len[l], bytes + off[r], len[r]);
        }
    }
    bpe_spec_t s = {.n = nv,
                    .off = off,
                    .len = len,
                    .bytes = bytes,
                    .kind = kind,
                    .num_merges = num_merges,
                    .left = left,
                    .right = right,
                    .result = result};
    t = bpe_build_general(&s, err);
    goto done;
oom:
    mg_fail(err, "bpe: out of memory");
done:
    mg_free(off);
    mg_free(len);
    mg_free(bytes);
    mg_free(kind);
    mg_free(result);
    return t;
}

void bpe_free(bpe_t *t) {
    if (!t) return;
    mg_free(t->left);
    mg_free(t->right);
    mg_free(t->result);
    mg_free(t->rank_of);
    mg_free(t->tok_off);
    mg_free(t->tok_len);
    mg_free(t->kind);
    mg_free(t->added);
    mg_free(t->added_flags);
    mg_free(t->bytes);
    bpe_pairmap_free(&t->ranks);
    pretok_free(t->pretok);
    mg_free(t);
}

int bpe_vocab_size(const bpe_t *t) { return t->vocab_size; }
int bpe_num_merges(const bpe_t *t) { return t->num_merges; }
int bpe_is_minigpt(const bpe_t *t) { return t->minigpt; }
int bpe_eot_id(const bpe_t *t) { return t->eot; }
int bpe_byte_id(const bpe_t *t, unsigned char b) { return t->byte_id[b]; }

int bpe_token_kind(const bpe_t *t, int id) {
    return id >= 0 && id < t->vocab_size ? t->kind[id] : BPE_TOKEN_NORMAL;
}

int bpe_merge_rank(const bpe_t *t, int id) {
    return id >= 0 && id < t->vocab_size ? t->rank_of[id] : -1;
}

void bpe_merge_at(const bpe_t *t, int rank, int *left, int *right) {
    int ok = rank >= 0 && rank < t->num_merges;
    if (left) *left = ok ? t->left[rank] : -1;
    if (right) *right = ok ? t->right[rank] : -1;
}

void bpe_merge_pair(const bpe_t *t, int id, int *left, int *right) {
    int r = bpe_merge_rank(t, id);
    if (left) *left = r >= 0 ? t->left[r] : -1;
    if (right) *right = r >= 0 ? t->right[r] : -1;
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
        if (t->kind[ids[i]] != BPE_KIND_SPECIAL) total += t->tok_len[ids[i]];
    }
    char *s = mg_malloc(total + 1);
    if (!s) return mg_fail(err, "bpe_decode: out of memory for %zu bytes", total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (t->kind[ids[i]] == BPE_KIND_SPECIAL) continue; /* specials carry no text */
        memcpy(s + off, t->bytes + t->tok_off[ids[i]], t->tok_len[ids[i]]);
        off += t->tok_len[ids[i]];
    }
    s[off] = '\0';
    *out = s;
    if (len) *len = off;
    return 0;
}
