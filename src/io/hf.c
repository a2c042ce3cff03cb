/* hf.c - Hugging Face GPT-2 folders <-> minigpt checkpoints (see hf.h). */
#define _XOPEN_SOURCE 700
#include "io/hf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/half.h"
#include "io/safetensors.h"
#include "ops/cpu/cpu.h"
#include "util/atomic.h"
#include "util/common.h"

/* minigpt's per-layer names and GPT-2's; 1: a Conv1D matrix, (in, out) there */
static const struct {
    const char *mg, *hf;
    int transposed;
} layer_map[] = {
    {"ln1.weight", "ln_1.weight", 0},
    {"ln1.bias", "ln_1.bias", 0},
    {"attn.qkv.weight", "attn.c_attn.weight", 1},
    {"attn.qkv.bias", "attn.c_attn.bias", 0},
    {"attn.proj.weight", "attn.c_proj.weight", 1},
    {"attn.proj.bias", "attn.c_proj.bias", 0},
    {"ln2.weight", "ln_2.weight", 0},
    {"ln2.bias", "ln_2.bias", 0},
    {"mlp.fc.weight", "mlp.c_fc.weight", 1},
    {"mlp.fc.bias", "mlp.c_fc.bias", 0},
    {"mlp.proj.weight", "mlp.c_proj.weight", 1},
    {"mlp.proj.bias", "mlp.c_proj.bias", 0},
};

int hf_param_name(const char *name, char *out, size_t cap, int *transposed) {
    *transposed = 0;
    if (strcmp(name, "token_embedding.weight") == 0) return snprintf(out, cap, "wte.weight"), 0;
    if (strcmp(name, "position_embedding.weight") == 0) return snprintf(out, cap, "wpe.weight"), 0;
    if (strncmp(name, "ln_f.", 5) == 0) return snprintf(out, cap, "%s", name), 0;
    int layer, used = 0;
    if (sscanf(name, "transformer.layers.%d.%n", &layer, &used) == 1 && used > 0)
        for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++)
            if (strcmp(name + used, layer_map[i].mg) == 0) {
                *transposed = layer_map[i].transposed;
                snprintf(out, cap, "h.%d.%s", layer, layer_map[i].hf);
                return 0;
            }
    return -1;
}

/* ---- import ---- */

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Converts n values of t (F32, F16, BF16) to float32 at dst; a transposed
 * (rows, cols) matrix lands as (cols, rows). */
static int to_f32(const st_tensor_t *t, float *dst, int64_t rows, int64_t cols, int transposed) {
    const unsigned char *src = t->data;
    size_t es = st_dtype_size(t->dtype);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            size_t i = (size_t)(r * cols + c);
            float v;
            uint16_t h;
            if (t->dtype == ST_F32) {
                memcpy(&v, src + 4 * i, 4);
            } else {
                memcpy(&h, src + es * i, 2);
                v = t->dtype == ST_F16 ? half_f16_to_f32(h) : half_bf16_to_f32(h);
            }
            if (!isfinite(v)) return -1;
            dst[transposed ? (size_t)(c * rows + r) : i] = v;
        }
    }
    return 0;
}

