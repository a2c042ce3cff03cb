/* bpe_json.c - tokenizer.json in the Hugging Face `tokenizers` format
 * (ByteLevel pre-tokenizer/decoder + BPE model), written and read back, and
 * GPT-2's original vocab.json + merges.txt read. Token text uses GPT-2's
 * bytes_to_unicode alphabet (space -> "Ġ", ...), so merges are written
 * "left right" without ambiguity. The reader trusts nothing: every id,
 * string and merge is checked before anything is built. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/bpe_internal.h"
#include "util/atomic.h"
#include "util/common.h"

/* ---- GPT-2 bytes_to_unicode ---- */

enum { MAPPED_CP_LIMIT = 324 }; /* mapped code points are < 256 + 68 */

static int printable_byte(int b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/* Byte -> code point: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to 256, 257, ... in byte order. */
static int byte_to_cp(int b) {
    if (printable_byte(b)) return b;
    int n = 0;
    for (int i = 0; i < b; i++)
        n += !printable_byte(i);
    return 256 + n;
}

static void cp_tables(uint16_t b2c[256], int16_t c2b[MAPPED_CP_LIMIT]) {
    for (int c = 0; c < MAPPED_CP_LIMIT; c++)
        c2b[c] = -1;
    for (int b = 0; b < 256; b++) {
        b2c[b] = (uint16_t)byte_to_cp(b);
        c2b[b2c[b]] = (int16_t)b;
    }
}

/* Writes the mapped UTF-8 text of bytes into out (room for 2n+1). */
static void map_bytes(const uint16_t b2c[256], const unsigned char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = b2c[s[i]];
        if (c < 0x80) {
            out[k++] = (char)c;
        } else {
            out[k++] = (char)(0xc0 | (c >> 6));
            out[k++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[k] = '\0';
}

/* Mapped UTF-8 text -> bytes (out has room for strlen(s)). Returns the byte
 * count, or -1 if s holds anything outside the mapped alphabet. */
static long unmap_text(const int16_t c2b[MAPPED_CP_LIMIT], const char *s, size_t n,
                       unsigned char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned c;
        if (u[i] < 0x80) {
            c = u[i++];
        } else if (u[i] >= 0xc2 && u[i] <= 0xdf && i + 1 < n && (u[i + 1] & 0xc0) == 0x80) {
            c = ((unsigned)(u[i] & 0x1f) << 6) | (u[i + 1] & 0x3f);
            i += 2;
        } else {
            return -1;
        }
        if (c >= MAPPED_CP_LIMIT || c2b[c] < 0) return -1;
        out[k++] = (unsigned char)c2b[c];
    }
    return (long)k;
}

/* A short, printable, one-line rendering of untrusted text for messages. */
static const char *show(const char *s, char out[48]) {
    size_t k = 0;
    for (; s && *s && k < 40; s++)
        out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (s && *s) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
    return out;
}

/* ---- writer ---- */

static cJSON *byte_level(int add_prefix_space) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "type", "ByteLevel") ||
        !cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space) ||
        !cJSON_AddBoolToObject(o, "trim_offsets", 1) || !cJSON_AddBoolToObject(o, "use_regex", 1)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* minigpt's four specials stay out of added_tokens: Hugging Face matches
 * every added token in the input text, and minigpt reads "<EOS>" in a text
 * as text. They are in model.vocab (ids 0..3) all the same. */
static int add_added(const bpe_t *t, cJSON *root, char *buf) {
    cJSON *arr = cJSON_AddArrayToObject(root, "added_tokens");
    if (!arr) return -1;
    if (t->minigpt) return 0;
    for (int i = 0; i < t->n_added; i++) {
        int32_t id = t->added[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) return -1;
        cJSON_AddItemToArray(arr, o);
        memcpy(buf, t->bytes + t->tok_off[id], t->tok_len[id]);
        buf[t->tok_len[id]] = '\0';
        if (!cJSON_AddNumberToObject(o, "id", id) || !cJSON_AddStringToObject(o, "content", buf) ||
            !cJSON_AddBoolToObject(o, "single_word", 0) || !cJSON_AddBoolToObject(o, "lstrip", 0) ||
            !cJSON_AddBoolToObject(o, "rstrip", 0) ||
            !cJSON_AddBoolToObject(o, "normalized",
                                   (t->added_flags[i] & BPE_ADDED_NORMALIZED) != 0) ||
            !cJSON_AddBoolToObject(o, "special", t->kind[id] == BPE_KIND_SPECIAL))
            return -1;
    }
    return 0;
}

