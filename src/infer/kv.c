/* kv.c - the inference forward pass with a KV cache, over the ops API. */
#include "infer/kv.h"

#include <stddef.h>

#include "infer/sample.h"
#include "util/common.h"

/* the hook, only when set: NULL costs one branch and no clock reads */
#define TRACE(layer, stage, t, rows, cols, secs)                                                   \
    do {                                                                                           \
        if (s->trace) s->trace(s->trace_ctx, s, layer, stage, t, rows, cols, secs);                \
    } while (0)

kv_state_t *kv_create(gpt_model_t *m, char *err) {
    const gpt_config_t *c = &m->cfg;
    size_t T = c->ctx, C = c->dim, L = c->layers;
    kv_state_t *s = mg_calloc(1, sizeof *s);
    if (!s) goto oom;
    s->model = m;
    struct {
        float **ptr;
        size_t n;
    } parts[] = {
        {&s->kcache, L * T * C}, {&s->vcache, L * T * C}, {&s->x, T * C},
        {&s->tmp, T * C},        {&s->ln, T * C},         {&s->qkv, T * 3 * C},
        {&s->atty, T * C},       {&s->fch, T * 4 * C},    {&s->fchg, T * 4 * C},
        {&s->logits, (size_t)c->vocab}, {(float **)&s->tok, T + 2},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        parts[i].n = (parts[i].n + 63) & ~(size_t)63; /* 256-byte aligned parts */
        total += parts[i].n;
    }
    s->block_bytes = total * sizeof(float);
    s->block = m->ops->alloc(s->block_bytes);
    s->host_logits = mg_malloc((size_t)c->vocab * sizeof(float));
    s->scratch = mg_malloc(2 * (size_t)c->vocab * sizeof(float));
    if (!s->block || !s->host_logits || !s->scratch) goto oom;
    float *p = s->block;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].ptr = p;
        p += parts[i].n;
    }
    return s;
oom:
    mg_fail(err, "out of memory for the KV cache (context %zu, %zu layers)", T, L);
    kv_free(s);
    return NULL;
}

int kv_quantize(kv_state_t *s, char *err) {
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    int C = m->cfg.dim, L = m->cfg.layers, n = 4 * L + 1;
    if (s->q8) return 0;
    if (!ops->q8_make) return mg_fail(err, "int8 weights need the CPU backend (--device cpu)");
    if (C % 32) return mg_fail(err, "int8 weights need a width that is a multiple of 32 (this model: %d)", C);
    void **q = mg_calloc((size_t)n, sizeof *q);
    if (!q) return mg_fail(err, "out of memory");
    for (int l = 0; l < L; l++) {
        const gpt_layer_t *w = &m->w.layer[l];
        q[4 * l + 0] = ops->q8_make(w->qkvw, 3 * C, C);
        q[4 * l + 1] = ops->q8_make(w->projw, C, C);
        q[4 * l + 2] = ops->q8_make(w->fcw, 4 * C, C);
        q[4 * l + 3] = ops->q8_make(w->fc2w, C, 4 * C);
    }
    q[4 * L] = ops->q8_make(m->w.wte, m->cfg.vocab, C);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (!q[i]) {
            for (int k = 0; k < n; k++) ops->q8_free(q[k]);
            mg_free(q);
            return mg_fail(err, "out of memory for the int8 weights");
        }
        bytes += ops->q8_bytes(q[i]);
    }
    s->q8 = q;
    s->q8_bytes = bytes;
    return 0;
}

void kv_free(kv_state_t *s) {
    if (!s) return;
    if (s->q8) {
        for (int i = 0; i < 4 * s->model->cfg.layers + 1; i++) s->model->ops->q8_free(s->q8[i]);
        mg_free(s->q8);
    }
    if (s->graph) s->model->ops->graph_free(s->graph);
    if (s->block) s->model->ops->free(s->block);
    mg_free(s->host_logits);
    mg_free(s->scratch);
    mg_free(s);
}

