/* gpt.c - GPT configuration, presets, the parameter table, allocation and
 * initialisation. The forward and backward passes are in gpt_train.c. */
#include "model/gpt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/common.h"

static const struct {
    const char *name;
    gpt_config_t cfg;
} presets[] = {
    {"micro", {512, 64, 64, 2, 2}},
    /* the default of `train`: what learns most in 5 minutes on 2 cores
     * (docs/training-recipe.md) */
    {"tiny", {8192, 256, 128, 2, 2}},
    {"mini", {4096, 256, 256, 4, 4}},
    {"small", {8192, 512, 512, 8, 8}},
    {"gpt2", {50257, 1024, 768, 12, 12}},
};

int gpt_preset(const char *name, gpt_config_t *cfg, char *err) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *cfg = presets[i].cfg;
            return 0;
        }
    }
    return mg_fail(err, "unknown preset '%s' (choose one of: %s)", name, gpt_preset_names());
}

const char *gpt_preset_names(void) { return "micro, tiny, mini, small, gpt2"; }

int gpt_config_check(const gpt_config_t *c, char *err) {
    if (c->vocab < 1 || c->vocab > (1 << 20))
        return mg_fail(err, "vocab %d out of range [1, 1048576]", c->vocab);
    if (c->ctx < 1 || c->ctx > (1 << 16))
        return mg_fail(err, "context %d out of range [1, 65536]", c->ctx);
    if (c->dim < 1 || c->dim > (1 << 14))
        return mg_fail(err, "dim %d out of range [1, 16384]", c->dim);
    if (c->layers < 1 || c->layers > 256)
        return mg_fail(err, "layers %d out of range [1, 256]", c->layers);
    if (c->heads < 1 || c->dim % c->heads != 0)
        return mg_fail(err, "heads %d must divide dim %d", c->heads, c->dim);
    return 0;
}

/* Per-layer tensors: name, rows and cols as multiples of C (cols 0: 1-D),
 * and where the pointer lives in gpt_layer_t. */
static const struct {
    const char *name;
    int rows, cols;
    size_t field;
} layer_params[] = {
    {"ln1.weight", 1, 0, offsetof(gpt_layer_t, ln1w)},
    {"ln1.bias", 1, 0, offsetof(gpt_layer_t, ln1b)},
    {"attn.qkv.weight", 3, 1, offsetof(gpt_layer_t, qkvw)},
    {"attn.qkv.bias", 3, 0, offsetof(gpt_layer_t, qkvb)},
    {"attn.proj.weight", 1, 1, offsetof(gpt_layer_t, projw)},
    {"attn.proj.bias", 1, 0, offsetof(gpt_layer_t, projb)},
    {"ln2.weight", 1, 0, offsetof(gpt_layer_t, ln2w)},
    {"ln2.bias", 1, 0, offsetof(gpt_layer_t, ln2b)},
    {"mlp.fc.weight", 4, 1, offsetof(gpt_layer_t, fcw)},
    {"mlp.fc.bias", 4, 0, offsetof(gpt_layer_t, fcb)},
    {"mlp.proj.weight", 1, 4, offsetof(gpt_layer_t, fc2w)},
    {"mlp.proj.bias", 1, 0, offsetof(gpt_layer_t, fc2b)},
};
#define N_LAYER_PARAMS (int)(sizeof layer_params / sizeof layer_params[0])

