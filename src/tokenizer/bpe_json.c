/* bpe_json.c - tokenizer.json in the Hugging Face `tokenizers` format
 * (ByteLevel pre-tokenizer/decoder + BPE model), written and read back.
 * Token text uses GPT-2's bytes_to_unicode alphabet (space -> "Ġ", ...),
 * so merges are written "left right" without ambiguity. The reader trusts
 * nothing: every id, string and merge is checked before anything is built. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/bpe_internal.h"
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

static int add_specials(cJSON *root) {
    cJSON *arr = cJSON_AddArrayToObject(root, "added_tokens");
    if (!arr) return -1;
    for (int id = 0; id < BPE_BYTE0; id++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return -1;
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddNumberToObject(o, "id", id) ||
            !cJSON_AddStringToObject(o, "content", bpe_special_names[id]) ||
            !cJSON_AddBoolToObject(o, "single_word", 0) || !cJSON_AddBoolToObject(o, "lstrip", 0) ||
            !cJSON_AddBoolToObject(o, "rstrip", 0) || !cJSON_AddBoolToObject(o, "normalized", 0) ||
            !cJSON_AddBoolToObject(o, "special", 1))
            return -1;
    }
    return 0;
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
        const unsigned char *s = t->bytes + t->tok_off[id];
        if (id < BPE_BYTE0) {
            memcpy(buf, s, t->tok_len[id]);
            buf[t->tok_len[id]] = '\0';
        } else {
            map_bytes(b2c, s, t->tok_len[id], buf);
        }
        if (!cJSON_AddNumberToObject(vocab, buf, id)) return -1;
    }
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    if (!merges) return -1;
    for (int i = 0; i < t->num_merges; i++) {
        int32_t l = t->left[i], r = t->right[i];
        map_bytes(b2c, t->bytes + t->tok_off[l], t->tok_len[l], buf);
        map_bytes(b2c, t->bytes + t->tok_off[r], t->tok_len[r], buf2);
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
        add_specials(root) < 0 || !cJSON_AddNullToObject(root, "normalizer"))
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

/* ---- reader ---- */

typedef struct {
    int n;                /* vocab size */
    size_t *off;          /* [n] token bytes offsets into bytes */
    uint32_t *len;        /* [n] */
    unsigned char *bytes; /* decoded token bytes */
    size_t nbytes;
    bpe_strmap_t ids;  /* token bytes -> id */
    size_t maxlen;     /* longest key text */
    uint16_t b2c[256]; /* byte -> mapped code point */
    int16_t c2b[MAPPED_CP_LIMIT];
    unsigned char *scratch; /* maxlen + 1 bytes */
} vocab_t;

static void vocab_free(vocab_t *v) {
    mg_free(v->off);
    mg_free(v->len);
    mg_free(v->bytes);
    mg_free(v->scratch);
    bpe_strmap_free(&v->ids);
}

static int is_null_or_absent(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return !x || cJSON_IsNull(x);
}

/* Settings that would make Hugging Face encode differently from us. */
static int check_settings(const cJSON *root, const cJSON *model, char *err) {
    char sh[48];
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0))
        return mg_fail(err, "tokenizer.json: model.type is not \"BPE\"");
    if (!is_null_or_absent(model, "dropout"))
        return mg_fail(err, "tokenizer.json: model.dropout is not supported");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (x && !cJSON_IsNull(x) && !(cJSON_IsString(x) && x->valuestring[0] == '\0'))
            return mg_fail(err, "tokenizer.json: model.%s is not supported", affixes[i]);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges")))
        return mg_fail(err, "tokenizer.json: model.ignore_merges=true is not supported");
    if (!is_null_or_absent(root, "normalizer"))
        return mg_fail(err, "tokenizer.json: a normalizer is not supported");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(pre, "type");
        if (!cJSON_IsObject(pre) || !cJSON_IsString(pt) || strcmp(pt->valuestring, "ByteLevel"))
            return mg_fail(err, "tokenizer.json: pre_tokenizer must be ByteLevel");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space")))
            return mg_fail(err,
                           "tokenizer.json: pre_tokenizer add_prefix_space=true is not supported");
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsArray(added))
        return mg_fail(err, "tokenizer.json: added_tokens is not an array");
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return mg_fail(err,
                           "tokenizer.json: added_tokens entry without numeric id and content");
        double d = id->valuedouble;
        if (!(d >= 0 && d < BPE_BYTE0 && d == (double)(int)d) ||
            strcmp(content->valuestring, bpe_special_names[(int)d]) != 0)
            return mg_fail(err,
                           "tokenizer.json: added token \"%s\" is not one of <PAD> <UNK> <BOS> "
                           "<EOS> at ids 0..3",
                           show(content->valuestring, sh));
    }
    return 0;
}

