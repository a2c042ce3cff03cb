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
    if (c->pos != GPT_POS_LEARNED && c->pos != GPT_POS_ROPE)
        return mg_fail(err, "unknown position embedding %d", c->pos);
    if (c->norm != GPT_NORM_LAYER && c->norm != GPT_NORM_RMS)
        return mg_fail(err, "unknown normalisation %d", c->norm);
    if ((c->qk_norm | c->untie_head | c->zero_init) & ~1)
        return mg_fail(err, "qk_norm, untie_head and zero_init are 0 or 1");
    if (c->pos == GPT_POS_ROPE && (c->dim / c->heads) % 2)
        return mg_fail(err, "--pos rope needs an even head size (dim %d / heads %d is odd)", c->dim,
                       c->heads);
    return 0;
}

int gpt_config_is_gpt2(const gpt_config_t *c, const char **option) {
    const char *o = c->pos == GPT_POS_ROPE    ? "--pos rope"
                    : c->norm == GPT_NORM_RMS ? "--norm rmsnorm"
                    : c->qk_norm              ? "--qk-norm"
                    : c->untie_head           ? "--untie-head"
                                              : NULL;
    if (option) *option = o;
    return o == NULL; /* zero_init is only how training started: the block is GPT-2's */
}

/* What each option needs of the backend: a model that asks for a NULL
 * kernel is refused at creation, in one line that names the option. */
int gpt_backend_check(const gpt_config_t *c, const ops_backend_t *ops, char *err) {
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
    };
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++)
        if (needs[i].on && !needs[i].have)
            return mg_fail(err, "the %s backend has no %s (%s); use --device cpu", ops->name,
                           needs[i].what, needs[i].option);
    return 0;
}

/* Per-layer tensors: name, rows and cols as multiples of C (cols 0: 1-D),
 * and where the pointer lives in gpt_layer_t. */
static const struct {
    const char *name;
    int rows, cols;
    size_t field;
    int norm_bias; /* a LayerNorm bias: absent with RMSNorm */
} layer_params[] = {
    {"ln1.weight", 1, 0, offsetof(gpt_layer_t, ln1w), 0},
    {"ln1.bias", 1, 0, offsetof(gpt_layer_t, ln1b), 1},
    {"attn.qkv.weight", 3, 1, offsetof(gpt_layer_t, qkvw), 0},
    {"attn.qkv.bias", 3, 0, offsetof(gpt_layer_t, qkvb), 0},
    {"attn.proj.weight", 1, 1, offsetof(gpt_layer_t, projw), 0},
    {"attn.proj.bias", 1, 0, offsetof(gpt_layer_t, projb), 0},
    {"ln2.weight", 1, 0, offsetof(gpt_layer_t, ln2w), 0},
    {"ln2.bias", 1, 0, offsetof(gpt_layer_t, ln2b), 1},
    {"mlp.fc.weight", 4, 1, offsetof(gpt_layer_t, fcw), 0},
    {"mlp.fc.bias", 4, 0, offsetof(gpt_layer_t, fcb), 0},
    {"mlp.proj.weight", 1, 4, offsetof(gpt_layer_t, fc2w), 0},
    {"mlp.proj.bias", 1, 0, offsetof(gpt_layer_t, fc2b), 0},
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
            add_param(m, name, layer_params[i].rows * C, layer_params[i].cols * C);
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
            per_layer +=
                layer_params[i].rows * C * (layer_params[i].cols ? layer_params[i].cols * C : 1);
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
#define N_ACT_PARTS 24

static size_t act_layout(const gpt_config_t *c, const ops_backend_t *ops, size_t B, size_t T,
                         gpt_acts_t *a, act_part_t parts[N_ACT_PARTS]) {
    size_t L = c->layers, C = c->dim, V = c->vocab, NH = c->heads, N = B * T;
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
