/* gpt_block.c - the transformer block's forward pass over the ops API, the
 * one place that says what a layer computes (gpt_block.h). */
#include "model/gpt_block.h"

#include "util/common.h"

int gpt_block_fuse_ln(const gpt_model_t *m) {
    const ops_backend_t *ops = m->ops;
    return !m->no_fusion && (m->cfg.norm == GPT_NORM_RMS ? ops->residual_rmsnorm_forward != NULL
                                                         : ops->residual_layernorm_forward != NULL);
}

void gpt_norm_forward(const gpt_model_t *m, float *out, float *mean, float *rstd, const float *x,
                      const float *w, const float *b, int n, int C) {
    if (m->cfg.norm == GPT_NORM_RMS)
        m->ops->rmsnorm_forward(out, rstd, x, w, n, C);
    else
        m->ops->layernorm_forward(out, mean, rstd, x, w, b, n, C);
}

/* res = a + b, then out = the model's normalisation of res, in one fused
 * kernel (only when gpt_block_fuse_ln) */
static void residual_norm_forward(const gpt_model_t *m, float *res, float *out, float *mean,
                                  float *rstd, const float *a, const float *b, const float *w,
                                  const float *bias, int n, int C) {
    if (m->cfg.norm == GPT_NORM_RMS)
        m->ops->residual_rmsnorm_forward(res, out, rstd, a, b, w, n, C);
    else
        m->ops->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, n, C);
}

/* out (n,OC) = in (n,C) @ w^T + bias with the kernel the run asks for; gelu
 * not NULL: also gelu = GELU(out), fused into the product where allowed
 * (never on int8 weights: the int8 kernel has no fused form). k: the
 * weight's index among the layer's four (qkv, proj, fc, fc2). */
static void block_matmul(const gpt_block_run_t *r, gpt_op_t op, float *out, float *gelu,
                         const float *in, const float *w, const float *bias, int C, int OC, int k,
                         int l) {
    const ops_backend_t *ops = r->m->ops;
    int n = r->rows, fuse = gelu && !r->m->no_fusion && r->mm != GPT_MM_Q8;
    if (r->mm == GPT_MM_Q8)
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, op,
                 ops->q8_matmul_forward(out, in, r->q8[4 * l + k], bias, n, C, OC));
    else if (r->mm == GPT_MM_ROWS && ops->matmul_rows_forward)
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, op,
                 ops->matmul_rows_forward(out, fuse && ops->matmul_bias_gelu_forward ? gelu : NULL,
                                          in, w, bias, n, C, OC));
    else if (fuse && ops->matmul_bias_gelu_forward)
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, op,
                 ops->matmul_bias_gelu_forward(out, gelu, in, w, bias, n, C, OC));
    else
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, op,
                 ops->matmul_forward(out, in, w, bias, n, C, OC));
    if (gelu && !(fuse && ops->matmul_bias_gelu_forward))
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, GPT_OP_GELU,
                 ops->gelu_forward(gelu, out, (size_t)n * OC));
}

/* The fc product of the relu^2 and SwiGLU MLPs: pre (n,F) = in (n,C) @
 * fcw^T + fcb and h (n,H) = act(pre), F = gpt_ffn_fc_rows. Fused
 * (matmul_bias_act_forward) where allowed; batched rows (GPT_MM_ROWS) and
 * int8 weights take the product, then the activation, which is row by row:
 * each row as it is alone. */
static void block_fc_act(const gpt_block_run_t *r, float *pre, float *h, const float *in,
                         const float *w, const float *bias, int C, int F, int l) {
    const ops_backend_t *ops = r->m->ops;
    int n = r->rows, act = r->m->cfg.mlp;
    if (r->mm == GPT_MM_FLOAT && !r->m->no_fusion && ops->matmul_bias_act_forward) {
        GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, GPT_OP_FC,
                 ops->matmul_bias_act_forward(pre, h, in, w, bias, n, C, F, act));
        return;
    }
    block_matmul(r, GPT_OP_FC, pre, NULL, in, w, bias, C, F, 2, l);
    GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, GPT_OP_GELU, ops->mlp_act_forward(h, pre, n, F, act));
}