/* id's vocab key into buf (room for 2 bytes per byte + 1). */
static void token_key(const bpe_t *t, const uint16_t b2c[256], int id, char *buf) {
    const unsigned char *s = t->bytes + t->tok_off[id];
    if (t->kind[id] != BPE_KIND_NORMAL) {
        memcpy(buf, s, t->tok_len[id]);
        buf[t->tok_len[id]] = '\0';
    } else {
        map_bytes(b2c, s, t->tok_len[id], buf);
    }
}

char *bpe_token_str(const bpe_t *t, int id) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    uint16_t b2c[256];
    int16_t c2b[MAPPED_CP_LIMIT];
    cp_tables(b2c, c2b);
    char *buf = mg_malloc(2 * (size_t)t->tok_len[id] + 1);
    if (buf) token_key(t, b2c, id, buf);
    return buf;
}

static int add_model(const bpe_t *t, cJSON *root, char *buf, char *buf2) {
    uint16_t b2c[256];
    int16_t c2b[MAPPED_CP_LIMIT];
    cp_tables(b2c, c2b);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    if (!m || !cJSON_AddStringToObject(m, "type", "BPE") || !cJSON_AddNullToObject(m, "dropout") ||
        !cJSON_AddNullToObject(m, "unk_token") ||
        !cJSON_AddNullToObject(m, "continuing_subword_prefix") ||
        !cJSON_AddNullToObject(m, "end_of_word_suffix") || !cJSON_AddFalseToObject(m, "fuse_unk") ||
        !cJSON_AddFalseToObject(m, "byte_fallback") || !cJSON_AddFalseToObject(m, "ignore_merges"))
        return -1;
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    if (!vocab) return -1;
    for (int id = 0; id < t->vocab_size; id++) {
        token_key(t, b2c, id, buf);
        if (!cJSON_AddNumberToObject(vocab, buf, id)) return -1;
    }
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    if (!merges) return -1;
    for (int i = 0; i < t->num_merges; i++) {
        token_key(t, b2c, t->left[i], buf);
        token_key(t, b2c, t->right[i], buf2);
        size_t n = strlen(buf);
        buf[n] = ' ';
        memcpy(buf + n + 1, buf2, strlen(buf2) + 1);
        cJSON *s = cJSON_CreateString(buf);
        if (!s) return -1;
        cJSON_AddItemToArray(merges, s);
    }
    return 0;
}

char *bpe_to_json(const bpe_t *t, size_t *len, char *err) {
    cJSON *root = NULL;
    char *buf = NULL, *buf2 = NULL, *txt = NULL, *out = NULL;
    size_t maxlen = 8;
    for (int id = 0; id < t->vocab_size; id++)
        maxlen = MG_MAX(maxlen, (size_t)t->tok_len[id]);
    /* a merge line holds two mapped parts (<= 2 bytes per byte each) */
    buf = mg_malloc(4 * maxlen + 4);
    buf2 = mg_malloc(2 * maxlen + 2);
    root = cJSON_CreateObject();
    if (!buf || !buf2 || !root) goto done;
    cJSON *pre, *dec;
    if (!cJSON_AddStringToObject(root, "version", "1.0") ||
        !cJSON_AddNullToObject(root, "truncation") || !cJSON_AddNullToObject(root, "padding") ||
        add_added(t, root, buf) < 0 || !cJSON_AddNullToObject(root, "normalizer"))
        goto done;
    if (!(pre = byte_level(0))) goto done;
    if (!cJSON_AddItemToObject(root, "pre_tokenizer", pre)) {
        cJSON_Delete(pre);
        goto done;
    }
    if (!cJSON_AddNullToObject(root, "post_processor")) goto done;
    if (!(dec = byte_level(1))) goto done;
    if (!cJSON_AddItemToObject(root, "decoder", dec)) {
        cJSON_Delete(dec);
        goto done;
    }
    if (add_model(t, root, buf, buf2) < 0) goto done;
    txt = cJSON_Print(root);
    if (!txt) goto done;
    size_t n = strlen(txt);
    out = mg_malloc(n + 2);
    if (!out) goto done;
    memcpy(out, txt, n);
    out[n++] = '\n';
    out[n] = '\0';
    if (len) *len = n;
done:
    /* every step above fails only for lack of memory */
    if (!out) mg_fail(err, "bpe_to_json: out of memory");
    if (txt) cJSON_free(txt);
    cJSON_Delete(root);
    mg_free(buf);
    mg_free(buf2);
    return out;
}

