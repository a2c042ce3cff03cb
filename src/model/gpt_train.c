/* gpt_train.c - the training forward and backward passes, each layer's
 * backward written beside the forward it undoes (in reverse), and the AdamW
 * step with global-norm clipping. Everything numeric goes through m->ops. */
#include <math.h>

#include "model/gpt.h"
#include "util/common.h"

const char *gpt_op_name(gpt_op_t op) {
    static const char *names[GPT_OP_COUNT] = {
        "embedding",    "layernorm", "qkv matmul",        "attn proj matmul",
        "fc matmul",    "fc2 matmul", "attention",        "gelu",
        "residual add", "classifier matmul", "softmax+xent", "adamw",
    };
    return op >= 0 && op < GPT_OP_COUNT ? names[op] : "?";
}

/* Profiling (m->prof set): synchronize, run the op, synchronize, add its
 * wall time to prof->seconds[phase][op]. Without m->prof: just the call. */
#define PROF(phase, op, call)                                                                      \
    do {                                                                                           \
        if (m->prof) {                                                                             \
            m->ops->synchronize();                                                                 \
            double t0_ = mg_now();                                                                 \
            call;                                                                                  \
            m->ops->synchronize();                                                                 \
            m->prof->seconds[phase][op] += mg_now() - t0_;                                         \
        } else {                                                                                   \
            call;                                                                                  \
        }                                                                                          \
    } while (0)
#define FWD(op, call) PROF(GPT_PHASE_FORWARD, GPT_OP_##op, call)
#define BWD(op, call) PROF(GPT_PHASE_BACKWARD, GPT_OP_##op, call)
#define OPT(call) PROF(GPT_PHASE_OPTIMIZER, GPT_OP_ADAMW, call)

float gpt_forward(gpt_model_t *m, const int32_t *tokens, const int32_t *targets, int B, int T) {
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int C = c->dim, NH = c->heads, V = c->vocab, L = c->layers;
    size_t N = (size_t)B * T;
    gpt_acts_t *a = &m->a;
    m->cur_B = B;
    m->cur_T = T;
    FWD(EMBED, ops->upload(a->tokens, tokens, N * sizeof(int32_t)));
    if (targets) FWD(XENT, ops->upload(a->targets, targets, N * sizeof(int32_t)));

    /* tokens (B,T) -> x (B,T,C) */
    FWD(EMBED, ops->embed_forward(a->encoded, a->tokens, m->w.wte, m->w.wpe, B, T, C, 0));
    /* fused kernels, where the backend has them (ops.h): residual add +
     * LayerNorm, matmul + bias + GELU */
    int fuse_ln = !m->no_fusion && ops->residual_layernorm_forward;
    int fuse_gelu = !m->no_fusion && ops->matmul_bias_gelu_forward;
    const float *x = a->encoded;
    for (int l = 0; l < L; l++) {
        const gpt_layer_t *w = &m->w.layer[l];
        float *ln1 = a->ln1 + l * N * C, *qkv = a->qkv + l * N * 3 * C;
        float *att = a->att + l * ops->attention_state_floats(B, NH, T), *atty = a->atty + l * N * C;
        float *res2 = a->res2 + l * N * C, *ln2 = a->ln2 + l * N * C;
        float *fch = a->fch + l * N * 4 * C, *fchg = a->fch_gelu + l * N * 4 * C;
        float *res3 = a->res3 + l * N * C;
        /* attention: x + proj(attn(ln1(x))); fused, ln1 of the layers after
         * the first came with the residual add that ended the layer before */
        if (!fuse_ln || l == 0)
            FWD(LAYERNORM, ops->layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, x, w->ln1w, w->ln1b, N, C));
        FWD(QKV, ops->matmul_forward(qkv, ln1, w->qkvw, w->qkvb, N, C, 3 * C)); /* (N,C) -> (N,3C) */
        FWD(ATTENTION, ops->attention_forward(atty, att, qkv, B, T, C, NH));     /* (N,3C) -> (N,C) */
        FWD(ATTN_PROJ, ops->matmul_forward(res2, atty, w->projw, w->projb, N, C, C));
        /* MLP: res2 + fc2(gelu(fc(ln2(res2)))) */
        if (fuse_ln) {
            FWD(LAYERNORM, ops->residual_layernorm_forward(res2, ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, res2, x, w->ln2w, w->ln2b, N, C));
        } else {
            FWD(RESIDUAL, ops->add(res2, res2, x, N * C));
            FWD(LAYERNORM, ops->layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, res2, w->ln2w, w->ln2b, N, C));
        }
        if (fuse_gelu) {
            FWD(FC, ops->matmul_bias_gelu_forward(fch, fchg, ln2, w->fcw, w->fcb, N, C, 4 * C));
        } else {
            FWD(FC, ops->matmul_forward(fch, ln2, w->fcw, w->fcb, N, C, 4 * C)); /* (N,C) -> (N,4C) */
            FWD(GELU, ops->gelu_forward(fchg, fch, N * 4 * C));
        }
        FWD(FC2, ops->matmul_forward(res3, fchg, w->fc2w, w->fc2b, N, 4 * C, C)); /* (N,4C) -> (N,C) */
        if (fuse_ln) { /* res3 = res3 + res2, then the next layer's ln1 (or ln_f) of it */
            int last = l == L - 1;
            const gpt_layer_t *wn = last ? NULL : &m->w.layer[l + 1];
            FWD(LAYERNORM, ops->residual_layernorm_forward(res3, last ? a->lnf : a->ln1 + (l + 1) * N * C,
                last ? a->lnf_mean : a->ln1_mean + (l + 1) * N, last ? a->lnf_rstd : a->ln1_rstd + (l + 1) * N,
                res3, res2, last ? m->w.lnfw : wn->ln1w, last ? m->w.lnfb : wn->ln1b, N, C));
        } else {
            FWD(RESIDUAL, ops->add(res3, res3, res2, N * C));
        }
        x = res3;
    }
    if (!fuse_ln || L == 0)
        FWD(LAYERNORM, ops->layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.lnfw, m->w.lnfb, N, C));
    FWD(CLASSIFIER, ops->matmul_forward(a->logits, a->lnf, m->w.wte, NULL, N, C, V)); /* tied head: (N,C) -> (N,V) */
    if (!targets) return NAN;
    /* the gradient of the mean loss is 1/N per row (times grad_scale, for
     * accumulated micro-batches); computed now, in the same pass, and used
     * by gpt_backward (logits become dlogits) */
    FWD(XENT, ops->xent_forward_backward(a->losses, a->logits, a->logits, a->targets, N, V, m->grad_scale / N));
    FWD(XENT, ops->download(m->host_losses, a->losses, N * sizeof(float)));
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += m->host_losses[i];
    return (float)(sum / N);
}

