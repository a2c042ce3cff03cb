/* gguf.c - GGUF v3 writer for llama.cpp's gpt2 architecture (see gguf.h).
 * Layout: header, metadata key/values, tensor infos, padding to the
 * alignment (32), then each tensor's data, each aligned to 32. */
#define _POSIX_C_SOURCE 200809L
#include "io/gguf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/half.h"
#include "io/hf.h"
#include "util/atomic.h"
#include "util/common.h"

enum { GGUF_ALIGN = 32, QK8_0 = 32 };
/* metadata value types */
enum { GV_UINT32 = 4, GV_INT32 = 5, GV_FLOAT32 = 6, GV_BOOL = 7, GV_STRING = 8, GV_ARRAY = 9 };
/* ggml tensor types */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8 };
/* llama.cpp token types */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };
/* general.file_type (llama_ftype) */
enum { FT_ALL_F32 = 0, FT_MOSTLY_F16 = 1, FT_MOSTLY_Q8_0 = 7 };

int gguf_type_from_name(const char *name, gguf_out_type_t *type) {
    if (strcmp(name, "f32") == 0)
        *type = GGUF_OUT_F32;
    else if (strcmp(name, "f16") == 0)
        *type = GGUF_OUT_F16;
    else if (strcmp(name, "q8_0") == 0)
        *type = GGUF_OUT_Q8_0;
    else
        return -1;
    return 0;
}

/* ---- little-endian writers into a buffer ---- */

static void put_u32(mg_buf_t *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    mg_buf_put(b, c, 4);
}
static void put_u64(mg_buf_t *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_str(mg_buf_t *b, const char *s, size_t n) {
    put_u64(b, n);
    mg_buf_put(b, s, n);
}
static void key(mg_buf_t *b, const char *k, uint32_t type) {
    put_str(b, k, strlen(k));
    put_u32(b, type);
}
static void kv_u32(mg_buf_t *b, const char *k, uint32_t v) {
    key(b, k, GV_UINT32);
    put_u32(b, v);
}
static void kv_f32(mg_buf_t *b, const char *k, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    key(b, k, GV_FLOAT32);
    put_u32(b, u);
}
static void kv_bool(mg_buf_t *b, const char *k, int v) {
    key(b, k, GV_BOOL);
    unsigned char c = (unsigned char)(v != 0);
    mg_buf_put(b, &c, 1);
}
static void kv_str(mg_buf_t *b, const char *k, const char *v) {
    key(b, k, GV_STRING);
    put_str(b, v, strlen(v));
}

/* ---- tensors ---- */

typedef struct {
    char name[160];
    int ndim;
    uint64_t ne[2]; /* ggml order: ne[0] = row length */
    uint32_t type;
    const float *data;
    size_t bytes, offset;
} tensor_t;

static size_t type_bytes(uint32_t type, uint64_t ne0, uint64_t rows) {
    if (type == GGML_F32) return (size_t)(ne0 * rows * 4);
    if (type == GGML_F16) return (size_t)(ne0 * rows * 2);
    return (size_t)(ne0 / QK8_0 * rows * (2 + QK8_0));
}

/* llama.cpp's names for minigpt's parameters. */
static int gguf_name(const char *mg, char *out, size_t cap) {
    static const struct {
        const char *hf, *gg;
    } map[] = {{"ln_1", "attn_norm"}, {"attn.c_attn", "attn_qkv"}, {"attn.c_proj", "attn_output"},
               {"ln_2", "ffn_norm"},  {"mlp.c_fc", "ffn_up"},      {"mlp.c_proj", "ffn_down"}};
    char hn[128];
    int tr, layer, used = 0;
    if (hf_param_name(mg, hn, sizeof hn, &tr)) return -1;
    if (strcmp(hn, "wte.weight") == 0) return snprintf(out, cap, "token_embd.weight"), 0;
    if (strcmp(hn, "wpe.weight") == 0) return snprintf(out, cap, "position_embd.weight"), 0;
    if (strncmp(hn, "ln_f.", 5) == 0) return snprintf(out, cap, "output_norm.%s", hn + 5), 0;
    if (sscanf(hn, "h.%d.%n", &layer, &used) != 1 || !used) return -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i].hf);
        if (strncmp(hn + used, map[i].hf, n) == 0 && hn[used + n] == '.')
            return snprintf(out, cap, "blk.%d.%s.%s", layer, map[i].gg, hn + used + n + 1), 0;
    }
    return -1;
}

