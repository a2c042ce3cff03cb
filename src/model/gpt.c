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
    {"micro", {.vocab = 512, .ctx = 64, .dim = 64, .layers = 2, .heads = 2}},
    /* the default of `train`: what learns most in 5 minutes on 2 cores
     * (docs/training-recipe.md) */
    {"tiny", {.vocab = 8192, .ctx = 256, .dim = 128, .layers = 2, .heads = 2}},
    {"mini", {.vocab = 4096, .ctx = 256, .dim = 256, .layers = 4, .heads = 4}},
    {"small", {.vocab = 8192, .ctx = 512, .dim = 512, .layers = 8, .heads = 8}},
    {"gpt2", {.vocab = 50257, .ctx = 1024, .dim = 768, .layers = 12, .heads = 12}},
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
    if (c->mlp < 0 || c->mlp >= GPT_MLP_COUNT)
        return mg_fail(err, "unknown MLP kind %d (gelu, relu2, swiglu)", c->mlp);
    if (c->ffn < 0 || c->ffn > (1 << 20))
        return mg_fail(err, "MLP hidden size %d out of range [1, 1048576]", c->ffn);
    return 0;
}

static const char *const mlp_names[GPT_MLP_COUNT] = {"gelu", "relu2", "swiglu"};

const char *gpt_mlp_name(int mlp) { return mlp >= 0 && mlp < GPT_MLP_COUNT ? mlp_names[mlp] : "?"; }

int gpt_mlp_from_name(const char *name) {
    for (int i = 0; i < GPT_MLP_COUNT; i++)
        if (strcmp(mlp_names[i], name) == 0) return i;
    return -1;
}

/* SwiGLU has three matrices where GELU has two: a hidden size of 8C/3 keeps
 * 3 x C x H = 2 x C x 4C parameters; a multiple of 32 keeps int8 blocks
 * (and vector loops) whole. */
int gpt_ffn_default(int mlp, int dim) {
    if (mlp != GPT_MLP_SWIGLU) return 4 * dim;
    int h = (int)(((long)8 * dim / 3 + 16) / 32) * 32; /* nearest multiple of 32, half up */
    return h < 32 ? 32 : h;
}

int gpt_ffn_hidden(const gpt_config_t *c) {
    return c->ffn > 0 ? c->ffn : gpt_ffn_default(c->mlp, c->dim);
}

int gpt_ffn_fc_rows(const gpt_config_t *c) {
    return (c->mlp == GPT_MLP_SWIGLU ? 2 : 1) * gpt_ffn_hidden(c);
}

int gpt_gpt2_check(const gpt_config_t *c, const char *format, char *err) {
    if (c->mlp != GPT_MLP_GELU)
        return mg_fail(err, "%s takes only the GELU MLP; this model was trained with --mlp %s",
                       format, gpt_mlp_name(c->mlp));
    if (gpt_ffn_hidden(c) != 4 * c->dim)
        return mg_fail(err, "%s takes only the MLP of 4 x dim; this model's hidden size is %d",
                       format, gpt_ffn_hidden(c));
    return 0;
}

/* The kernels each optional model feature needs: a backend without them
 * (the CUDA plugin leaves the optional MLP slots NULL) is refused at
 * creation with one line naming the option. */
static int wants_relu2(const gpt_config_t *c) { return c->mlp == GPT_MLP_RELU2; }
static int wants_swiglu(const gpt_config_t *c) { return c->mlp == GPT_MLP_SWIGLU; }
static int has_mlp_act(const ops_backend_t *o) { return o->mlp_act_forward && o->mlp_act_backward; }
static const struct {
    int (*wants)(const gpt_config_t *c);
    int (*has)(const ops_backend_t *o);
    const char *what;
} backend_needs[] = {
    {wants_relu2, has_mlp_act, "relu^2 MLP kernels (--mlp relu2)"},
    {wants_swiglu, has_mlp_act, "SwiGLU MLP kernels (--mlp swiglu)"},
};
_Static_assert((int)GPT_MLP_RELU2 == (int)OPS_MLP_RELU2 &&
                   (int)GPT_MLP_SWIGLU == (int)OPS_MLP_SWIGLU,
               "the model's MLP kinds are the act argument of the ops");

