/* checkpoint.c - save and load whole models as safetensors. */
#define _POSIX_C_SOURCE 200809L
#include "io/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "util/common.h"

/* cJSON strings are malloc'ed by cJSON; copy into our allocator */
static char *json_print(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    char *r = s ? mg_strdup(s) : NULL;
    cJSON_free(s);
    return r;
}

char *ckpt_config_to_json(const gpt_config_t *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "architecture", "gpt2");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(j, "context_length", c->ctx);
    cJSON_AddNumberToObject(j, "d_model", c->dim);
    cJSON_AddNumberToObject(j, "n_layers", c->layers);
    cJSON_AddNumberToObject(j, "n_heads", c->heads);
    /* the architecture options (gpt.h), always written; absent (older
     * files) they read as the GPT-2 block */
    cJSON_AddStringToObject(j, "pos", c->pos == GPT_POS_ROPE ? "rope" : "learned");
    cJSON_AddStringToObject(j, "norm", c->norm == GPT_NORM_RMS ? "rmsnorm" : "layernorm");
    cJSON_AddBoolToObject(j, "qk_norm", c->qk_norm);
    cJSON_AddBoolToObject(j, "tie_head", !c->untie_head);
    cJSON_AddBoolToObject(j, "zero_init", c->zero_init);
    cJSON_AddStringToObject(j, "mlp", gpt_mlp_name(c->mlp));
    cJSON_AddNumberToObject(j, "ffn_hidden", gpt_ffn_hidden(c));
    char *s = json_print(j);
    cJSON_Delete(j);
    return s;
}

static int get_int(const cJSON *o, const char *key, int *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return mg_fail(err, "model_config: '%s' missing or not a number", key);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < 1 || d > 1e9)
        return mg_fail(err, "model_config: '%s' is not a positive integer", key);
    *out = (int)d;
    return 0;
}

/* An optional string key: absent leaves *out (the default); else one of
 * names[0..n) gives its index. */
