/* gpt_train.c - the training forward pass (its blocks are gpt_block.c's,
 * which decoding runs too) with the loss, the backward pass that undoes it
 * layer by layer, and the AdamW step with global-norm clipping. Everything
 * numeric goes through m->ops. */
#include <math.h>

#include "model/gpt.h"
#include "model/gpt_block.h"
#include "util/common.h"

const char *gpt_op_name(gpt_op_t op) {
    static const char *names[GPT_OP_COUNT] = {
        "embedding",    "layernorm", "qkv matmul", "attn proj matmul", "fc matmul",
        "fc2 matmul",   "attention", "gelu",       "residual add",     "classifier matmul",
        "softmax+xent", "adamw",     "muon",
    };
    return op >= 0 && op < GPT_OP_COUNT ? names[op] : "?";
}

/* per-op timing when m->prof is set (gpt.h) */
#define PROF(phase, op, call) GPT_PROF(m->prof, m->ops, phase, op, call)
#define FWD(op, call) PROF(GPT_PHASE_FORWARD, GPT_OP_##op, call)
#define BWD(op, call) PROF(GPT_PHASE_BACKWARD, GPT_OP_##op, call)
#define OPT(call) PROF(GPT_PHASE_OPTIMIZER, GPT_OP_ADAMW, call)
#define MUON(call) PROF(GPT_PHASE_OPTIMIZER, GPT_OP_MUON, call)

float gpt_forward(gpt_model_t *m, const int32_t *tokens, const int32_t *targets, int B, int T) {
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int C = c->dim, NH = c->heads, V = c->vocab, L = c->layers;
    size_t N = (size_t)B * T, F = (size_t)gpt_ffn_fc_rows(c), H = (size_t)c->ffn;
    gpt_acts_t *a = &m->a;
    m->cur_B = B;
    m->cur_T = T;
    FWD(EMBED, ops->upload(a->tokens, tokens, N * sizeof(int32_t)));
    if (targets) FWD(XENT, ops->upload(a->targets, targets, N * sizeof(int32_t)));

    /* tokens (B,T) -> x (B,T,C) */
    FWD(EMBED, ops->embed_forward(a->encoded, a->tokens, m->w.wte, m->w.wpe, B, T, C, 0));
    /* the blocks (model/gpt_block.c), each keeping its activations for
     * backward; fused (ops.h), ln1 of the layers after the first comes with
     * the residual add that ended the layer before, and ln_f with the last */
    int fuse_ln = gpt_block_fuse_ln(m);
    gpt_block_run_t run = {.m = m,
                           .rows = (int)N,
                           .attn = GPT_ATTN_CAUSAL,
                           .B = B,
                           .T = T,
                           .mm = GPT_MM_FLOAT,
                           .prof = m->prof};
    const float *x = a->encoded;
    for (int l = 0; l < L; l++) {
        int last = l == L - 1;
        gpt_block_bufs_t bl = {
            .x = x,
            .ln1 = a->ln1 + l * N * C,
            .ln1_mean = a->ln1_mean + l * N,
            .ln1_rstd = a->ln1_rstd + l * N,
            .qkv = a->qkv + l * N * 3 * C,
            .qk_rstd = a->qk_rstd + l * N * 2 * NH,
            .att = a->att + l * ops->attention_state_floats(B, NH, T),
            .atty = a->atty + l * N * C,
            .r2 = a->res2 + l * N * C,
            .ln2 = a->ln2 + l * N * C,
            .ln2_mean = a->ln2_mean + l * N,
            .ln2_rstd = a->ln2_rstd + l * N,
            .fch = a->fch + l * N * F,
            .fchg = a->fch_gelu + l * N * H,
            .r3 = a->res3 + l * N * C,
            .next = last ? a->lnf : a->ln1 + (l + 1) * N * C,
            .next_mean = last ? a->lnf_mean : a->ln1_mean + (l + 1) * N,
            .next_rstd = last ? a->lnf_rstd : a->ln1_rstd + (l + 1) * N,
            .next_w = last ? m->w.lnfw : m->w.layer[l + 1].ln1w,
            .next_b = last ? m->w.lnfb : m->w.layer[l + 1].ln1b,
            .ln1_ready = fuse_ln && l > 0,
        };
        gpt_block_forward(&run, l, &bl);
        x = bl.r3;
    }
    if (!fuse_ln || L == 0)
        FWD(LAYERNORM, gpt_norm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.lnfw,
                                        m->w.lnfb, (int)N, C));
    FWD(CLASSIFIER, ops->matmul_forward(a->logits, a->lnf, m->w.head, NULL, N, C,
                                        V)); /* the head (wte when tied): (N,C) -> (N,V) */
    if (!targets) return NAN;
    /* the gradient of the mean loss is 1/N per row (times grad_scale, for
     * accumulated micro-batches); computed now, in the same pass, and used
     * by gpt_backward (logits become dlogits) */
    FWD(XENT, ops->xent_forward_backward(a->losses, a->logits, a->logits, a->targets, N, V,
                                         m->grad_scale / N));
    FWD(XENT, ops->download(m->host_losses, a->losses, N * sizeof(float)));
    double sum = 0.0;
    for (size_t i = 0; i < N; i++)
        sum += m->host_losses[i];
    return (float)(sum / N);
}