void kv_reset(kv_state_t *s) { s->pos = 0; }

#define KV_Q8_ROWS 8

/* The forward pass of n rows at positions s->pos.. into s->logits (and
 * their argmax into s->tok[ctx + 1] when greedy). With at_dev (one token,
 * graph recording) the position is read on the backend from s->tok[1]
 * when the kernels run, and nothing is traced. The fused kernels, when
 * the backend has them, save a launch and a pass each: a sublayer's
 * residual add with the next LayerNorm, the fc matmul with its GELU. */
static void step(kv_state_t *s, int n, int at_dev, int greedy) {
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int C = c->dim, NH = c->heads, V = c->vocab, L = c->layers;
    int fuse_ln = !m->no_fusion && ops->residual_layernorm_forward;
    int fuse_gelu = !m->no_fusion && ops->matmul_bias_gelu_forward && !(s->q8 && n <= KV_Q8_ROWS);
    size_t cache = (size_t)c->ctx * C;
    /* a product with float32 weights w, or their int8 copy k (kv_quantize)
     * for up to KV_Q8_ROWS rows: a longer prompt's prefill is compute-bound
     * and goes faster through BLAS on the float32 weights (GPT-2, 128
     * tokens, 2 cores: 575 tokens/s against 303 with int8) */
    int q8 = s->q8 && n <= KV_Q8_ROWS;
#define MATMUL(out, in, w, bias, rows, cin, cout, k)                                               \
    (q8 ? ops->q8_matmul_forward(out, in, s->q8[k], bias, rows, cin, cout)                         \
        : ops->matmul_forward(out, in, w, bias, rows, cin, cout))
    /* tokens (n) -> x (n,C), positions pos.. */
    if (at_dev)
        ops->embed_forward_at(s->x, s->tok, m->w.wte, m->w.wpe, C, s->tok + 1);
    else
        ops->embed_forward(s->x, s->tok, m->w.wte, m->w.wpe, 1, n, C, s->pos);
    TRACE(-1, "embed", s->x, n, C, 0.0);
    double t0 = s->trace ? mg_now() : 0.0;
    for (int l = 0; l < L; l++) {
        const gpt_layer_t *w = &m->w.layer[l];
        float *kc = s->kcache + l * cache, *vc = s->vcache + l * cache;
        /* fused: the previous sublayer left ln = LayerNorm1(x) */
        if (l == 0 || !fuse_ln) ops->layernorm_forward(s->ln, NULL, NULL, s->x, w->ln1w, w->ln1b, n, C);
        MATMUL(s->qkv, s->ln, w->qkvw, w->qkvb, n, C, 3 * C, 4 * l);
        if (at_dev)
            ops->attention_cached_at(s->atty, kc, vc, s->qkv, C, NH, s->tok + 1);
        else
            ops->attention_cached(s->atty, kc, vc, s->qkv, n, s->pos, C, NH);
        MATMUL(s->tmp, s->atty, w->projw, w->projb, n, C, C, 4 * l + 1);
        if (fuse_ln)
            ops->residual_layernorm_forward(s->x, s->ln, NULL, NULL, s->x, s->tmp, w->ln2w, w->ln2b, n, C);
        else {
            ops->add(s->x, s->x, s->tmp, (size_t)n * C);
            ops->layernorm_forward(s->ln, NULL, NULL, s->x, w->ln2w, w->ln2b, n, C);
        }
        if (s->trace) {
            double t1 = mg_now();
            TRACE(l, "attn", s->x, n, C, t1 - t0);
            t0 = mg_now(); /* the hook's own time is not the model's */
        }
        if (fuse_gelu)
            ops->matmul_bias_gelu_forward(s->fch, s->fchg, s->ln, w->fcw, w->fcb, n, C, 4 * C);
        else {
            MATMUL(s->fch, s->ln, w->fcw, w->fcb, n, C, 4 * C, 4 * l + 2);
            ops->gelu_forward(s->fchg, s->fch, (size_t)n * 4 * C);
        }
        MATMUL(s->tmp, s->fchg, w->fc2w, w->fc2b, n, 4 * C, C, 4 * l + 3);
        if (fuse_ln) { /* x += tmp, ln = the next LayerNorm (ln1 of l+1, or ln_f) */
            const float *nw = l + 1 < L ? m->w.layer[l + 1].ln1w : m->w.lnfw;
            const float *nb = l + 1 < L ? m->w.layer[l + 1].ln1b : m->w.lnfb;
            ops->residual_layernorm_forward(s->x, s->ln, NULL, NULL, s->x, s->tmp, nw, nb, n, C);
        } else
            ops->add(s->x, s->x, s->tmp, (size_t)n * C);
        if (s->trace) {
            double t1 = mg_now();
            TRACE(l, "mlp", s->x, n, C, t1 - t0);
            t0 = mg_now();
        }
    }
    /* only the last position's logits are needed: (1,C) -> (1,V) */
    const float *lnf = s->ln + (size_t)(n - 1) * C;
    if (!fuse_ln) {
        lnf = s->ln;
        ops->layernorm_forward(s->ln, NULL, NULL, s->x + (size_t)(n - 1) * C, m->w.lnfw, m->w.lnfb, 1, C);
    }
    TRACE(L, "ln_f", lnf, 1, C, 0.0);
    MATMUL(s->logits, lnf, m->w.wte, NULL, 1, C, V, 4 * L);
    if (greedy && ops->argmax) ops->argmax(s->tok + c->ctx + 1, s->logits, V);
#undef MATMUL
}