static int read_vocab(const cJSON *vocab, vocab_t *v, char *err) {
    char sh[48];
    uint8_t *seen = NULL;
    int rc = -1;
    size_t n = 0, total = 0, maxlen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!e->string) {
            mg_fail(err, "tokenizer.json: vocab entry without a key");
            goto fail;
        }
        if (++n > BPE_MAX_VOCAB) {
            mg_fail(err, "tokenizer.json: vocab has more than %d entries", BPE_MAX_VOCAB);
            goto fail;
        }
        size_t l = strlen(e->string);
        total += l;
        maxlen = MG_MAX(maxlen, l);
    }
    if (n < BPE_FIRST_MERGE) {
        mg_fail(err, "tokenizer.json: vocab has %zu entries, needs at least %d", n,
                BPE_FIRST_MERGE);
        goto fail;
    }
    v->n = (int)n;
    v->maxlen = maxlen;
    v->off = mg_malloc(n * sizeof *v->off);
    v->len = mg_malloc(n * sizeof *v->len);
    v->bytes = mg_malloc(total + 1);
    v->scratch = mg_malloc(maxlen + 1);
    seen = mg_calloc(n, 1);
    if (!v->off || !v->len || !v->bytes || !v->scratch || !seen ||
        bpe_strmap_init(&v->ids, n) < 0) {
        mg_fail(err, "tokenizer.json: out of memory for %zu vocab entries", n);
        goto fail;
    }
    cJSON_ArrayForEach(e, vocab) {
        const char *key = e->string;
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || !(d >= 0 && d < (double)n) || d != (double)(int)d) {
            mg_fail(err, "tokenizer.json: vocab \"%s\" has id that is not an integer in [0, %zu)",
                    show(key, sh), n);
            goto fail;
        }
        int id = (int)d;
        if (seen[id]) {
            mg_fail(err, "tokenizer.json: vocab id %d appears twice", id);
            goto fail;
        }
        seen[id] = 1;
        unsigned char *dst = v->bytes + v->nbytes;
        long bl;
        if (id < BPE_BYTE0) {
            if (strcmp(key, bpe_special_names[id]) != 0) {
                mg_fail(err, "tokenizer.json: vocab id %d must be %s, not \"%s\"", id,
                        bpe_special_names[id], show(key, sh));
                goto fail;
            }
            bl = (long)strlen(key);
            memcpy(dst, key, (size_t)bl);
        } else {
            bl = unmap_text(v->c2b, key, strlen(key), dst);
            if (bl < 0) {
                mg_fail(err, "tokenizer.json: vocab \"%s\" is not in the byte-level alphabet",
                        show(key, sh));
                goto fail;
            }
            if (id < BPE_FIRST_MERGE && (bl != 1 || dst[0] != id - BPE_BYTE0)) {
                mg_fail(err, "tokenizer.json: vocab id %d must be the byte 0x%02x, not \"%s\"", id,
                        id - BPE_BYTE0, show(key, sh));
                goto fail;
            }
            if (id >= BPE_FIRST_MERGE && bl < 2) {
                mg_fail(err, "tokenizer.json: merged token id %d \"%s\" is shorter than 2 bytes",
                        id, show(key, sh));
                goto fail;
            }
        }
        int is_new;
        int64_t *slot = bpe_strmap_put(&v->ids, v->bytes, dst, (size_t)bl, &is_new);
        if (!slot) {
            mg_fail(err, "tokenizer.json: out of memory");
            goto fail;
        }
        if (!is_new) {
            mg_fail(err, "tokenizer.json: vocab has the token \"%s\" twice (ids %d and %d)",
                    show(key, sh), (int)*slot, id);
            goto fail;
        }
        *slot = id;
        v->off[id] = v->nbytes;
        v->len[id] = (uint32_t)bl;
        v->nbytes += (size_t)bl;
    }
    /* n distinct ids in [0, n): none missing. */
    rc = 0;
fail:
    mg_free(seen);
    return rc;
}