void gpt_zero_grad(gpt_model_t *m) { OPT(m->ops->zero(m->grads, m->num_floats * sizeof(float))); }

/* The backward of the model's normalisation (gpt_norm_forward): dx
 * ACCUMULATES; fused selects the LayerNorm kernel that takes dw and db in
 * the same pass (RMSNorm's always does). */
static void norm_backward(const gpt_model_t *m, int fused, float *dx, float *dw, float *db,
                          const float *dout, const float *x, const float *w, const float *mean,
                          const float *rstd, int N, int C) {
    const ops_backend_t *ops = m->ops;
    if (m->cfg.norm == GPT_NORM_RMS)
        ops->rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    else if (fused)
        ops->residual_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
    else
        ops->layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
}

/* The MLP's backward from dh (N,H), the gradient of its hidden activation,
 * to a->dc (N,C), the gradient of ln2's output, for relu^2 and SwiGLU:
 * dpre (N,F) = act'(pre) dh, then fc's backward. Fused, the bias gradient
 * comes with the activation's backward. */
static void mlp_act_backward(gpt_model_t *m, int l, const float *dh, size_t N) {
    const ops_backend_t *ops = m->ops;
    gpt_acts_t *a = &m->a;
    const gpt_layer_t *w = &m->w.layer[l];
    gpt_layer_t *g = &m->g.layer[l];
    int C = m->cfg.dim, F = gpt_ffn_fc_rows(&m->cfg), act = m->cfg.mlp;
    const float *pre = a->fch + l * N * F, *ln2 = a->ln2 + l * N * C;
    if (!m->no_fusion && ops->mlp_act_bias_backward) {
        BWD(GELU, ops->mlp_act_bias_backward(a->d4c, g->fcb, pre, dh, (int)N, F, act));
        BWD(FC, ops->matmul_backward(a->dc, g->fcw, NULL, a->d4c, ln2, w->fcw, N, C, F));
    } else {
        BWD(GELU, ops->mlp_act_backward(a->d4c, pre, dh, (int)N, F, act));
        BWD(FC, ops->matmul_backward(a->dc, g->fcw, g->fcb, a->d4c, ln2, w->fcw, N, C, F));
    }
}

/* d(logits) already sits in a->logits (scaled by grad_scale/N, for the mean loss). */
void gpt_backward(gpt_model_t *m) {
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, C = c->dim, NH = c->heads, V = c->vocab, L = c->layers;
    int H = c->ffn;
    size_t N = (size_t)B * T;
    gpt_acts_t *a = &m->a;
    float *dres = a->dres; /* gradient of the residual stream, walking down */
    /* SwiGLU's dh (N,H) and dpre (N,2H) differ in shape; relu^2 and GELU
     * work in place in d4c */
    float *dh = c->mlp == GPT_MLP_SWIGLU ? a->dh : a->d4c;
    /* fused kernels (ops.h): LayerNorm backward with dw, db in one pass;
     * GELU backward with the fc bias gradient */
    int fln = !m->no_fusion && ops->residual_layernorm_backward != NULL;
    int fuse_gelu = !m->no_fusion && ops->gelu_bias_backward;
    int rope = c->pos == GPT_POS_ROPE, qkn = c->qk_norm;
    /* head: dlnf (N,C) = dlogits @ head; dhead += dlogits^T @ lnf (head is
     * wte when tied: the embedding then gets both gradients) */
    BWD(CLASSIFIER,
        ops->matmul_backward(a->dc, m->g.head, NULL, a->logits, a->lnf, m->w.head, N, C, V));
    BWD(RESIDUAL, ops->zero(dres, N * C * sizeof(float)));
    const float *xlast = L > 0 ? a->res3 + (L - 1) * N * C : a->encoded;
    BWD(LAYERNORM, norm_backward(m, fln, dres, m->g.lnfw, m->g.lnfb, a->dc, xlast, m->w.lnfw,
                                 a->lnf_mean, a->lnf_rstd, (int)N, C));
    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer_t *w = &m->w.layer[l];
        gpt_layer_t *g = &m->g.layer[l];
        const float *x = l == 0 ? a->encoded : a->res3 + (l - 1) * N * C;
        float *ln1 = a->ln1 + l * N * C, *qkv = a->qkv + l * N * 3 * C;
        float *att = a->att + l * ops->attention_state_floats(B, NH, T),
              *atty = a->atty + l * N * C;
        float *res2 = a->res2 + l * N * C, *ln2 = a->ln2 + l * N * C;
        float *fch = a->fch + l * N * gpt_ffn_fc_rows(c), *fchg = a->fch_gelu + l * N * H;
        /* MLP, reversed: dres holds d(res3) and flows straight to res2 */
        BWD(FC2, ops->matmul_backward(dh, g->fc2w, g->fc2b, dres, fchg, w->fc2w, N, H, C));
        if (c->mlp != GPT_MLP_GELU) {
            mlp_act_backward(m, l, dh, N);
        } else if (fuse_gelu) {
            BWD(GELU, ops->gelu_bias_backward(a->d4c, g->fcb, fch, a->d4c, N, H));
            BWD(FC, ops->matmul_backward(a->dc, g->fcw, NULL, a->d4c, ln2, w->fcw, N, C, H));
        } else {
            BWD(GELU, ops->gelu_backward(a->d4c, fch, a->d4c, N * H));
            BWD(FC, ops->matmul_backward(a->dc, g->fcw, g->fcb, a->d4c, ln2, w->fcw, N, C, H));
        }
        BWD(LAYERNORM, norm_backward(m, fln, dres, g->ln2w, g->ln2b, a->dc, res2, w->ln2w,
                                     a->ln2_mean + l * N, a->ln2_rstd + l * N, (int)N, C));
        /* attention, reversed: dres holds d(res2) and flows straight to x */
        BWD(ATTN_PROJ,
            ops->matmul_backward(a->dc, g->projw, g->projb, dres, atty, w->projw, N, C, C));
        BWD(ATTENTION, ops->attention_backward(a->d3c, a->dc, qkv, atty, att, B, T, C, NH));
        if (rope || qkn) /* back through RoPE and qk-norm: d(q, k) before them */
            BWD(ATTENTION, ops->qk_backward(a->d3c, qkv, a->qk_rstd + l * N * 2 * NH, (int)N, T, 0,
                                            C, NH, rope, qkn));
        BWD(QKV, ops->matmul_backward(a->dc, g->qkvw, g->qkvb, a->d3c, ln1, w->qkvw, N, C, 3 * C));
        BWD(LAYERNORM, norm_backward(m, fln, dres, g->ln1w, g->ln1b, a->dc, x, w->ln1w,
                                     a->ln1_mean + l * N, a->ln1_rstd + l * N, (int)N, C));
    }
    BWD(EMBED, ops->embed_backward(m->g.wte, m->g.wpe, dres, a->tokens, B, T, C));
}