static void write_tensor(mg_atomic_file_t *o, const tensor_t *t, void *scratch) {
    size_t n = (size_t)(t->ne[0] * t->ne[1]);
    if (t->type == GGML_F32) {
        mg_atomic_write(o, t->data, n * 4); /* x86-64 is little-endian, like GGUF */
    } else if (t->type == GGML_F16) {
        uint16_t *h = scratch;
        for (size_t i = 0; i < n; i++)
            h[i] = half_f32_to_f16(t->data[i]);
        mg_atomic_write(o, h, n * 2);
    } else { /* Q8_0, as ggml's quantize_row_q8_0_ref */
        unsigned char *q = scratch;
        for (size_t blk = 0; blk < n / QK8_0; blk++) {
            const float *x = t->data + blk * QK8_0;
            float amax = 0.0f;
            for (int i = 0; i < QK8_0; i++)
                amax = fmaxf(amax, fabsf(x[i]));
            float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            uint16_t dh = half_f32_to_f16(d);
            unsigned char *dst = q + blk * (2 + QK8_0);
            memcpy(dst, &dh, 2);
            for (int i = 0; i < QK8_0; i++)
                dst[2 + i] = (unsigned char)(int8_t)roundf(x[i] * id);
        }
        mg_atomic_write(o, q, n / QK8_0 * (2 + QK8_0));
    }
}

/* tokenizer.ggml.*: every id's string and type, the merges by rank. */
/* Returns the number of key/values written. */
static int put_tokenizer(mg_buf_t *b, const bpe_t *tok, int vocab) {
    int nt = bpe_vocab_size(tok), n = 7;
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    kv_str(b, "tokenizer.ggml.pre", "gpt-2");
    key(b, "tokenizer.ggml.tokens", GV_ARRAY);
    put_u32(b, GV_STRING);
    put_u64(b, (uint64_t)vocab);
    for (int id = 0; id < vocab; id++) {
        char pad[48], *s = id < nt ? bpe_token_str(tok, id) : NULL;
        if (id >= nt)
            snprintf(pad, sizeof pad, "<|minigpt_unused_%d|>", id);
        else if (!s)
            b->oom = 1;
        put_str(b, s ? s : pad, strlen(s ? s : pad));
        mg_free(s);
    }
    key(b, "tokenizer.ggml.token_type", GV_ARRAY);
    put_u32(b, GV_INT32);
    put_u64(b, (uint64_t)vocab);
    for (int id = 0; id < vocab; id++) {
        int k = bpe_token_kind(tok, id);
        put_u32(b, id >= nt                 ? TT_UNUSED
                   : k == BPE_TOKEN_SPECIAL ? TT_CONTROL
                   : k == BPE_TOKEN_ADDED   ? TT_USER_DEFINED
                                            : TT_NORMAL);
    }
    key(b, "tokenizer.ggml.merges", GV_ARRAY);
    put_u32(b, GV_STRING);
    put_u64(b, (uint64_t)bpe_num_merges(tok));
    for (int r = 0; r < bpe_num_merges(tok); r++) {
        int l, rr;
        bpe_merge_at(tok, r, &l, &rr);
        char *a = bpe_token_str(tok, l), *c = bpe_token_str(tok, rr);
        if (!a || !c) b->oom = 1;
        size_t la = a ? strlen(a) : 0, lc = c ? strlen(c) : 0;
        put_u64(b, la + 1 + lc);
        mg_buf_put(b, a, la);
        mg_buf_put(b, " ", 1);
        mg_buf_put(b, c, lc);
        mg_free(a);
        mg_free(c);
    }
    int eot = bpe_eot_id(tok);
    if (bpe_is_minigpt(tok)) {
        kv_u32(b, "tokenizer.ggml.bos_token_id", BPE_BOS);
        kv_u32(b, "tokenizer.ggml.eos_token_id", BPE_EOS);
        kv_u32(b, "tokenizer.ggml.padding_token_id", BPE_PAD);
        kv_u32(b, "tokenizer.ggml.unknown_token_id", BPE_UNK);
        n += 4;
    } else if (eot >= 0) {
        kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)eot);
        kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)eot);
        n += 2;
    }
    /* minigpt prompts start without a BOS token: so must llama.cpp's */
    kv_bool(b, "tokenizer.ggml.add_bos_token", 0);
    kv_bool(b, "tokenizer.ggml.add_eos_token", 0);
    return n;
}