char *bpe_config_json(const bpe_t *t, int model_max_length, char *err) {
    char *out = NULL, *txt = NULL, *eot = t->eot >= 0 ? bpe_token_str(t, t->eot) : NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o || (t->eot >= 0 && !eot)) goto done;
    int ok = cJSON_AddStringToObject(o, "tokenizer_class", "GPT2Tokenizer") &&
             cJSON_AddNumberToObject(o, "model_max_length", model_max_length) &&
             cJSON_AddFalseToObject(o, "clean_up_tokenization_spaces") &&
             cJSON_AddFalseToObject(o, "add_prefix_space") &&
             cJSON_AddFalseToObject(o, "add_bos_token");
    if (ok && t->minigpt) {
        static const char *const roles[4] = {"pad_token", "unk_token", "bos_token", "eos_token"};
        for (int id = 0; id < BPE_BYTE0 && ok; id++)
            ok = cJSON_AddStringToObject(o, roles[id], bpe_special_names[id]) != NULL;
        ok = ok && cJSON_AddTrueToObject(o, "split_special_tokens");
    } else if (ok && eot) {
        ok = cJSON_AddStringToObject(o, "bos_token", eot) &&
             cJSON_AddStringToObject(o, "eos_token", eot) &&
             cJSON_AddStringToObject(o, "unk_token", eot);
    }
    if (ok && (txt = cJSON_Print(o))) out = mg_strdup(txt);
done:
    if (!out) mg_fail(err, "bpe_config_json: out of memory");
    if (txt) cJSON_free(txt);
    cJSON_Delete(o);
    mg_free(eot);
    return out;
}

/* ---- reader ---- */

typedef struct {
    const char *what; /* "tokenizer.json" or "vocab.json" for messages */
    int n;            /* vocab size (ids 0..n-1, model vocab and added tokens) */
    size_t *off;      /* [n] token bytes offsets into bytes */
    uint32_t *len;    /* [n] */
    uint8_t *kind;    /* [n] BPE_KIND_* */
    unsigned char *bytes;
    size_t nbytes;
    int n_added;
    int32_t *added;       /* [n_added] */
    uint8_t *added_flags; /* [n_added] */
    bpe_strmap_t ids;     /* normal token bytes -> id */
    size_t maxlen;        /* longest key text */
    uint16_t b2c[256];
    int16_t c2b[MAPPED_CP_LIMIT];
    unsigned char *scratch; /* 2 * maxlen + 2 bytes */
} vocab_t;

static void vocab_free(vocab_t *v) {
    mg_free(v->off);
    mg_free(v->len);
    mg_free(v->kind);
    mg_free(v->bytes);
    mg_free(v->added);
    mg_free(v->added_flags);
    mg_free(v->scratch);
    bpe_strmap_free(&v->ids);
}

static int is_null_or_absent(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return !x || cJSON_IsNull(x);
}

/* A component that must be absent/null or {"type": "ByteLevel", ...}. */
static int byte_level_or_null(const cJSON *root, const char *key, const char *what, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!x || cJSON_IsNull(x)) return 0;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(x, "type");
    if (!cJSON_IsObject(x) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "ByteLevel"))
        return mg_fail(err, "%s: %s must be ByteLevel (only byte-level BPE is supported)", what,
                       key);
    return 0;
}