int gpt_backend_check(const gpt_config_t *c, const ops_backend_t *ops, char *err) {
    for (size_t i = 0; i < sizeof backend_needs / sizeof backend_needs[0]; i++)
        if (backend_needs[i].wants(c) && !backend_needs[i].has(ops))
            return mg_fail(err, "the %s backend has no %s; use --device cpu", ops->name,
                           backend_needs[i].what);
    return 0;
}

/* Sizes of the per-layer tensors' dimensions, resolved by layer_dim. */
enum { DIM_NONE, DIM_C, DIM_3C, DIM_FC, DIM_HID };

static int64_t layer_dim(const gpt_config_t *c, int d) {
    switch (d) {
    case DIM_C: return c->dim;
    case DIM_3C: return 3 * (int64_t)c->dim;
    case DIM_FC: return gpt_ffn_fc_rows(c); /* H, or 2H (SwiGLU: gate and up) */
    case DIM_HID: return gpt_ffn_hidden(c);
    default: return 0;
    }
}

/* Per-layer tensors: name, rows and cols (DIM_NONE: 1-D), and where the
 * pointer lives in gpt_layer_t. */
static const struct {
    const char *name;
    int rows, cols;
    size_t field;
} layer_params[] = {
    {"ln1.weight", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln1w)},
    {"ln1.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln1b)},
    {"attn.qkv.weight", DIM_3C, DIM_C, offsetof(gpt_layer_t, qkvw)},
    {"attn.qkv.bias", DIM_3C, DIM_NONE, offsetof(gpt_layer_t, qkvb)},
    {"attn.proj.weight", DIM_C, DIM_C, offsetof(gpt_layer_t, projw)},
    {"attn.proj.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, projb)},
    {"ln2.weight", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln2w)},
    {"ln2.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln2b)},
    {"mlp.fc.weight", DIM_FC, DIM_C, offsetof(gpt_layer_t, fcw)},
    {"mlp.fc.bias", DIM_FC, DIM_NONE, offsetof(gpt_layer_t, fcb)},
    {"mlp.proj.weight", DIM_C, DIM_HID, offsetof(gpt_layer_t, fc2w)},
    {"mlp.proj.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, fc2b)},
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
            add_param(m, name, layer_dim(c, layer_params[i].rows),
                      layer_dim(c, layer_params[i].cols));
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
    if (gpt_config_check(cfg, err) != 0 || gpt_backend_check(cfg, ops, err) != 0) return NULL;
    gpt_model_t *m = mg_calloc(1, sizeof *m);
    if (!m) goto oom;
    m->cfg = *cfg;
    m->cfg.ffn = gpt_ffn_hidden(cfg);
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
        per_layer += (size_t)layer_dim(c, layer_params[i].rows) *
                     (size_t)(layer_params[i].cols ? layer_dim(c, layer_params[i].cols) : 1);
    return (size_t)c->vocab * C + (size_t)c->ctx * C + c->layers * per_layer + 2 * C;
}

/* The activation buffers, in the order they are carved out of one
 * allocation; a->... pointers are only written through parts[i].ptr. */
typedef struct {
    float **ptr;
    size_t n;
} act_part_t;
#define N_ACT_PARTS 24

static size_t act_layout(const gpt_config_t *c, const ops_backend_t *ops, size_t B, size_t T,
                         gpt_acts_t *a, act_part_t parts[N_ACT_PARTS]) {
    size_t L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, N = B * T;
    size_t F = (size_t)gpt_ffn_fc_rows(c), H = (size_t)gpt_ffn_hidden(c);
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
        {&a->fch, L * N * F},
        {&a->fch_gelu, L * N * H},
        {&a->res3, L * N * C},
        {&a->lnf, N * C},
        {&a->lnf_mean, N},
        {&a->lnf_rstd, N},
        {&a->logits, N * V},
        {&a->losses, N},
        {&a->dres, N * C},
        {&a->dc, N * C},
        {&a->d3c, N * 3 * C},
        {&a->d4c, N * F},
        {&a->dh, c->mlp == GPT_MLP_SWIGLU ? N * H : 0},
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