static void add_param(gpt_model_t *m, const char *name, int64_t rows, int64_t cols) {
    gpt_param_t *p = &m->params[m->n_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    p->offset = m->num_floats;
    p->decay = p->ndim == 2;
    p->blocks = 1;
    m->num_floats += p->numel;
}

/* The table, in memory order: embeddings, the layers, the final norm. */
static void build_table(gpt_model_t *m) {
    const gpt_config_t *c = &m->cfg;
    int64_t C = c->dim;
    char name[64];
    add_param(m, "token_embedding.weight", c->vocab, C);
    add_param(m, "position_embedding.weight", c->ctx, C);
    for (int l = 0; l < c->layers; l++) {
        for (int i = 0; i < N_LAYER_PARAMS; i++) {
            snprintf(name, sizeof name, "transformer.layers.%d.%s", l, layer_params[i].name);
            add_param(m, name, layer_params[i].rows * C, layer_params[i].cols * C);
            gpt_param_t *p = &m->params[m->n_params - 1];
            p->hidden = p->ndim == 2;
            if (strcmp(layer_params[i].name, "attn.qkv.weight") == 0) p->blocks = 3; /* q, k, v */
        }
    }
    add_param(m, "ln_f.weight", C, 0);
    add_param(m, "ln_f.bias", C, 0);
}

/* Points a view's fields into buf following the table order. */
static void fill_view(const gpt_model_t *m, float *buf, gpt_view_t *v) {
    const gpt_param_t *p = m->params;
    v->wte = buf + p[0].offset;
    v->wpe = buf + p[1].offset;
    for (int l = 0; l < m->cfg.layers; l++) {
        for (int i = 0; i < N_LAYER_PARAMS; i++) {
            float **field = (float **)((char *)&v->layer[l] + layer_params[i].field);
            *field = buf + p[2 + l * N_LAYER_PARAMS + i].offset;
        }
    }
    v->lnfw = buf + p[m->n_params - 2].offset;
    v->lnfb = buf + p[m->n_params - 1].offset;
}

gpt_model_t *gpt_create(const gpt_config_t *cfg, const ops_backend_t *ops, char *err) {
    if (gpt_config_check(cfg, err) != 0) return NULL;
    gpt_model_t *m = mg_calloc(1, sizeof *m);
    if (!m) goto oom;
    m->cfg = *cfg;
    m->ops = ops;
    m->grad_scale = 1.0f;
    m->params = mg_calloc((size_t)cfg->layers * N_LAYER_PARAMS + 4, sizeof *m->params);
    m->w.layer = mg_calloc((size_t)cfg->layers, sizeof(gpt_layer_t));
    m->g.layer = mg_calloc((size_t)cfg->layers, sizeof(gpt_layer_t));
    if (!m->params || !m->w.layer || !m->g.layer) goto oom;
    build_table(m);
    m->weights = ops->alloc(m->num_floats * sizeof(float));
    if (!m->weights) goto oom;
    fill_view(m, m->weights, &m->w);
    return m;
oom:
    mg_fail(err, "out of memory creating a model of %d layers, dim %d", cfg->layers, cfg->dim);
    gpt_free(m);
    return NULL;
}

static void free_training(gpt_model_t *m) {
    const ops_backend_t *ops = m->ops;
    if (m->a.encoded) ops->free(m->a.encoded);
    if (m->a.tokens) ops->free(m->a.tokens);
    mg_free(m->host_losses);
    memset(&m->a, 0, sizeof m->a);
    m->host_losses = NULL;
    m->B = m->T = 0;
}

void gpt_free(gpt_model_t *m) {
    if (!m) return;
    if (m->ops) {
        free_training(m);
        if (m->weights) m->ops->free(m->weights);
        if (m->grads) m->ops->free(m->grads);
        if (m->m) m->ops->free(m->m);
        if (m->v) m->ops->free(m->v);
        if (m->muon_scratch) m->ops->free(m->muon_scratch);
    }
    mg_free(m->params);
    mg_free(m->w.layer);
    mg_free(m->g.layer);
    mg_free(m);
}

int gpt_init_weights(gpt_model_t *m, uint64_t seed, char *err) {
    float *host = mg_malloc(m->num_floats * sizeof(float));
    if (!host) return mg_fail(err, "out of memory initialising %zu parameters", m->num_floats);
    mg_rng_t rng;
    mg_rng_seed(&rng, seed);
    float proj_std = 0.02f / sqrtf(2.0f * m->cfg.layers);
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        float *x = host + p->offset;
        const char *tail = strrchr(p->name, '.');
        int is_norm = strstr(p->name, "ln") != NULL && strcmp(tail, ".weight") == 0;
        int is_proj = strstr(p->name, "proj.weight") != NULL;
        for (size_t j = 0; j < p->numel; j++) {
            if (p->ndim == 2)
                x[j] = mg_rng_normal(&rng) * (is_proj ? proj_std : 0.02f);
            else
                x[j] = is_norm ? 1.0f : 0.0f;
        }
    }
    m->ops->upload(m->weights, host, m->num_floats * sizeof(float));
    mg_free(host);
    return 0;
}

