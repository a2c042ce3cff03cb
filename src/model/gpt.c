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
    /* the default of `train`: what learns most in 5 minutes on 2 cores,
     * shape and block (docs/training-recipe.md); the others have GPT-2's
     * block */
    {"tiny",
     {.vocab = 8192,
      .ctx = 256,
      .dim = 128,
      .layers = 2,
      .heads = 2,
      .pos = GPT_POS_ROPE,
      .norm = GPT_NORM_RMS,
      .qk_norm = 1,
      .mlp = GPT_MLP_RELU2,
      .untie_head = 1}}, /* zero-init measured worse, alone and in the recipe */
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
    if (c->pos != GPT_POS_LEARNED && c->pos != GPT_POS_ROPE)
        return mg_fail(err, "unknown position embedding %d", c->pos);
    if (c->norm != GPT_NORM_LAYER && c->norm != GPT_NORM_RMS)
        return mg_fail(err, "unknown normalisation %d", c->norm);
    if ((c->qk_norm | c->untie_head | c->zero_init) & ~1)
        return mg_fail(err, "qk_norm, untie_head and zero_init are 0 or 1");
    if (c->pos == GPT_POS_ROPE && (c->dim / c->heads) % 2)
        return mg_fail(err, "--pos rope needs an even head size (dim %d / heads %d is odd)", c->dim,
                       c->heads);
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

/* zero_init is only how training started: the block stays GPT-2's. */
int gpt_gpt2_check(const gpt_config_t *c, const char *format, char *err) {
    const char *o = c->pos == GPT_POS_ROPE     ? "--pos rope"
                    : c->norm == GPT_NORM_RMS  ? "--norm rmsnorm"
                    : c->qk_norm               ? "--qk-norm"
                    : c->untie_head            ? "--untie-head"
                    : c->mlp == GPT_MLP_RELU2  ? "--mlp relu2"
                    : c->mlp == GPT_MLP_SWIGLU ? "--mlp swiglu"
                                               : NULL;
    if (o)
        return mg_fail(err, "%s holds GPT-2's block only; this model was trained with %s", format,
                       o);
    if (gpt_ffn_hidden(c) != 4 * c->dim)
        return mg_fail(err, "%s takes only the MLP of 4 x dim; this model's hidden size is %d",
                       format, gpt_ffn_hidden(c));
    return 0;
}

_Static_assert((int)GPT_MLP_RELU2 == (int)OPS_MLP_RELU2 &&
                   (int)GPT_MLP_SWIGLU == (int)OPS_MLP_SWIGLU,
               "the model's MLP kinds are the act argument of the ops");

/* What each option needs of the backend: a model that asks for a NULL
 * kernel (the CUDA plugin leaves the optional slots NULL) is refused at
 * creation, in one line that names the option. */