/* Settings that would make Hugging Face encode differently from us. */
static int check_settings(const cJSON *root, const cJSON *model, const char *what, char *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0))
        return mg_fail(err, "%s: model.type is not \"BPE\"", what);
    if (!is_null_or_absent(model, "dropout"))
        return mg_fail(err, "%s: model.dropout is not supported", what);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (x && !cJSON_IsNull(x) && !(cJSON_IsString(x) && x->valuestring[0] == '\0'))
            return mg_fail(err, "%s: model.%s is not supported", what, affixes[i]);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges")))
        return mg_fail(err, "%s: model.ignore_merges=true is not supported", what);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return mg_fail(err, "%s: model.byte_fallback=true is not supported", what);
    if (!is_null_or_absent(root, "normalizer"))
        return mg_fail(err, "%s: a normalizer is not supported", what);
    if (byte_level_or_null(root, "pre_tokenizer", what, err) ||
        byte_level_or_null(root, "decoder", what, err) ||
        byte_level_or_null(root, "post_processor", what, err))
        return -1;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space")))
        return mg_fail(err, "%s: pre_tokenizer add_prefix_space=true is not supported", what);
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pre, "use_regex")))
        return mg_fail(err, "%s: pre_tokenizer use_regex=false is not supported", what);
    return 0;
}

/* added_tokens: ids, texts and flags, checked (the ids against n later). */
static int read_added(const cJSON *root, vocab_t *v, char *err) {
    char sh[48];
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return mg_fail(err, "%s: added_tokens is not an array", v->what);
    int count = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, added) if (++count > BPE_MAX_VOCAB) break;
    if (count > BPE_MAX_VOCAB) return mg_fail(err, "%s: too many added_tokens", v->what);
    v->added = mg_malloc(((size_t)count + 1) * sizeof *v->added);
    v->added_flags = mg_calloc((size_t)count + 1, 1);
    if (!v->added || !v->added_flags) return mg_fail(err, "%s: out of memory", v->what);
    cJSON_ArrayForEach(a, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || !content->valuestring[0])
            return mg_fail(err, "%s: added_tokens entry without numeric id and non-empty content",
                           v->what);
        double d = id->valuedouble;
        if (!(d >= 0 && d < BPE_MAX_VOCAB && d == (double)(int)d))
            return mg_fail(err, "%s: added token \"%s\" has a bad id", v->what,
                           show(content->valuestring, sh));
        static const char *const unsupported[] = {"lstrip", "rstrip", "single_word"};
        for (int k = 0; k < 3; k++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, unsupported[k])))
                return mg_fail(err, "%s: added token \"%s\": %s=true is not supported", v->what,
                               show(content->valuestring, sh), unsupported[k]);
        for (int k = 0; k < v->n_added; k++)
            if (v->added[k] == (int32_t)d)
                return mg_fail(err, "%s: added token id %d appears twice", v->what, (int)d);
        v->added[v->n_added] = (int32_t)d;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "normalized")))
            v->added_flags[v->n_added] |= BPE_ADDED_NORMALIZED;
        v->n_added++;
    }
    return 0;
}

static const cJSON *added_entry(const cJSON *root, int k) {
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), k);
}