void gpt_zero_grad(gpt_model_t *m) { OPT(m->ops->zero(m->grads, m->num_floats * sizeof(float))); }

/* d(logits) already sits in a->logits (scaled by grad_scale/N, for the mean loss). */
void gpt_backward(gpt_model_t *m) {
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int B = m->cur_B, T = m->cur_T, C = c->dim, NH = c->heads, V = c->vocab, L = c->layers;
    size_t N = (size_t)B * T;
    gpt_acts_t *a = &m->a;
    float *dres = a->dres; /* gradient of the residual stream, walking down */
    /* fused kernels (ops.h): LayerNorm backward with dw, db in one pass;
     * GELU backward with the fc bias gradient */
    void (*ln_backward)(float *, float *, float *, const float *, const float *, const float *,
                        const float *, const float *, int, int) =
        !m->no_fusion && ops->residual_layernorm_backward ? ops->residual_layernorm_backward : ops->layernorm_backward;
    int fuse_gelu = !m->no_fusion && ops->gelu_bias_backward;
    /* tied head: dlnf (N,C) = dlogits @ wte; dwte += dlogits^T @ lnf */
    BWD(CLASSIFIER, ops->matmul_backward(a->dc, m->g.wte, NULL, a->logits, a->lnf, m->w.wte, N, C, V));
    BWD(RESIDUAL, ops->zero(dres, N * C * sizeof(float)));
    const float *xlast = L > 0 ? a->res3 + (L - 1) * N * C : a->encoded;
    BWD(LAYERNORM, ln_backward(dres, m->g.lnfw, m->g.lnfb, a->dc, xlast, m->w.lnfw, a->lnf_mean, a->lnf_rstd, N, C));
    for (int l = L - 1; l >= 0; l--) {
        const gpt_layer_t *w = &m->w.layer[l];
        gpt_layer_t *g = &m->g.layer[l];
        const float *x = l == 0 ? a->encoded : a->res3 + (l - 1) * N * C;
        float *ln1 = a->ln1 + l * N * C, *qkv = a->qkv + l * N * 3 * C;
        float *att = a->att + l * ops->attention_state_floats(B, NH, T), *atty = a->atty + l * N * C;
        float *res2 = a->res2 + l * N * C, *ln2 = a->ln2 + l * N * C;
        float *fch = a->fch + l * N * 4 * C, *fchg = a->fch_gelu + l * N * 4 * C;
        /* MLP, reversed: dres holds d(res3) and flows straight to res2 */
        BWD(FC2, ops->matmul_backward(a->d4c, g->fc2w, g->fc2b, dres, fchg, w->fc2w, N, 4 * C, C));
        if (fuse_gelu) {
            BWD(GELU, ops->gelu_bias_backward(a->d4c, g->fcb, fch, a->d4c, N, 4 * C));
            BWD(FC, ops->matmul_backward(a->dc, g->fcw, NULL, a->d4c, ln2, w->fcw, N, C, 4 * C));
        } else {
            BWD(GELU, ops->gelu_backward(a->d4c, fch, a->d4c, N * 4 * C));
            BWD(FC, ops->matmul_backward(a->dc, g->fcw, g->fcb, a->d4c, ln2, w->fcw, N, C, 4 * C));
        }
        BWD(LAYERNORM, ln_backward(dres, g->ln2w, g->ln2b, a->dc, res2, w->ln2w, a->ln2_mean + l * N, a->ln2_rstd + l * N, N, C));
        /* attention, reversed: dres holds d(res2) and flows straight to x */
        BWD(ATTN_PROJ, ops->matmul_backward(a->dc, g->projw, g->projb, dres, atty, w->projw, N, C, C));
        BWD(ATTENTION, ops->attention_backward(a->d3c, a->dc, qkv, atty, att, B, T, C, NH));
        BWD(QKV, ops->matmul_backward(a->dc, g->qkvw, g->qkvb, a->d3c, ln1, w->qkvw, N, C, 3 * C));
        BWD(LAYERNORM, ln_backward(dres, g->ln1w, g->ln1b, a->dc, x, w->ln1w, a->ln1_mean + l * N, a->ln1_rstd + l * N, N, C));
    }
    BWD(EMBED, ops->embed_backward(m->g.wte, m->g.wpe, dres, a->tokens, B, T, C));
}

float gpt_adamw_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip) {
    const ops_backend_t *ops = m->ops;
    if (!m->no_fusion && ops->adamw_clip) { /* norm, clipping and AdamW in one call */
        ops_segment_t seg[m->n_params]; /* host table of the tensors (a few KB) */
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