float gpt_adamw_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip) {
    const ops_backend_t *ops = m->ops;
    if (!m->no_fusion && ops->adamw_clip) { /* norm, clipping and AdamW in one call */
        ops_segment_t seg[m->n_params];     /* host table of the tensors (a few KB) */
        for (int i = 0; i < m->n_params; i++)
            seg[i] = (ops_segment_t){m->params[i].offset, m->params[i].numel, m->params[i].decay};
        m->adam_t++;
        float norm = 0.0f;
        OPT(norm = ops->adamw_clip(m->weights, m->grads, m->m, m->v, seg, m->n_params, lr, beta1,
                                   beta2, eps, wd, clip, m->adam_t));
        return norm;
    }
    double sq = 0.0;
    OPT(sq = ops->sq_norm(m->grads, m->num_floats));
    float norm = (float)sqrt(sq);
    float scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
    m->adam_t++;
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        OPT(ops->adamw(m->weights + p->offset, m->grads + p->offset, m->m + p->offset,
                       m->v + p->offset, p->numel, lr, beta1, beta2, eps, p->decay ? wd : 0.0f,
                       scale, m->adam_t));
    }
    return norm;
}

int gpt_muon_check(const ops_backend_t *ops, char *err) {
    if (!ops->muon_update || !ops->muon_scratch_floats)
        return mg_fail(err,
                       "the %s backend has no Muon optimizer (--optimizer muon); use --device "
                       "cpu or --optimizer adamw",
                       ops->name);
    return 0;
}

int gpt_alloc_muon(gpt_model_t *m, char *err) {
    const ops_backend_t *ops = m->ops;
    if (gpt_muon_check(ops, err)) return -1;
    if (m->muon_scratch) return 0;
    size_t most = 0; /* one scratch serves every matrix in turn */
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        if (p->hidden)
            most = MG_MAX(most,
                          ops->muon_scratch_floats((int)p->shape[0], (int)p->shape[1], p->blocks));
    }
    if (most && !(m->muon_scratch = ops->alloc(most * sizeof(float))))
        return mg_fail(err, "out of memory for Muon's scratch (%zu floats)", most);
    return 0;
}

float gpt_muon_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                    float clip, float muon_lr, float muon_momentum) {
    const ops_backend_t *ops = m->ops;
    double sq = 0.0;
    OPT(sq = ops->sq_norm(m->grads, m->num_floats));
    float norm = (float)sqrt(sq);
    float scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
    m->adam_t++; /* AdamW's bias correction for the other tensors */
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        if (p->hidden)
            MUON(ops->muon_update(m->weights + p->offset, m->grads + p->offset, m->m + p->offset,
                                  (int)p->shape[0], (int)p->shape[1], p->blocks, muon_lr,
                                  muon_momentum, wd, scale, m->muon_scratch));
        else
            OPT(ops->adamw(m->weights + p->offset, m->grads + p->offset, m->m + p->offset,
                           m->v + p->offset, p->numel, lr, beta1, beta2, eps, p->decay ? wd : 0.0f,
                           scale, m->adam_t));
    }
    return norm;
}