static int read_vocab(const cJSON *root, const cJSON *vocab, vocab_t *v, char *err) {
    char sh[48];
    int32_t *added_of = NULL; /* [n] index into added, or -1 */
    int rc = -1;
    size_t nv = 0, total = 0, maxlen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!e->string) {
            mg_fail(err, "%s: vocab entry without a key", v->what);
            goto fail;
        }
        if (++nv > BPE_MAX_VOCAB) {
            mg_fail(err, "%s: vocab has more than %d entries", v->what, BPE_MAX_VOCAB);
            goto fail;
        }
        size_t l = strlen(e->string);
        total += l;
        maxlen = MG_MAX(maxlen, l);
    }
    /* the ids: every model vocab id and every added id, 0..n-1, no gaps */
    size_t n = nv;
    for (int k = 0; k < v->n_added; k++)
        n = MG_MAX(n, (size_t)v->added[k] + 1);
    if (n < 256) {
        mg_fail(err, "%s: vocab has %zu entries, needs at least the 256 bytes", v->what, n);
        goto fail;
    }
    if (n > nv + (size_t)v->n_added || n > BPE_MAX_VOCAB) {
        mg_fail(err, "%s: the ids are not contiguous (%zu vocab entries, %d added, largest id %zu)",
                v->what, nv, v->n_added, n - 1);
        goto fail;
    }
    for (int k = 0; k < v->n_added; k++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(added_entry(root, k), "content");
        size_t l = strlen(c->valuestring);
        total += l;
        maxlen = MG_MAX(maxlen, l);
    }
    v->n = (int)n;
    v->maxlen = maxlen;
    v->off = mg_malloc(n * sizeof *v->off);
    v->len = mg_calloc(n, sizeof *v->len);
    v->kind = mg_calloc(n, 1);
    v->bytes = mg_malloc(total + 1);
    v->scratch = mg_malloc(2 * maxlen + 2);
    added_of = mg_malloc(n * sizeof *added_of);
    uint8_t *seen = mg_calloc(n, 1);
    if (!v->off || !v->len || !v->kind || !v->bytes || !v->scratch || !added_of || !seen ||
        bpe_strmap_init(&v->ids, n) < 0) {
        mg_free(seen);
        mg_fail(err, "%s: out of memory for %zu vocab entries", v->what, n);
        goto fail;
    }
    for (size_t id = 0; id < n; id++)
        added_of[id] = -1;
    for (int k = 0; k < v->n_added; k++)
        added_of[v->added[k]] = k;
    cJSON_ArrayForEach(e, vocab) {
        const char *key = e->string;
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || !(d >= 0 && d < (double)n) || d != (double)(int)d) {
            mg_fail(err, "%s: vocab \"%s\" has an id that is not an integer in [0, %zu)", v->what,
                    show(key, sh), n);
            goto fail_seen;
        }
        int id = (int)d;
        if (seen[id]) {
            mg_fail(err, "%s: vocab id %d appears twice", v->what, id);
            goto fail_seen;
        }
        seen[id] = 1;
        unsigned char *dst = v->bytes + v->nbytes;
        long bl;
        if (added_of[id] >= 0) {
            const cJSON *c =
                cJSON_GetObjectItemCaseSensitive(added_entry(root, added_of[id]), "content");
            if (strcmp(c->valuestring, key) != 0) {
                mg_fail(err, "%s: vocab id %d is \"%s\" but the added token says otherwise",
                        v->what, id, show(key, sh));
                goto fail_seen;
            }
            continue; /* its text is stored below, with the added tokens */
        }
        bl = unmap_text(v->c2b, key, strlen(key), dst);
        if (bl <= 0) {
            mg_fail(err, "%s: vocab \"%s\" is not in the byte-level alphabet", v->what,
                    show(key, sh));
            goto fail_seen;
        }
        int is_new;
        int64_t *slot = bpe_strmap_put(&v->ids, v->bytes, dst, (size_t)bl, &is_new);
        if (!slot) {
            mg_fail(err, "%s: out of memory", v->what);
            goto fail_seen;
        }
        if (!is_new) {
            mg_fail(err, "%s: vocab has the token \"%s\" twice (ids %d and %d)", v->what,
                    show(key, sh), (int)*slot, id);
            goto fail_seen;
        }
        *slot = id;
        v->off[id] = v->nbytes;
        v->len[id] = (uint32_t)bl;
        v->nbytes += (size_t)bl;
    }
    for (int k = 0; k < v->n_added; k++) {
        const cJSON *a = added_entry(root, k);
        const char *c = cJSON_GetObjectItemCaseSensitive(a, "content")->valuestring;
        int id = v->added[k];
        size_t l = strlen(c);
        seen[id] = 1;
        memcpy(v->bytes + v->nbytes, c, l);
        v->off[id] = v->nbytes;
        v->len[id] = (uint32_t)l;
        v->nbytes += l;
        v->kind[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special"))
                          ? BPE_KIND_SPECIAL
                          : BPE_KIND_ADDED;
    }
    for (size_t id = 0; id < n; id++) {
        if (!seen[id]) {
            mg_fail(err, "%s: no token has id %zu (the ids must be 0..%zu)", v->what, id, n - 1);
            goto fail_seen;
        }
    }
    rc = 0;
fail_seen:
    mg_free(seen);
fail:
    mg_free(added_of);
    return rc;
}