static const st_tensor_t *find_hf(const st_file_t *f, const char *name) {
    char full[160];
    snprintf(full, sizeof full, "transformer.%s", name);
    const st_tensor_t *t = st_find(f, full);
    return t ? t : st_find(f, name);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Fills host (the model's parameter layout) from the file; every tensor of
 * the file must be used, ignored (mask buffers) or the tied head. */
static int read_weights(const st_file_t *f, const gpt_model_t *m, float *host, char *err) {
    int rc = -1;
    uint8_t *used = mg_calloc((size_t)f->n_tensors + 1, 1);
    if (!used) return mg_fail(err, "out of memory");
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        char hn[128];
        int tr;
        hf_param_name(p->name, hn, sizeof hn, &tr);
        const st_tensor_t *t = find_hf(f, hn);
        if (!t) {
            mg_fail(err, "model.safetensors: missing tensor '%s'", hn);
            goto done;
        }
        used[t - f->tensors] = 1;
        int64_t rows = tr ? p->shape[1] : p->shape[0],
                cols = p->ndim == 2 ? (tr ? p->shape[0] : p->shape[1]) : 1;
        int shape_ok =
            t->ndim == p->ndim && t->shape[0] == rows && (p->ndim == 1 || t->shape[1] == cols);
        if (!shape_ok) {
            char want[64];
            if (p->ndim == 2)
                snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
            else
                snprintf(want, sizeof want, "[%lld]", (long long)rows);
            mg_fail(err,
                    "model.safetensors: tensor '%s' has the wrong shape for config.json (want %s)",
                    hn, want);
            goto done;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            mg_fail(err, "model.safetensors: tensor '%s' is %s (F32, F16 or BF16 expected)", hn,
                    st_dtype_name(t->dtype));
            goto done;
        }
        if (to_f32(t, host + p->offset, rows, cols, tr) != 0) {
            mg_fail(err, "model.safetensors: tensor '%s' holds a NaN or infinity", hn);
            goto done;
        }
    }
    const gpt_param_t *wte = &m->params[0];
    for (int k = 0; k < f->n_tensors; k++) {
        const st_tensor_t *t = &f->tensors[k];
        if (used[k] || ends_with(t->name, ".attn.bias") || ends_with(t->name, ".attn.masked_bias"))
            continue;
        if (strcmp(t->name, "lm_head.weight") == 0) {
            float *head = mg_malloc(wte->numel * sizeof *head);
            int same = head && t->ndim == 2 && t->shape[0] == wte->shape[0] &&
                       t->shape[1] == wte->shape[1] &&
                       (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
                       to_f32(t, head, wte->shape[0], wte->shape[1], 0) == 0 &&
                       memcmp(head, host + wte->offset, wte->numel * sizeof *head) == 0;
            mg_free(head);
            if (same) continue;
            mg_fail(err, "model.safetensors: lm_head.weight differs from wte.weight (untied heads "
                         "are not supported)");
            goto done;
        }
        mg_fail(err, "model.safetensors: unexpected tensor '%.80s' (not a GPT-2 of this config)",
                t->name);
        goto done;
    }
    rc = 0;
done:
    mg_free(used);
    return rc;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mg_malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bpe_t *load_tokenizer(const char *dir, char *err) {
    char *tj = path_join(dir, "tokenizer.json"), *vj = path_join(dir, "vocab.json"),
         *mt = path_join(dir, "merges.txt");
    char *v = NULL, *m = NULL;
    bpe_t *t = NULL;
    size_t vl, ml;
    if (!tj || !vj || !mt) {
        mg_fail(err, "out of memory");
    } else if (exists(tj)) {
        t = bpe_load(tj, err);
    } else if (exists(vj) && exists(mt)) {
        if ((v = mg_read_file(vj, &vl, err)) && (m = mg_read_file(mt, &ml, err)))
            t = bpe_from_vocab_merges(v, vl, m, ml, err);
    } else {
        mg_fail(err, "%s: no tokenizer.json, nor vocab.json + merges.txt", dir);
    }
    mg_free(tj);
    mg_free(vj);
    mg_free(mt);
    mg_free(v);
    mg_free(m);
    return t;
}

/* The "source" metadata: where the weights came from. */
static char *source_json(const char *dir, const cJSON *cfg) {
    char real[PATH_MAX];
    cJSON *o = cJSON_CreateObject();
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cfg, "_name_or_path");
    char *s = NULL, *out = NULL;
    if (o && cJSON_AddStringToObject(o, "format", "huggingface") &&
        cJSON_AddStringToObject(o, "path", realpath(dir, real) ? real : dir) &&
        cJSON_AddStringToObject(o, "model_type", "gpt2") &&
        (!cJSON_IsString(name) || cJSON_AddStringToObject(o, "name_or_path", name->valuestring)) &&
        (s = cJSON_PrintUnformatted(o)))
        out = mg_strdup(s);
    cJSON_free(s);
    cJSON_Delete(o);
    return out;
}

static const char *meta_str(const cJSON *mg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(mg, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int hf_import(const char *dir, const char *out, char *err) {
    int rc = -1;
    char *cpath = path_join(dir, "config.json"), *mpath = path_join(dir, "model.safetensors");
    char *bin = path_join(dir, "pytorch_model.bin"), *cj = NULL, *src = NULL;
    cJSON *cfgj = NULL;
    bpe_t *tok = NULL;
    st_file_t *f = NULL;
    gpt_model_t *m = NULL;
    float *host = NULL;
    gpt_config_t cfg = {0};
    size_t clen;
    if (!cpath || !mpath || !bin) {
        mg_fail(err, "out of memory");
        goto done;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        mg_fail(err, "%s: not a folder", dir);
        goto done;
    }
    if (!(cj = mg_read_file(cpath, &clen, err))) goto done;
    if (hf_config_parse(cj, clen, &cfg, err)) goto done;
    char why[MG_ERR_LEN];
    if (gpt_config_check(&cfg, why)) {
        mg_fail(err, "config.json: %s", why);
        goto done;
    }
    cfgj = cJSON_ParseWithLength(cj, clen);
    if (!exists(mpath)) {
        if (exists(bin))
            mg_fail(err,
                    "%s holds pytorch_model.bin (a Python pickle, which minigpt never loads): use "
                    "its model.safetensors "
                    "(transformers: save_pretrained(DIR, safe_serialization=True))",
                    dir);
        else
            mg_fail(err, "%s: no model.safetensors", dir);
        goto done;
    }
    if (!(tok = load_tokenizer(dir, err))) goto done;
    if (bpe_vocab_size(tok) > cfg.vocab) {
        mg_fail(err, "%s: the tokenizer has %d tokens but the embedding only %d rows", dir,
                bpe_vocab_size(tok), cfg.vocab);
        goto done;
    }
    if (!(f = st_open(mpath, err))) goto done;
    ops_cpu_set_threads(0);
    if (!(m = gpt_create(&cfg, ops_cpu(), err))) goto done;
    if (!(host = mg_malloc(m->num_floats * sizeof *host))) {
        mg_fail(err, "out of memory for %zu parameters", m->num_floats);
        goto done;
    }
    if (read_weights(f, m, host, err)) goto done;
    m->ops->upload(m->weights, host, m->num_floats * sizeof *host);
    /* an export of a minigpt checkpoint carries its record: restored */
    const cJSON *mg = cJSON_GetObjectItemCaseSensitive(cfgj, "minigpt");
    ckpt_meta_t meta;
    ckpt_meta_from_json(meta_str(mg, "training_metadata"), meta_str(mg, "performance_metrics"),
                        &meta);
    if (!(src = source_json(dir, cfgj))) {
        mg_fail(err, "out of memory");
        goto done;
    }
    rc = ckpt_save_ex(out, m, tok, &meta, src, meta_str(mg, "creation_timestamp"), err);
done:
    mg_free(cpath);
    mg_free(mpath);
    mg_free(bin);
    mg_free(cj);
    mg_free(src);
    mg_free(host);
    cJSON_Delete(cfgj);
    gpt_free(m);
    st_close(f);
    bpe_free(tok);
    return rc;
}

/* ---- export ---- */

static int add_ok(cJSON *o, const char *k, double v) {
    return cJSON_AddNumberToObject(o, k, v) != NULL;
}

static char *print_free(cJSON *o) {
    char *s = o ? cJSON_Print(o) : NULL, *out = s ? mg_strdup(s) : NULL;
    cJSON_free(s);
    cJSON_Delete(o);
    return out;
}

static char *config_json(const ckpt_t *ck) {
    const gpt_config_t *c = &ck->model->cfg;
    int eot = bpe_eot_id(ck->tok), bos = bpe_is_minigpt(ck->tok) ? BPE_BOS : eot;
    cJSON *o = cJSON_CreateObject(),
          *arch = cJSON_CreateStringArray((const char *[]){"GPT2LMHeadModel"}, 1);
    cJSON *mg = cJSON_CreateObject();
    int ok = o && arch && mg && cJSON_AddItemToObject(o, "architectures", arch);
    if (!ok) cJSON_Delete(arch);
    ok = ok && cJSON_AddStringToObject(o, "model_type", "gpt2") &&
         add_ok(o, "vocab_size", c->vocab) && add_ok(o, "n_positions", c->ctx) &&
         add_ok(o, "n_ctx", c->ctx) && add_ok(o, "n_embd", c->dim) &&
         add_ok(o, "n_layer", c->layers) && add_ok(o, "n_head", c->heads) &&
         cJSON_AddNullToObject(o, "n_inner") &&
         cJSON_AddStringToObject(o, "activation_function", "gelu_new") &&
         add_ok(o, "layer_norm_epsilon", 1e-5) && add_ok(o, "resid_pdrop", 0) &&
         add_ok(o, "embd_pdrop", 0) && add_ok(o, "attn_pdrop", 0) &&
         add_ok(o, "initializer_range", 0.02) && cJSON_AddTrueToObject(o, "scale_attn_weights") &&
         cJSON_AddTrueToObject(o, "tie_word_embeddings") && cJSON_AddTrueToObject(o, "use_cache") &&
         cJSON_AddStringToObject(o, "torch_dtype", "float32");
    if (ok && eot >= 0) ok = add_ok(o, "bos_token_id", bos) && add_ok(o, "eos_token_id", eot);
    if (ok && bpe_is_minigpt(ck->tok)) ok = add_ok(o, "pad_token_id", BPE_PAD);
    /* the checkpoint's record, so that --from-hf gives it back */
    static const char *const keys[] = {"training_metadata", "performance_metrics",
                                       "creation_timestamp", "source"};
    for (size_t i = 0; ok && i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = st_meta(ck->file, keys[i]);
        if (v) ok = cJSON_AddStringToObject(mg, keys[i], v) != NULL;
    }
    if (ok)
        ok = cJSON_AddItemToObject(o, "minigpt", mg);
    else
        cJSON_Delete(mg);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_free(o);
}

static char *generation_config_json(const ckpt_t *ck) {
    int eot = bpe_eot_id(ck->tok);
    cJSON *o = cJSON_CreateObject();
    if (o && eot >= 0 &&
        !(add_ok(o, "bos_token_id", bpe_is_minigpt(ck->tok) ? BPE_BOS : eot) &&
          add_ok(o, "eos_token_id", eot))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_free(o);
}

static char *vocab_json(const bpe_t *t) {
    cJSON *o = cJSON_CreateObject();
    for (int id = 0; o && id < bpe_vocab_size(t); id++) {
        char *s = bpe_token_str(t, id);
        int ok = s && cJSON_AddNumberToObject(o, s, id);
        mg_free(s);
        if (!ok) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL, *out = s ? mg_strdup(s) : NULL;
    cJSON_free(s);
    cJSON_Delete(o);
    return out;
}

static char *merges_txt(const bpe_t *t, size_t *len) {
    mg_buf_t b = {0};
    mg_buf_put(&b, "#version: 0.2\n", 14);
    for (int r = 0; r < bpe_num_merges(t); r++) {
        int l, rr;
        bpe_merge_at(t, r, &l, &rr);
        char *a = bpe_token_str(t, l), *c = bpe_token_str(t, rr);
        if (a && c) {
            mg_buf_put(&b, a, strlen(a));
            mg_buf_put(&b, " ", 1);
            mg_buf_put(&b, c, strlen(c));
            mg_buf_put(&b, "\n", 1);
        }
        mg_free(a);
        mg_free(c);
        if (!a || !c) b.oom = 1;
    }
    if (b.oom) {
        mg_free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static const char *const export_files[] = {
    "model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
    "vocab.json",        "merges.txt",  "tokenizer_config.json"};
enum { N_EXPORT_FILES = sizeof export_files / sizeof export_files[0] };

/* outdir may be absent or an empty folder (it is then replaced). */
static int check_outdir(const char *outdir, char *err) {
    struct stat st;
    if (stat(outdir, &st) != 0)
        return errno == ENOENT ? 0 : mg_fail(err, "%s: %s", outdir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mg_fail(err, "%s exists and is not a folder: not overwriting it", outdir);
    DIR *d = opendir(outdir);
    if (!d) return mg_fail(err, "%s: %s", outdir, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? 0 : mg_fail(err, "%s exists and is not empty: not overwriting it", outdir);
}

static void remove_tmpdir(const char *tmp) {
    for (int i = 0; i < N_EXPORT_FILES; i++) {
        char *p = path_join(tmp, export_files[i]);
        if (p) unlink(p);
        mg_free(p);
    }
    rmdir(tmp);
}

static int write_text(const char *dir, const char *name, const char *text, size_t len, char *err) {
    char *p = path_join(dir, name);
    if (!text || !p) {
        mg_free(p);
        return mg_fail(err, "out of memory writing %s", name);
    }
    int rc = mg_write_atomic(p, text, len, err);
    mg_free(p);
    return rc;
}

static int write_weights(const ckpt_t *ck, const char *path, char *err) {
    const gpt_model_t *m = ck->model;
    float *host = mg_malloc(m->num_floats * sizeof *host),
          *hf = mg_malloc(m->num_floats * sizeof *hf);
    st_writer_t *w = st_writer_new();
    int rc = -1;
    if (!host || !hf || !w) {
        mg_fail(err, "out of memory");
        goto done;
    }
    m->ops->download(host, m->weights, m->num_floats * sizeof *host);
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        char hn[128], full[160];
        int tr;
        hf_param_name(p->name, hn, sizeof hn, &tr);
        snprintf(full, sizeof full, "transformer.%s", hn);
        const float *s = host + p->offset;
        float *d = hf + p->offset;
        int64_t shape[2] = {p->shape[0], p->shape[1]};
        if (tr) { /* (out, in) -> Conv1D's (in, out) */
            for (int64_t r = 0; r < p->shape[0]; r++)
                for (int64_t c = 0; c < p->shape[1]; c++)
                    d[c * p->shape[0] + r] = s[r * p->shape[1] + c];
            shape[0] = p->shape[1];
            shape[1] = p->shape[0];
        } else {
            memcpy(d, s, p->numel * sizeof *d);
        }
        if (st_writer_add(w, full, ST_F32, p->ndim, shape, d, err)) goto done;
    }
    /* transformers refuses a safetensors file without format "pt" */
    if (st_writer_meta(w, "format", "pt", err)) goto done;
    rc = st_writer_save(w, path, err);
done:
    st_writer_free(w);
    mg_free(host);
    mg_free(hf);
    return rc;
}

int hf_export(const char *path, const char *outdir, char *err) {
    int rc = -1;
    char *tmp = NULL, *mpath = NULL, *cfg = NULL, *gen = NULL, *tj = NULL, *vj = NULL, *mt = NULL,
         *tc = NULL;
    size_t tjl = 0, mtl = 0;
    ckpt_t *ck = NULL;
    if (check_outdir(outdir, err)) return -1;
    ops_cpu_set_threads(0);
    if (!(ck = ckpt_load(path, ops_cpu(), err))) return -1;
    if (gpt_gpt2_check(&ck->model->cfg, "--to-hf: Hugging Face GPT-2", err)) goto done;
    size_t n = strlen(outdir) + 32;
    if (!(tmp = mg_malloc(n))) {
        mg_fail(err, "out of memory");
        goto done;
    }
    mg_atomic_tmp(outdir, tmp, n); /* the trainer's cleaning knows the name */
    if (mkdir(tmp, 0777) != 0) {
        mg_fail(err, "cannot create '%s': %s", tmp, strerror(errno));
        mg_free(tmp);
        tmp = NULL;
        goto done;
    }
    cfg = config_json(ck);
    gen = generation_config_json(ck);
    tj = bpe_to_json(ck->tok, &tjl, err);
    vj = vocab_json(ck->tok);
    mt = merges_txt(ck->tok, &mtl);
    tc = bpe_config_json(ck->tok, ck->model->cfg.ctx, err);
    if (!(mpath = path_join(tmp, "model.safetensors")) || write_weights(ck, mpath, err) ||
        write_text(tmp, "config.json", cfg, cfg ? strlen(cfg) : 0, err) ||
        write_text(tmp, "generation_config.json", gen, gen ? strlen(gen) : 0, err) ||
        write_text(tmp, "tokenizer.json", tj, tjl, err) ||
        write_text(tmp, "vocab.json", vj, vj ? strlen(vj) : 0, err) ||
        write_text(tmp, "merges.txt", mt, mtl, err) ||
        write_text(tmp, "tokenizer_config.json", tc, tc ? strlen(tc) : 0, err))
        goto done;
    if (mg_atomic_sync_dir(tmp, err)) goto done;
    /* the empty folder, if any, is replaced by the complete one */
    if (rename(tmp, outdir) != 0) {
        mg_fail(err, "cannot create '%s': %s", outdir, strerror(errno));
        goto done;
    }
    mg_free(tmp);
    tmp = NULL;
    char parent[4096];
    rc = mg_atomic_sync_dir(mg_parent_dir(outdir, parent, sizeof parent), err);
done:
    if (tmp) remove_tmpdir(tmp);
    mg_free(tmp);
    mg_free(mpath);
    mg_free(cfg);
    mg_free(gen);
    mg_free(tj);
    mg_free(vj);
    mg_free(mt);
    mg_free(tc);
    ckpt_free(ck);
    return rc;
}