int kv_feed(kv_state_t *s, const int32_t *tokens, int n, char *err) {
    return kv_feed_next(s, tokens, n, NULL, 0.0f, NULL, err);
}

int kv_feed_greedy(kv_state_t *s, const int32_t *tokens, int n, int32_t *next, char *err) {
    return kv_feed_next(s, tokens, n, NULL, 0.0f, next, err);
}

int kv_feed_next(kv_state_t *s, const int32_t *tokens, int n, const sample_opts_t *o, float u,
                 int32_t *next, char *err) {
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    if (n < 1) return mg_fail(err, "nothing to feed");
    if (s->pos + n > c->ctx)
        return mg_fail(err, "context full: %d + %d tokens exceed %d", s->pos, n, c->ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return mg_fail(err, "token id %d out of range", tokens[i]);
    if (n == 1 && !s->trace && ops->graph_begin && !s->q8) {
        /* one token: the whole step is one graph launch, recorded once;
         * it takes the argmax too, which costs a few microseconds */
        int32_t in[2] = {tokens[0], s->pos};
        ops->upload(s->tok, in, sizeof in);
        if (!s->graph) {
            ops->graph_begin();
            step(s, 1, 1, 1);
            s->graph = ops->graph_end();
        }
        if (s->graph)
            ops->graph_launch(s->graph);
        else
            step(s, 1, 1, 1); /* recording failed: run the same calls directly */
    } else {
        ops->upload(s->tok, tokens, (size_t)n * sizeof(int32_t));
        step(s, n, 0, next != NULL);
    }
    s->pos += n;
    int greedy = !o || o->temperature <= 0.0f;
    int32_t *pick = s->tok + c->ctx + 1; /* the step's argmax is already there */
    if (next && (greedy ? ops->argmax != NULL : ops->sample != NULL)) { /* only the id crosses back */
        if (!greedy) ops->sample(pick, s->logits, c->vocab, o->temperature, o->top_k, o->top_p, u);
        ops->download(next, pick, sizeof *next);
        if (*next >= 0) return 0; /* else too many candidates for the backend: on the host */
    }
    ops->download(s->host_logits, s->logits, (size_t)c->vocab * sizeof(float));
    if (next)
        *next = greedy ? sample_argmax(s->host_logits, c->vocab)
                       : sample_token_u(s->host_logits, c->vocab, o, u, s->scratch, NULL, 0);
    return 0;
}