static int get_choice(const cJSON *o, const char *key, const char *const *names, int n, int *out,
                      char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    for (int i = 0; cJSON_IsString(v) && i < n; i++) {
        if (strcmp(v->valuestring, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return mg_fail(err, "model_config: unknown value of '%s' (expected \"%s\" or \"%s\")", key,
                   names[0], names[1]);
}

/* An optional boolean key: absent leaves *out; flip stores its negation. */
static int get_bool(const cJSON *o, const char *key, int flip, int *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return mg_fail(err, "model_config: '%s' is not true or false", key);
    *out = cJSON_IsTrue(v) != flip;
    return 0;
}

int ckpt_config_from_json(const char *json, gpt_config_t *c, char *err) {
    int rc = -1;
    static const char *const pos[] = {"learned", "rope"}, *const norm[] = {"layernorm", "rmsnorm"};
    *c = (gpt_config_t){0}; /* every option off: the GPT-2 block */
    cJSON *j = cJSON_Parse(json);
    if (!cJSON_IsObject(j)) {
        mg_fail(err, "model_config is not a JSON object");
        goto done;
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architecture");
    if (!cJSON_IsString(arch) || strcmp(arch->valuestring, "gpt2") != 0) {
        mg_fail(err, "model_config: architecture is not \"gpt2\"");
        goto done;
    }
    if (get_int(j, "vocab_size", &c->vocab, err) || get_int(j, "context_length", &c->ctx, err) ||
        get_int(j, "d_model", &c->dim, err) || get_int(j, "n_layers", &c->layers, err) ||
        get_int(j, "n_heads", &c->heads, err) || get_choice(j, "pos", pos, 2, &c->pos, err) ||
        get_choice(j, "norm", norm, 2, &c->norm, err) ||
        get_bool(j, "qk_norm", 0, &c->qk_norm, err) ||
        get_bool(j, "tie_head", 1, &c->untie_head, err) ||
        get_bool(j, "zero_init", 0, &c->zero_init, err))
        goto done;
    /* the MLP: absent in checkpoints from before --mlp, which are GPT-2's */
    c->mlp = GPT_MLP_GELU;
    c->ffn = 0;
    const cJSON *mlp = cJSON_GetObjectItemCaseSensitive(j, "mlp");
    if (mlp && (!cJSON_IsString(mlp) || (c->mlp = gpt_mlp_from_name(mlp->valuestring)) < 0)) {
        mg_fail(err, "model_config: 'mlp' is not one of \"gelu\", \"relu2\", \"swiglu\"");
        goto done;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "ffn_hidden") && get_int(j, "ffn_hidden", &c->ffn, err))
        goto done;
    rc = gpt_config_check(c, err);
done:
    cJSON_Delete(j);
    return rc;
}

/* JSON numbers for the metadata; NaN (not measured) becomes null */
static void add_num(cJSON *j, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(j, k, v);
    else
        cJSON_AddNullToObject(j, k);
}

int ckpt_save(const char *path, const gpt_model_t *m, const bpe_t *tok, const ckpt_meta_t *meta,
              char *err) {
    return ckpt_save_ex(path, m, tok, meta, NULL, NULL, err);
}

int ckpt_save_ex(const char *path, const gpt_model_t *m, const bpe_t *tok, const ckpt_meta_t *meta,
                 const char *source, const char *created, char *err) {
    int rc = -1;
    float *host = NULL;
    char *cfg = NULL, *tj = NULL, *tm = NULL, *pm = NULL;
    st_writer_t *w = st_writer_new();
    host = mg_malloc(m->num_floats * sizeof(float));
    if (!w || !host) {
        mg_fail(err, "out of memory saving '%s'", path);
        goto done;
    }
    m->ops->download(host, m->weights, m->num_floats * sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        if (st_writer_add(w, p->name, ST_F32, p->ndim, p->shape, host + p->offset, err)) goto done;
    }
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "step", (double)meta->step);
    cJSON_AddNumberToObject(t, "epoch", meta->epoch);
    add_num(t, "train_loss", meta->train_loss);
    add_num(t, "val_loss", meta->val_loss);
    add_num(t, "val_bpb", meta->val_bpb);
    cJSON_AddNumberToObject(t, "tokens_seen", (double)meta->tokens_seen);
    add_num(t, "lr", meta->lr);
    add_num(t, "seconds", meta->seconds);
    if (meta->optimizer[0]) cJSON_AddStringToObject(t, "optimizer", meta->optimizer);
    tm = json_print(t);
    cJSON_Delete(t);
    cJSON *pj = cJSON_CreateObject();
    add_num(pj, "tokens_per_second", meta->tokens_per_second);
    pm = json_print(pj);
    cJSON_Delete(pj);
    cfg = ckpt_config_to_json(&m->cfg);
    tj = bpe_to_json(tok, NULL, err);
    if (!tm || !pm || !cfg || !tj) {
        if (tj) mg_fail(err, "out of memory saving '%s'", path);
        goto done;
    }
    char stamp[32];
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    if (st_writer_meta(w, "model_config", cfg, err) || st_writer_meta(w, "tokenizer", tj, err) ||
        st_writer_meta(w, "training_metadata", tm, err) ||
        st_writer_meta(w, "performance_metrics", pm, err) ||
        st_writer_meta(w, "creation_timestamp", created ? created : stamp, err) ||
        st_writer_meta(w, "format", "minigpt-1", err) ||
        (source && st_writer_meta(w, "source", source, err)))
        goto done;
    rc = st_writer_save(w, path, err);
done:
    st_writer_free(w);
    mg_free(host);
    mg_free(cfg);
    mg_free(tj);
    mg_free(tm);
    mg_free(pm);
    return rc;
}

static double num_or_nan(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

/* training_metadata is informative: missing fields read as "not measured" */
void ckpt_meta_from_json(const char *tm, const char *pm, ckpt_meta_t *meta) {
    cJSON *t = tm ? cJSON_Parse(tm) : NULL, *p = pm ? cJSON_Parse(pm) : NULL;
    double step = num_or_nan(t, "step"), epoch = num_or_nan(t, "epoch");
    double seen = num_or_nan(t, "tokens_seen");
    meta->step = isfinite(step) && fabs(step) < 1e15 ? (long)step : 0;
    meta->epoch = isfinite(epoch) && fabs(epoch) < 1e9 ? (int)epoch : 0;
    meta->tokens_seen = isfinite(seen) && fabs(seen) < 1e18 ? (long long)seen : 0;
    meta->train_loss = num_or_nan(t, "train_loss");
    meta->val_loss = num_or_nan(t, "val_loss");
    meta->val_bpb = num_or_nan(t, "val_bpb");
    meta->lr = num_or_nan(t, "lr");
    meta->seconds = num_or_nan(t, "seconds");
    meta->tokens_per_second = num_or_nan(p, "tokens_per_second");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "optimizer");
    snprintf(meta->optimizer, sizeof meta->optimizer, "%s",
             cJSON_IsString(o) ? o->valuestring : "");
    cJSON_Delete(t);
    cJSON_Delete(p);
}

/* The index of the first NaN or infinity among n float32 values, or -1:
 * such a weight would turn every logit into NaN. */
static long first_nonfinite(const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, b + 4 * i, sizeof u);
        if ((u & 0x7f800000u) == 0x7f800000u) return (long)i;
    }
    return -1;
}