const gpt_param_t *gpt_find_param(const gpt_model_t *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

size_t gpt_param_count(const gpt_config_t *c) {
    size_t C = c->dim, per_layer = 0;
    for (int i = 0; i < N_LAYER_PARAMS; i++)
        per_layer +=
            layer_params[i].rows * C * (layer_params[i].cols ? layer_params[i].cols * C : 1);
    return (size_t)c->vocab * C + (size_t)c->ctx * C + c->layers * per_layer + 2 * C;
}

/* The activation buffers, in the order they are carved out of one
 * allocation; a->... pointers are only written through parts[i].ptr. */
typedef struct {
    float **ptr;
    size_t n;
} act_part_t;
#define N_ACT_PARTS 23

static size_t act_layout(const gpt_config_t *c, const ops_backend_t *ops, size_t B, size_t T,
                         gpt_acts_t *a, act_part_t parts[N_ACT_PARTS]) {
    size_t L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, N = B * T;
    act_part_t p[N_ACT_PARTS] = {
        {&a->encoded, N * C},
        {&a->ln1, L * N * C},
        {&a->ln1_mean, L * N},
        {&a->ln1_rstd, L * N},
        {&a->qkv, L * N * 3 * C},
        {&a->att, L * ops->attention_state_floats((int)B, (int)NH, (int)T)},
        {&a->atty, L * N * C},
        {&a->res2, L * N * C},
        {&a->ln2, L * N * C},
        {&a->ln2_mean, L * N},
        {&a->ln2_rstd, L * N},
        {&a->fch, L * N * 4 * C},
        {&a->fch_gelu, L * N * 4 * C},
        {&a->res3, L * N * C},
        {&a->lnf, N * C},
        {&a->lnf_mean, N},
        {&a->lnf_rstd, N},
        {&a->logits, N * V},
        {&a->losses, N},
        {&a->dres, N * C},
        {&a->dc, N * C},
        {&a->d3c, N * 3 * C},
        {&a->d4c, N * 4 * C},
    };
    /* each part starts 256-byte aligned: vector loads and GPU matrix
     * libraries want aligned rows whatever B*T is */
    size_t total = 0;
    for (int i = 0; i < N_ACT_PARTS; i++) {
        parts[i] = p[i];
        parts[i].n = (p[i].n + 63) & ~(size_t)63;
        total += parts[i].n;
    }
    return total;
}

size_t gpt_training_bytes(const gpt_config_t *c, const ops_backend_t *ops, int B, int T) {
    gpt_acts_t dummy;
    act_part_t parts[N_ACT_PARTS];
    size_t acts = act_layout(c, ops, B, T, &dummy, parts);
    return (4 * gpt_param_count(c) + acts) * sizeof(float) + 2 * (size_t)B * T * sizeof(int32_t);
}

int gpt_alloc_training(gpt_model_t *m, int B, int T, char *err) {
    const ops_backend_t *ops = m->ops;
    if (!m->grads) {
        size_t bytes = m->num_floats * sizeof(float);
        m->grads = ops->alloc(bytes);
        m->m = ops->alloc(bytes);
        m->v = ops->alloc(bytes);
        if (!m->grads || !m->m || !m->v)
            return mg_fail(err, "out of memory for gradients and optimizer state");
        fill_view(m, m->grads, &m->g);
    }
    return gpt_alloc_activations(m, B, T, err);
}

int gpt_alloc_activations(gpt_model_t *m, int B, int T, char *err) {
    const gpt_config_t *c = &m->cfg;
    const ops_backend_t *ops = m->ops;
    if (B < 1 || T < 1 || T > c->ctx)
        return mg_fail(err, "batch %d x context %d does not fit the model (context %d)", B, T,
                       c->ctx);
    free_training(m);
    size_t N = (size_t)B * T;
    /* one allocation for all activations */
    act_part_t parts[N_ACT_PARTS];
    size_t total = act_layout(c, ops, B, T, &m->a, parts);
    float *block = ops->alloc(total * sizeof(float));
    int32_t *ids = ops->alloc(2 * N * sizeof(int32_t));
    m->host_losses = mg_malloc(N * sizeof(float));
    if (!block || !ids || !m->host_losses) {
        mg_fail(err, "out of memory for activations (%zu MB at batch %d x %d)",
                total * sizeof(float) >> 20, B, T);
        goto fail;
    }
    for (size_t i = 0, off = 0; i < N_ACT_PARTS; i++) {
        *parts[i].ptr = block + off;
        off += parts[i].n;
    }
    m->a.tokens = ids;
    m->a.targets = ids + N;
    m->B = B;
    m->T = T;
    return 0;
fail:
    if (block) ops->free(block);
    if (ids) ops->free(ids);
    return -1;
}