/* The id of a merge part (a normal token's key), or -1. */
static int64_t part_id(vocab_t *v, const char *s, size_t n) {
    if (n == 0 || n > v->maxlen) return -1;
    long bl = unmap_text(v->c2b, s, n, v->scratch);
    if (bl <= 0) return -1;
    int64_t *found = bpe_strmap_find(&v->ids, v->bytes, v->scratch, (size_t)bl);
    return found ? *found : -1;
}

/* Splits one merge entry ("a b" or ["a", "b"]) and finds the ids of its
 * parts and of the token they make. */
static int read_merge(const char *s1, size_t n1, const char *s2, size_t n2, int i, vocab_t *v,
                      int32_t *l, int32_t *r, int32_t *z, char *err) {
    char sh[48], piece[48];
    const char *part[2] = {s1, s2};
    size_t plen[2] = {n1, n2};
    int64_t id[2];
    for (int k = 0; k < 2; k++) {
        if ((id[k] = part_id(v, part[k], plen[k])) < 0) {
            size_t c = MG_MIN(plen[k], (size_t)40);
            memcpy(piece, part[k], c);
            piece[c] = '\0';
            return mg_fail(err, "%s: merge %d part \"%s\" is not in the vocab", v->what, i,
                           show(piece, sh));
        }
    }
    size_t la = v->len[id[0]], lb = v->len[id[1]];
    memcpy(v->scratch, v->bytes + v->off[id[0]], la);
    memcpy(v->scratch + la, v->bytes + v->off[id[1]], lb);
    int64_t *found = bpe_strmap_find(&v->ids, v->bytes, v->scratch, la + lb);
    if (!found)
        return mg_fail(err, "%s: merge %d makes a token that is not in the vocab", v->what, i);
    *l = (int32_t)id[0];
    *r = (int32_t)id[1];
    *z = (int32_t)*found;
    return 0;
}

static int merge_entry(const cJSON *m, int i, vocab_t *v, int32_t *l, int32_t *r, int32_t *z,
                       char *err) {
    char sh[48];
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return mg_fail(err, "%s: merge %d \"%s\" is not \"left right\"", v->what, i,
                           show(s, sh));
        return read_merge(s, (size_t)(sp - s), sp + 1, strlen(sp + 1), i, v, l, r, z, err);
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
        cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        const char *a = cJSON_GetArrayItem(m, 0)->valuestring;
        const char *b = cJSON_GetArrayItem(m, 1)->valuestring;
        return read_merge(a, strlen(a), b, strlen(b), i, v, l, r, z, err);
    }
    return mg_fail(err, "%s: merge %d is not a string or a pair of strings", v->what, i);
}

/* The tokenizer from a parsed tokenizer.json-shaped tree. */
static bpe_t *from_tree(const cJSON *root, const char *what, char *err) {
    bpe_t *t = NULL;
    vocab_t v;
    memset(&v, 0, sizeof v);
    v.what = what;
    cp_tables(v.b2c, v.c2b);
    int32_t *left = NULL, *right = NULL, *result = NULL;
    if (!cJSON_IsObject(root)) {
        mg_fail(err, "%s: top level is not an object", what);
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        mg_fail(err, "%s: \"model\" is missing or not an object", what);
        goto fail;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) {
        mg_fail(err, "%s: \"model.vocab\" is missing or not an object", what);
        goto fail;
    }
    if (!cJSON_IsArray(merges)) {
        mg_fail(err, "%s: \"model.merges\" is missing or not an array", what);
        goto fail;
    }
    if (check_settings(root, model, what, err) < 0 || read_added(root, &v, err) < 0 ||
        read_vocab(root, vocab, &v, err) < 0)
        goto fail;
    int nm = 0, i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) if (++nm > v.n) break;
    if (nm > v.n) {
        mg_fail(err, "%s: more merges than vocab entries (%d)", what, v.n);
        goto fail;
    }
    left = mg_malloc(((size_t)nm + 1) * sizeof *left);
    right = mg_malloc(((size_t)nm + 1) * sizeof *right);
    result = mg_malloc(((size_t)nm + 1) * sizeof *result);
    if (!left || !right || !result) {
        mg_fail(err, "%s: out of memory", what);
        goto fail;
    }
    cJSON_ArrayForEach(m, merges) {
        if (merge_entry(m, i, &v, &left[i], &right[i], &result[i], err) < 0) goto fail;
        i++;
    }
    bpe_spec_t s = {.n = v.n,
                    .off = v.off,
                    .len = v.len,
                    .bytes = v.bytes,
                    .kind = v.kind,
                    .n_added = v.n_added,
                    .added = v.added,
                    .added_flags = v.added_flags,
                    .num_merges = nm,
                    .left = left,
                    .right = right,
                    .result = result};
    char e2[MG_ERR_LEN];
    t = bpe_build_general(&s, e2);
    if (!t) mg_fail(err, "%s: %s", what, e2);
