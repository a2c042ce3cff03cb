/* kv.c - the inference forward pass with a KV cache, over the ops API. */
#include "infer/kv.h"

#include <stddef.h>

#include "infer/sample.h"
#include "model/gpt_block.h"
#include "util/common.h"

/* the hook, only when set: NULL costs one branch and no clock reads */
#define TRACE(layer, stage, t, rows, cols, secs)                                                   \
    do {                                                                                           \
        if (s->trace) s->trace(s->trace_ctx, s, layer, stage, t, rows, cols, secs);                \
    } while (0)

kv_state_t *kv_create(gpt_model_t *m, char *err) {
    const gpt_config_t *c = &m->cfg;
    size_t T = c->ctx, C = c->dim, L = c->layers;
    size_t F = (size_t)gpt_ffn_fc_rows(c), H = (size_t)c->ffn; /* the MLP (gpt.h) */
    kv_state_t *s = mg_calloc(1, sizeof *s);
    if (!s) goto oom;
    s->model = m;
    struct {
        float **ptr;
        size_t n;
    } parts[] = {
        {&s->kcache, L * T * C},
        {&s->vcache, L * T * C},
        {&s->x, T * C},
        {&s->tmp, T * C},
        {&s->ln, T * C},
        {&s->qkv, T * 3 * C},
        {&s->atty, T * C},
        {&s->fch, T * F},
        {&s->fchg, T * H},
        {&s->logits, (size_t)c->vocab},
        {(float **)&s->tok, T + 2},
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
    int H = m->cfg.ffn, F = gpt_ffn_fc_rows(&m->cfg); /* fc (F,C), fc2 (C,H) */
    if (s->q8) return 0;
    if (!ops->q8_make) return mg_fail(err, "int8 weights need the CPU backend (--device cpu)");
    if (C % 32)
        return mg_fail(err, "int8 weights need a width that is a multiple of 32 (this model: %d)",
                       C);
    if (H % 32)
        return mg_fail(err,
                       "int8 weights need an MLP hidden size that is a multiple of 32 (this "
                       "model: %d)",
                       H);
    void **q = mg_calloc((size_t)n, sizeof *q);
    if (!q) return mg_fail(err, "out of memory");
    for (int l = 0; l < L; l++) {
        const gpt_layer_t *w = &m->w.layer[l];
        q[4 * l + 0] = ops->q8_make(w->qkvw, 3 * C, C);
        q[4 * l + 1] = ops->q8_make(w->projw, C, C);
        q[4 * l + 2] = ops->q8_make(w->fcw, F, C);
        q[4 * l + 3] = ops->q8_make(w->fc2w, C, H);
    }
    q[4 * L] = ops->q8_make(m->w.head, m->cfg.vocab, C); /* the classifier (wte when tied) */
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (!q[i]) {
            for (int k = 0; k < n; k++)
                ops->q8_free(q[k]);
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
        for (int i = 0; i < 4 * s->model->cfg.layers + 1; i++)
            s->model->ops->q8_free(s->q8[i]);
        mg_free(s->q8);
    }
    if (s->graph) s->model->ops->graph_free(s->graph);
    if (s->batch_logits) s->model->ops->free(s->batch_logits);
    if (s->block) s->model->ops->free(s->block);
    mg_free(s->host_logits);
    mg_free(s->scratch);
    mg_free(s);
}

void kv_reset(kv_state_t *s) { s->pos = 0; }

#define KV_Q8_ROWS 8

/* the trace hook between sublayers (gpt_block_hook_fn): the sublayer's wall
 * time runs from the last mark; the hook's own time is not the model's */
typedef struct {
    kv_state_t *s;
    int rows;
    double t0;
} kv_trace_mark_t;

static void kv_trace_sublayer(void *ctx, int layer, const char *stage, const float *r) {
    kv_trace_mark_t *k = ctx;
    kv_state_t *s = k->s;
    double t1 = mg_now();
    TRACE(layer, stage, r, k->rows, s->model->cfg.dim, t1 - k->t0);
    k->t0 = mg_now();
}

/* The forward pass of the layers over rows x (rows,C), with the blocks run
 * as run says; the residual stream stays in x (tmp is the block's other
 * residual buffer). Fused (gpt_block.h), ln then holds ln_f of every row,
 * else the caller takes it. */
static void kv_layers(kv_state_t *s, gpt_block_run_t *run) {
    gpt_model_t *m = s->model;
    int L = m->cfg.layers, fuse_ln = gpt_block_fuse_ln(m);
    for (int l = 0; l < L; l++) {
        int last = l == L - 1;
        /* r2 is tmp and r3 is x again: x + proj lands in tmp, x is free
         * for fc2, and tmp + fc2 lands back in x */
        gpt_block_bufs_t b = {
            .x = s->x,
            .ln1 = s->ln,
            .qkv = s->qkv,
            .atty = s->atty,
            .r2 = s->tmp,
            .ln2 = s->ln,
            .fch = s->fch,
            .fchg = s->fchg,
            .r3 = s->x,
            .next = s->ln,
            .next_w = last ? m->w.lnfw : m->w.layer[l + 1].ln1w,
            .next_b = last ? m->w.lnfb : m->w.layer[l + 1].ln1b,
            .ln1_ready = fuse_ln && l > 0,
        };
        gpt_block_forward(run, l, &b);
    }
}

/* The forward pass of n rows at positions s->pos.. into s->logits (and
 * their argmax into s->tok[ctx + 1] when greedy). With at_dev (one token,
 * graph recording) the position is read on the backend from s->tok[1]
 * when the kernels run, and nothing is traced. The fused kernels, when
 * the backend has them, save a launch and a pass each: a sublayer's
 * residual add with the next LayerNorm, the fc matmul with its activation. */
static void step(kv_state_t *s, int n, int at_dev, int greedy) {
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int C = c->dim, V = c->vocab, L = c->layers;
    int fuse_ln = gpt_block_fuse_ln(m);
    /* products with the int8 copies of the weights (kv_quantize) for up to
     * KV_Q8_ROWS rows: a longer prompt's prefill is compute-bound and goes
     * faster through BLAS on the float32 weights (GPT-2, 128 tokens, 2
     * cores: 575 tokens/s against 303 with int8) */
    int q8 = s->q8 && n <= KV_Q8_ROWS;
    gpt_block_seq_t seq = {s->kcache, s->vcache, s->pos, n};
    kv_trace_mark_t mark = {s, n, 0.0};
    gpt_block_run_t run = {
        .m = m,
        .rows = n,
        .attn = at_dev ? GPT_ATTN_CACHED_AT : GPT_ATTN_CACHED,
        .seq = &seq,
        .nseq = 1,
        .pos_dev = s->tok + 1,
        .mm = q8 ? GPT_MM_Q8 : GPT_MM_FLOAT,
        .q8 = s->q8,
        .hook = s->trace ? kv_trace_sublayer : NULL,
        .hook_ctx = &mark,
    };
    /* tokens (n) -> x (n,C), positions pos.. */
    if (at_dev)
        ops->embed_forward_at(s->x, s->tok, m->w.wte, m->w.wpe, C, s->tok + 1);
    else
        ops->embed_forward(s->x, s->tok, m->w.wte, m->w.wpe, 1, n, C, s->pos);
    TRACE(-1, "embed", s->x, n, C, 0.0);
    mark.t0 = s->trace ? mg_now() : 0.0;
    kv_layers(s, &run);
    /* only the last position's logits are needed: (1,C) -> (1,V) */
    const float *lnf = s->ln + (size_t)(n - 1) * C;
    if (!fuse_ln) {
        lnf = s->ln;
        gpt_norm_forward(m, s->ln, NULL, NULL, s->x + (size_t)(n - 1) * C, m->w.lnfw, m->w.lnfb, 1,
                         C);
    }
    TRACE(L, "ln_f", lnf, 1, C, 0.0);
    if (q8)
        ops->q8_matmul_forward(s->logits, lnf, s->q8[4 * L], NULL, 1, C, V);
    else
        ops->matmul_forward(s->logits, lnf, m->w.head, NULL, 1, C, V);
    if (greedy && ops->argmax) ops->argmax(s->tok + c->ctx + 1, s->logits, V);
}

/* (n,C) -> (n,V) for batched rows: the classifier as each row gets it alone */
static void kv_rows_logits(kv_state_t *s, float *logits, const float *ln, int n) {
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    int C = m->cfg.dim, V = m->cfg.vocab;
    if (s->q8)
        ops->q8_matmul_forward(logits, ln, s->q8[4 * m->cfg.layers], NULL, n, C, V);
    else if (ops->matmul_rows_forward)
        ops->matmul_rows_forward(logits, NULL, ln, m->w.head, NULL, n, C, V);
    else
        ops->matmul_forward(logits, ln, m->w.head, NULL, n, C, V);
}

int kv_feed_batch(kv_state_t *const *seqs, const int32_t *tokens, int n, char *err) {
    if (n < 1) return mg_fail(err, "nothing to feed");
    kv_state_t *s = seqs[0]; /* its scratch serves the batch's rows */
    gpt_model_t *m = s->model;
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int C = c->dim, V = c->vocab;
    if (n > c->ctx)
        return mg_fail(err, "a batch of %d sequences exceeds the context (%d)", n, c->ctx);
    for (int i = 0; i < n; i++) {
        const kv_state_t *q = seqs[i];
        if (q->model != m) return mg_fail(err, "batched sequences must share one model");
        if (!q->q8 != !s->q8)
            return mg_fail(err, "batched sequences must all be int8 or all float32");
        if (q->pos + 1 > c->ctx)
            return mg_fail(err, "context full: sequence %d holds %d tokens", i, q->pos);
        if (tokens[i] < 0 || tokens[i] >= V)
            return mg_fail(err, "token id %d out of range", tokens[i]);
        for (int j = 0; j < i; j++)
            if (seqs[j] == q) return mg_fail(err, "sequence %d appears twice in the batch", i);
    }
    if (s->batch_rows < n) { /* logits of every row (n,V), kept for the next batches */
        float *p = ops->alloc((size_t)n * V * sizeof(float));
        if (!p) return mg_fail(err, "out of memory for the logits of %d sequences", n);
        if (s->batch_logits) ops->free(s->batch_logits);
        s->batch_logits = p;
        s->batch_rows = n;
    }
    gpt_block_seq_t seq[n]; /* row i: one token after sequence i's cache */
    for (int i = 0; i < n; i++)
        seq[i] = (gpt_block_seq_t){seqs[i]->kcache, seqs[i]->vcache, seqs[i]->pos, 1};
    gpt_block_run_t run = {.m = m,
                           .rows = n,
                           .attn = GPT_ATTN_CACHED,
                           .seq = seq,
                           .nseq = n,
                           .mm = s->q8 ? GPT_MM_Q8 : GPT_MM_ROWS,
                           .q8 = s->q8};
    /* tokens (n) -> x (n,C), row i at its sequence's position */
    ops->upload(s->tok, tokens, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        ops->embed_forward(s->x + (size_t)i * C, s->tok + i, m->w.wte, m->w.wpe, 1, 1, C,
                           seqs[i]->pos);
    kv_layers(s, &run);
    if (!gpt_block_fuse_ln(m)) /* fused, the last block left ln_f of every row in ln */
        gpt_norm_forward(m, s->ln, NULL, NULL, s->x, m->w.lnfw, m->w.lnfb, n, C);
    kv_rows_logits(s, s->batch_logits, s->ln, n);
    for (int i = 0; i < n; i++) {
        ops->download(seqs[i]->host_logits, s->batch_logits + (size_t)i * V,
                      (size_t)V * sizeof(float));
        seqs[i]->pos++;
    }
    return 0;
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
    /* (the recorded step reads its position on the backend, which RoPE's
     * kernel does not: rotary models run the calls directly) */
    if (n == 1 && !s->trace && ops->graph_begin && !s->q8 && c->pos != GPT_POS_ROPE &&
        !c->qk_norm) {
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
    if (next &&
        (greedy ? ops->argmax != NULL : ops->sample != NULL)) { /* only the id crosses back */
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