int gguf_write(const ckpt_t *ck, const char *path, gguf_out_type_t type, char *err) {
    const gpt_model_t *m = ck->model;
    const gpt_config_t *c = &m->cfg;
    if (gpt_gpt2_check(c, "--to-gguf: llama.cpp's gpt2", err)) return -1;
    int rc = -1, nkv = 0;
    float *host = mg_malloc(m->num_floats * sizeof *host);
    tensor_t *ts = mg_calloc((size_t)m->n_params, sizeof *ts);
    void *scratch = NULL;
    mg_buf_t kv = {0}, hdr = {0};
    mg_atomic_file_t o = {0};
    if (!host || !ts) goto oom;
    m->ops->download(host, m->weights, m->num_floats * sizeof *host);
    size_t off = 0, widest = 0;
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        tensor_t *t = &ts[i];
        if (gguf_name(p->name, t->name, sizeof t->name)) {
            mg_fail(err, "gguf: no llama.cpp name for '%s'", p->name);
            goto fail;
        }
        t->ndim = p->ndim;
        t->ne[0] = (uint64_t)(p->ndim == 2 ? p->shape[1] : p->shape[0]);
        t->ne[1] = (uint64_t)(p->ndim == 2 ? p->shape[0] : 1);
        t->type = GGML_F32;
        if (p->ndim == 2 && type == GGUF_OUT_F16) t->type = GGML_F16;
        if (p->ndim == 2 && type == GGUF_OUT_Q8_0)
            t->type = t->ne[0] % QK8_0 == 0 ? GGML_Q8_0 : GGML_F16;
        t->data = host + p->offset;
        t->bytes = type_bytes(t->type, t->ne[0], t->ne[1]);
        t->offset = off;
        off += (t->bytes + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        widest = MG_MAX(widest, p->numel * 2);
    }
    if (!(scratch = mg_malloc(widest + 64))) goto oom;
    /* metadata */
    char name[256];
    snprintf(name, sizeof name, "minigpt %dL-%dH-%dC", c->layers, c->heads, c->dim);
    kv_str(&kv, "general.architecture", "gpt2"), nkv++;
    kv_str(&kv, "general.name", name), nkv++;
    kv_u32(&kv, "general.file_type",
           type == GGUF_OUT_F32   ? FT_ALL_F32
           : type == GGUF_OUT_F16 ? FT_MOSTLY_F16
                                  : FT_MOSTLY_Q8_0),
        nkv++;
    kv_u32(&kv, "general.quantization_version", 2), nkv++;
    kv_u32(&kv, "gpt2.context_length", (uint32_t)c->ctx), nkv++;
    kv_u32(&kv, "gpt2.embedding_length", (uint32_t)c->dim), nkv++;
    kv_u32(&kv, "gpt2.feed_forward_length", (uint32_t)(4 * c->dim)), nkv++;
    kv_u32(&kv, "gpt2.block_count", (uint32_t)c->layers), nkv++;
    kv_u32(&kv, "gpt2.attention.head_count", (uint32_t)c->heads), nkv++;
    kv_f32(&kv, "gpt2.attention.layer_norm_epsilon", 1e-5f), nkv++;
    nkv += put_tokenizer(&kv, ck->tok, c->vocab);
    /* header + tensor infos */
    mg_buf_put(&hdr, "GGUF", 4);
    put_u32(&hdr, 3);
    put_u64(&hdr, (uint64_t)m->n_params);
    put_u64(&hdr, (uint64_t)nkv);
    mg_buf_put(&hdr, kv.data, kv.len);
    for (int i = 0; i < m->n_params; i++) {
        const tensor_t *t = &ts[i];
        put_str(&hdr, t->name, strlen(t->name));
        put_u32(&hdr, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++)
            put_u64(&hdr, t->ne[d]);
        put_u32(&hdr, t->type);
        put_u64(&hdr, t->offset);
    }
    if (kv.oom || hdr.oom) goto oom;
    static const unsigned char zeros[GGUF_ALIGN];
    if (mg_atomic_open(&o, path, err)) goto fail;
    mg_atomic_write(&o, hdr.data, hdr.len);
    mg_atomic_write(&o, zeros, (GGUF_ALIGN - hdr.len % GGUF_ALIGN) % GGUF_ALIGN);
    for (int i = 0; i < m->n_params; i++) {
        write_tensor(&o, &ts[i], scratch);
        mg_atomic_write(&o, zeros, (GGUF_ALIGN - ts[i].bytes % GGUF_ALIGN) % GGUF_ALIGN);
    }
    rc = mg_atomic_close(&o, err);
    goto done;
oom:
    mg_fail(err, "gguf: out of memory");
fail:
    mg_atomic_abort(&o);
done:
    mg_free(host);
    mg_free(ts);
    mg_free(scratch);
    mg_free(kv.data);
    mg_free(hdr.data);
    return rc;
}