fail:
    mg_free(left);
    mg_free(right);
    mg_free(result);
    vocab_free(&v);
    return t;
}

bpe_t *bpe_from_json(const char *json, size_t len, char *err) {
    if (!json || len == 0) {
        mg_fail(err, "tokenizer.json: empty input");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        mg_fail(err, "tokenizer.json: not valid JSON");
        return NULL;
    }
    bpe_t *t = from_tree(root, "tokenizer.json", err);
    cJSON_Delete(root);
    return t;
}

bpe_t *bpe_from_vocab_merges(const char *vocab_json, size_t vlen, const char *merges_txt,
                             size_t mlen, char *err) {
    bpe_t *t = NULL;
    cJSON *root = NULL, *vocab = NULL;
    char *line = NULL;
    if (!vocab_json || vlen == 0 || !(vocab = cJSON_ParseWithLength(vocab_json, vlen)) ||
        !cJSON_IsObject(vocab)) {
        mg_fail(err, "vocab.json: not a JSON object");
        goto done;
    }
    root = cJSON_CreateObject();
    cJSON *model = root ? cJSON_AddObjectToObject(root, "model") : NULL;
    cJSON *merges = model ? cJSON_AddArrayToObject(model, "merges") : NULL;
    cJSON *added = root ? cJSON_AddArrayToObject(root, "added_tokens") : NULL;
    line = mg_malloc(mlen + 1);
    if (!merges || !added || !line || !cJSON_AddItemToObject(model, "vocab", vocab)) goto oom;
    vocab = NULL; /* owned by root now */
    const cJSON *eot =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(model, "vocab"), "<|endoftext|>");
    if (eot) {
        cJSON *a = cJSON_CreateObject();
        if (!a) goto oom;
        cJSON_AddItemToArray(added, a);
        if (!cJSON_AddNumberToObject(a, "id", cJSON_IsNumber(eot) ? eot->valuedouble : -1) ||
            !cJSON_AddStringToObject(a, "content", "<|endoftext|>") ||
            !cJSON_AddTrueToObject(a, "special"))
            goto oom;
    }
    for (size_t i = 0; i < mlen;) {
        size_t e = i;
        while (e < mlen && merges_txt[e] != '\n')
            e++;
        size_t l = e - i;
        if (l && merges_txt[i + l - 1] == '\r') l--;
        memcpy(line, merges_txt + i, l);
        line[l] = '\0';
        if (strlen(line) != l) {
            mg_fail(err, "merges.txt: a line holds a NUL byte");
            goto done;
        }
        if (l && strncmp(line, "#version", 8) != 0) {
            cJSON *s = cJSON_CreateString(line);
            if (!s) goto oom;
            cJSON_AddItemToArray(merges, s);
        }
        i = e + 1;
    }
    t = from_tree(root, "vocab.json/merges.txt", err);
    goto done;
oom:
    mg_fail(err, "vocab.json: out of memory");
done:
    mg_free(line);
    cJSON_Delete(vocab);
    cJSON_Delete(root);
    return t;
}

int bpe_save(const bpe_t *t, const char *path, char *err) {
    size_t len;
    char *txt = bpe_to_json(t, &len, err);
    if (!txt) return -1;
    int rc = mg_write_atomic(path, txt, len, err);
    mg_free(txt);
    return rc;
}

bpe_t *bpe_load(const char *path, char *err) {
    size_t len;
    char *txt = mg_read_file(path, &len, err);
    if (!txt) return NULL;
    char e2[MG_ERR_LEN];
    bpe_t *t = bpe_from_json(txt, len, e2);
    if (!t) mg_fail(err, "%s: %s", path, e2);
    mg_free(txt);
    return t;
}