int gpt_backend_check(const gpt_config_t *c, const ops_backend_t *ops, char *err) {
    int mlp_act = ops->mlp_act_forward && ops->mlp_act_backward;
    const struct {
        int on;
        int have;
        const char *what, *option;
    } needs[] = {
        {c->pos == GPT_POS_ROPE, ops->qk_forward && ops->qk_backward, "rotary position embeddings",
         "--pos rope"},
        {c->norm == GPT_NORM_RMS, ops->rmsnorm_forward && ops->rmsnorm_backward, "RMSNorm",
         "--norm rmsnorm"},
        {c->qk_norm, ops->qk_forward && ops->qk_backward, "q/k normalisation", "--qk-norm"},
        {c->mlp == GPT_MLP_RELU2, mlp_act, "relu^2 MLP kernels", "--mlp relu2"},
        {c->mlp == GPT_MLP_SWIGLU, mlp_act, "SwiGLU MLP kernels", "--mlp swiglu"},
    };
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++)
        if (needs[i].on && !needs[i].have)
            return mg_fail(err, "the %s backend has no %s (%s); use --device cpu", ops->name,
                           needs[i].what, needs[i].option);
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
    int norm_bias; /* a LayerNorm bias: absent with RMSNorm */
} layer_params[] = {
    {"ln1.weight", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln1w), 0},
    {"ln1.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln1b), 1},
    {"attn.qkv.weight", DIM_3C, DIM_C, offsetof(gpt_layer_t, qkvw), 0},
    {"attn.qkv.bias", DIM_3C, DIM_NONE, offsetof(gpt_layer_t, qkvb), 0},
    {"attn.proj.weight", DIM_C, DIM_C, offsetof(gpt_layer_t, projw), 0},
    {"attn.proj.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, projb), 0},
    {"ln2.weight", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln2w), 0},
    {"ln2.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, ln2b), 1},
    {"mlp.fc.weight", DIM_FC, DIM_C, offsetof(gpt_layer_t, fcw), 0},
    {"mlp.fc.bias", DIM_FC, DIM_NONE, offsetof(gpt_layer_t, fcb), 0},
    {"mlp.proj.weight", DIM_C, DIM_HID, offsetof(gpt_layer_t, fc2w), 0},
    {"mlp.proj.bias", DIM_C, DIM_NONE, offsetof(gpt_layer_t, fc2b), 0},
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

/* Is layer_params[i] in this config's table? */
static int layer_param_on(const gpt_config_t *c, int i) {
    return !(layer_params[i].norm_bias && c->norm == GPT_NORM_RMS);
}

/* The table, in memory order: embeddings (no position table with rope),
 * the layers, the final norm (no bias with RMSNorm), the untied head. */
static void build_table(gpt_model_t *m) {
    const gpt_config_t *c = &m->cfg;
    int64_t C = c->dim;
    char name[64];
    add_param(m, "token_embedding.weight", c->vocab, C);
    if (c->pos == GPT_POS_LEARNED) add_param(m, "position_embedding.weight", c->ctx, C);
    for (int l = 0; l < c->layers; l++) {
        for (int i = 0; i < N_LAYER_PARAMS; i++) {
            if (!layer_param_on(c, i)) continue;
            snprintf(name, sizeof name, "transformer.layers.%d.%s", l, layer_params[i].name);
            add_param(m, name, layer_dim(c, layer_params[i].rows),
                      layer_dim(c, layer_params[i].cols));
            gpt_param_t *p = &m->params[m->n_params - 1];
            p->hidden = p->ndim == 2;
            if (strcmp(layer_params[i].name, "attn.qkv.weight") == 0) p->blocks = 3; /* q, k, v */
            if (strcmp(layer_params[i].name, "mlp.fc.weight") == 0 && c->mlp == GPT_MLP_SWIGLU)
                p->blocks = 2; /* gate, up */
        }
    }
    add_param(m, "ln_f.weight", C, 0);
    if (c->norm == GPT_NORM_LAYER) add_param(m, "ln_f.bias", C, 0);
    if (c->untie_head) add_param(m, "lm_head.weight", c->vocab, C);
}

/* Points a view's fields into buf following the table order (build_table);
 * the tensors a config lacks stay NULL. */
static void fill_view(const gpt_model_t *m, float *buf, gpt_view_t *v) {
    const gpt_config_t *c = &m->cfg;
    const gpt_param_t *p = m->params;
    int k = 0;
    v->wte = buf + p[k++].offset;
    v->wpe = c->pos == GPT_POS_LEARNED ? buf + p[k++].offset : NULL;
    for (int l = 0; l < c->layers; l++) {
        for (int i = 0; i < N_LAYER_PARAMS; i++) {
            float **field = (float **)((char *)&v->layer[l] + layer_params[i].field);
            *field = layer_param_on(c, i) ? buf + p[k++].offset : NULL;
        }
    }
    v->lnfw = buf + p[k++].offset;
    v->lnfb = c->norm == GPT_NORM_LAYER ? buf + p[k++].offset : NULL;
    v->head = c->untie_head ? buf + p[k++].offset : v->wte;
}

gpt_model_t *gpt_create(const gpt_config_t *cfg, const ops_backend_t *ops, char *err) {
    if (gpt_config_check(cfg, err) != 0 || gpt_backend_check(cfg, ops, err) != 0) return NULL;
    gpt_model_t *m = mg_calloc(1, sizeof *m);
    if (!m) goto oom;
    m->cfg = *cfg;
    m->cfg.ffn = gpt_ffn_hidden(cfg);
    m->ops = ops;
    m->grad_scale = 1.0f;
    m->params = mg_calloc((size_t)cfg->layers * N_LAYER_PARAMS + 5, sizeof *m->params);
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
        int is_head = strcmp(p->name, "lm_head.weight") == 0;
        if (m->cfg.zero_init && (is_proj || is_head)) { /* each block starts as the identity */
            memset(x, 0, p->numel * sizeof(float));
            continue;
        }
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
        if (layer_param_on(c, i))
            per_layer += (size_t)layer_dim(c, layer_params[i].rows) *
                         (size_t)(layer_params[i].cols ? layer_dim(c, layer_params[i].cols) : 1);
    size_t pos = c->pos == GPT_POS_LEARNED ? (size_t)c->ctx * C : 0;
    size_t lnf = c->norm == GPT_NORM_LAYER ? 2 * C : C;
    size_t head = c->untie_head ? (size_t)c->vocab * C : 0;
    return (size_t)c->vocab * C + pos + c->layers * per_layer + lnf + head;
}

/* The activation buffers, in the order they are carved out of one
 * allocation; a->... pointers are only written through parts[i].ptr. */
typedef struct {
    float **ptr;
    size_t n;
} act_part_t;
#define N_ACT_PARTS 25

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
        {&a->qk_rstd, c->qk_norm ? L * N * 2 * NH : 0},
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