ckpt_t *ckpt_load(const char *path, const ops_backend_t *ops, char *err) {
    char why[MG_ERR_LEN];
    gpt_config_t cfg = {0};
    ckpt_t *c = mg_calloc(1, sizeof *c);
    if (!c) {
        mg_fail(err, "out of memory");
        return NULL;
    }
    c->file = st_open(path, err); /* its reason names the file already */
    if (!c->file) {
        ckpt_free(c);
        return NULL;
    }
    const char *cj = st_meta(c->file, "model_config");
    const char *tj = st_meta(c->file, "tokenizer");
    if (!cj) {
        mg_fail(why, "no model_config in the metadata");
        goto fail;
    }
    if (!tj) {
        mg_fail(why, "no tokenizer in the metadata");
        goto fail;
    }
    if (ckpt_config_from_json(cj, &cfg, why)) goto fail;
    c->tok = bpe_from_json(tj, strlen(tj), why);
    if (!c->tok) goto fail;
    if (bpe_vocab_size(c->tok) > cfg.vocab) {
        mg_fail(why, "tokenizer has %d tokens but the model only %d", bpe_vocab_size(c->tok),
                cfg.vocab);
        goto fail;
    }
    c->model = gpt_create(&cfg, ops, why);
    if (!c->model) goto fail;
    gpt_model_t *m = c->model;
    if (c->file->n_tensors != m->n_params) {
        mg_fail(why, "%d tensors, but the config needs %d", c->file->n_tensors, m->n_params);
        goto fail;
    }
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        const st_tensor_t *t = st_find(c->file, p->name);
        if (!t) {
            mg_fail(why, "missing tensor '%s'", p->name);
            goto fail;
        }
        if (t->dtype != ST_F32 || t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
            (p->ndim == 2 && t->shape[1] != p->shape[1])) {
            mg_fail(why, "tensor '%s' has the wrong dtype or shape for the config", p->name);
            goto fail;
        }
        long bad = first_nonfinite(t->data, p->numel);
        if (bad >= 0) {
            mg_fail(why, "tensor '%s' holds a non-finite value (NaN or infinity) at index %ld",
                    p->name, bad);
            goto fail;
        }
        m->ops->upload(m->weights + p->offset, t->data, p->numel * sizeof(float));
    }
    ckpt_meta_from_json(st_meta(c->file, "training_metadata"),
                        st_meta(c->file, "performance_metrics"), &c->meta);
    const char *stamp = st_meta(c->file, "creation_timestamp");
    snprintf(c->created, sizeof c->created, "%s", stamp ? stamp : "unknown");
    c->source = st_meta(c->file, "source");
    return c;
fail:
    mg_fail(err, "%s: %s", path, why);
    ckpt_free(c);
    return NULL;
}

void ckpt_free(ckpt_t *c) {
    if (!c) return;
    gpt_free(c->model);
    bpe_free(c->tok);
    st_close(c->file);
    mg_free(c);
}