void gpt_block_forward(const gpt_block_run_t *r, int l, const gpt_block_bufs_t *b) {
    gpt_model_t *m = r->m;
    const ops_backend_t *ops = m->ops;
    const gpt_layer_t *w = &m->w.layer[l];
    int C = m->cfg.dim, NH = m->cfg.heads, n = r->rows, fuse_ln = gpt_block_fuse_ln(m);
    size_t nc = (size_t)n * C, cache = (size_t)l * m->cfg.ctx * C;
#define FWD(op, call) GPT_PROF(r->prof, ops, GPT_PHASE_FORWARD, GPT_OP_##op, call)
    /* attention: r2 = x + proj(attn(ln1(x))) */
    int rope = m->cfg.pos == GPT_POS_ROPE, qkn = m->cfg.qk_norm;
    if (!b->ln1_ready)
        FWD(LAYERNORM,
            gpt_norm_forward(m, b->ln1, b->ln1_mean, b->ln1_rstd, b->x, w->ln1w, w->ln1b, n, C));
    block_matmul(r, GPT_OP_QKV, b->qkv, NULL, b->ln1, w->qkvw, w->qkvb, C, 3 * C, 0,
                 l);   /* (n,C) -> (n,3C) */
    switch (r->attn) { /* (n,3C) -> (n,C), q and k first normalised and rotated in place */
    case GPT_ATTN_CAUSAL:
        if (rope || qkn)
            FWD(ATTENTION, ops->qk_forward(b->qkv, b->qk_rstd, n, r->T, 0, C, NH, rope, qkn));
        FWD(ATTENTION, ops->attention_forward(b->atty, b->att, b->qkv, r->B, r->T, C, NH));
        break;
    case GPT_ATTN_CACHED_AT: /* never with RoPE or qk-norm: kv.c records no such step */
        FWD(ATTENTION, ops->attention_cached_at(b->atty, r->seq[0].k + cache, r->seq[0].v + cache,
                                                b->qkv, C, NH, r->pos_dev));
        break;
    case GPT_ATTN_CACHED: /* each sequence's rows against its own cache */
        for (int i = 0, row = 0; i < r->nseq; row += r->seq[i].n, i++) {
            if (rope || qkn) /* rows at the sequence's positions pos.. */
                FWD(ATTENTION,
                    ops->qk_forward(b->qkv + (size_t)row * 3 * C,
                                    b->qk_rstd ? b->qk_rstd + (size_t)row * 2 * NH : NULL,
                                    r->seq[i].n, r->seq[i].n, r->seq[i].pos, C, NH, rope, qkn));
            FWD(ATTENTION, ops->attention_cached(b->atty + (size_t)row * C, r->seq[i].k + cache,
                                                 r->seq[i].v + cache, b->qkv + (size_t)row * 3 * C,
                                                 r->seq[i].n, r->seq[i].pos, C, NH));
        }
        break;
    }
    block_matmul(r, GPT_OP_ATTN_PROJ, b->r2, NULL, b->atty, w->projw, w->projb, C, C, 1, l);
    /* MLP: r3 = r2 + fc2(act(fc(ln2(r2)))), act GELU, relu^2 or SwiGLU (gpt.h) */
    if (fuse_ln) {
        FWD(LAYERNORM, residual_norm_forward(m, b->r2, b->ln2, b->ln2_mean, b->ln2_rstd, b->r2,
                                             b->x, w->ln2w, w->ln2b, n, C));
    } else {
        FWD(RESIDUAL, ops->add(b->r2, b->r2, b->x, nc));
        FWD(LAYERNORM,
            gpt_norm_forward(m, b->ln2, b->ln2_mean, b->ln2_rstd, b->r2, w->ln2w, w->ln2b, n, C));
    }
    if (r->hook) r->hook(r->hook_ctx, l, "attn", b->r2);
    int H = m->cfg.ffn, F = gpt_ffn_fc_rows(&m->cfg);
    if (m->cfg.mlp == GPT_MLP_GELU) /* (n,C) -> (n,H) */
        block_matmul(r, GPT_OP_FC, b->fch, b->fchg, b->ln2, w->fcw, w->fcb, C, H, 2, l);
    else /* (n,C) -> (n,F) -> (n,H) */
        block_fc_act(r, b->fch, b->fchg, b->ln2, w->fcw, w->fcb, C, F, l);
    block_matmul(r, GPT_OP_FC2, b->r3, NULL, b->fchg, w->fc2w, w->fc2b, H, C, 3,
                 l); /* (n,H) -> (n,C) */
    if (fuse_ln)     /* r3 += r2, then the next LayerNorm (the next layer's ln1, or ln_f) of it */
        FWD(LAYERNORM, residual_norm_forward(m, b->r3, b->next, b->next_mean, b->next_rstd, b->r3,
                                             b->r2, b->next_w, b->next_b, n, C));
    else
        FWD(RESIDUAL, ops->add(b->r3, b->r3, b->r2, nc));
    if (r->hook) r->hook(r->hook_ctx, l, "mlp", b->r3);
#undef FWD
}