/* Splits one merge entry ("a b" or ["a", "b"]) and finds the parts' ids. */
static int read_merge(const cJSON *m, int i, vocab_t *v, int32_t *l, int32_t *r, char *err) {
    char sh[48];
    const char *part[2];
    size_t plen[2];
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return mg_fail(err, "tokenizer.json: merge %d \"%s\" is not \"left right\"", i,
                           show(s, sh));
        part[0] = s;
        plen[0] = (size_t)(sp - s);
        part[1] = sp + 1;
        plen[1] = strlen(sp + 1);
    } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        part[0] = cJSON_GetArrayItem(m, 0)->valuestring;
        part[1] = cJSON_GetArrayItem(m, 1)->valuestring;
        plen[0] = strlen(part[0]);
        plen[1] = strlen(part[1]);
    } else {
        return mg_fail(err, "tokenizer.json: merge %d is not a string or a pair of strings", i);
    }
    int32_t id[2];
    for (int k = 0; k < 2; k++) {
        /* Parts of a valid merge are vocab keys, so they are never longer
         * than the longest key: the scratch buffer suffices. */
        long bl = -1;
        int64_t *found = NULL;
        if (plen[k] <= v->maxlen && (bl = unmap_text(v->c2b, part[k], plen[k], v->scratch)) >= 0 &&
            bl > 0)
            found = bpe_strmap_find(&v->ids, v->bytes, v->scratch, (size_t)bl);
        if (!found) {
            char piece[48];
            size_t c = MG_MIN(plen[k], (size_t)40);
            memcpy(piece, part[k], c);
            piece[c] = '\0';
            return mg_fail(err, "tokenizer.json: merge %d part \"%s\" is not in the vocab", i,
                           show(piece, sh));
        }
        id[k] = (int32_t)*found;
    }
    int32_t z = BPE_FIRST_MERGE + i;
    if (id[0] < BPE_BYTE0 || id[1] < BPE_BYTE0 || id[0] >= z || id[1] >= z)
        return mg_fail(err, "tokenizer.json: merge %d uses id %d/%d, not a byte or earlier merge",
                       i, (int)id[0], (int)id[1]);
    if ((uint64_t)v->len[id[0]] + v->len[id[1]] != v->len[z] ||
        memcmp(v->bytes + v->off[z], v->bytes + v->off[id[0]], v->len[id[0]]) != 0 ||
        memcmp(v->bytes + v->off[z] + v->len[id[0]], v->bytes + v->off[id[1]], v->len[id[1]]) != 0)
        return mg_fail(err, "tokenizer.json: merge %d does not spell vocab id %d", i, (int)z);
    *l = id[0];
    *r = id[1];
    return 0;
}

bpe_t *bpe_from_json(const char *json, size_t len, char *err) {
    bpe_t *t = NULL;
    cJSON *root = NULL;
    vocab_t v;
    memset(&v, 0, sizeof v);
    cp_tables(v.b2c, v.c2b);
    int32_t *left = NULL, *right = NULL;
    if (!json || len == 0) {
        mg_fail(err, "tokenizer.json: empty input");
        goto fail;
    }
    root = cJSON_ParseWithLength(json, len);
    if (!root) {
        mg_fail(err, "tokenizer.json: not valid JSON");
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        mg_fail(err, "tokenizer.json: top level is not an object");
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        mg_fail(err, "tokenizer.json: \"model\" is missing or not an object");
        goto fail;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) {
        mg_fail(err, "tokenizer.json: \"model.vocab\" is missing or not an object");
        goto fail;
    }
    if (!cJSON_IsArray(merges)) {
        mg_fail(err, "tokenizer.json: \"model.merges\" is missing or not an array");
        goto fail;
    }
    if (check_settings(root, model, err) < 0) goto fail;
    if (read_vocab(vocab, &v, err) < 0) goto fail;
    int nm = v.n - BPE_FIRST_MERGE, i = 0;
    int count = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) if (++count > nm) break;
    if (count != nm) {
        if (count > nm)
            mg_fail(err, "tokenizer.json: more than %d merges for %d vocab entries", nm, v.n);
        else
            mg_fail(err, "tokenizer.json: %d merges for %d vocab entries (need %d)", count, v.n,
                    nm);
        goto fail;
    }
    left = mg_malloc(((size_t)nm + 1) * sizeof *left);
    right = mg_malloc(((size_t)nm + 1) * sizeof *right);
    if (!left || !right) {
        mg_fail(err, "tokenizer.json: out of memory");
        goto fail;
    }
    cJSON_ArrayForEach(m, merges) {
        if (read_merge(m, i, &v, &left[i], &right[i], err) < 0) goto fail;
        i++;
    }
    t = bpe_build(left, right, nm, err);
fail:
    mg_free(left);
    mg_free(right);
    vocab_free(&v);
    cJSON_Delete(root);
    return t;
}

int bpe_save(const bpe_t *t, const char *path, char *err) {
    size_t len;
    char *txt = bpe_to_json(t, &len, err);
    if (!txt) return -1;
    int rc = -1;
    FILE *f = fopen(path, "wb");
    if (!f) {
        mg_fail(err, "bpe_save: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (fwrite(txt, 1, len, f) != len) {
        mg_fail(err, "bpe_save: cannot write %s: %s", path, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        mg_fail(err, "bpe_save: cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    rc = 0;
fail:
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
