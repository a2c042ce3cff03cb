/* gpt_block.h - one transformer block's forward pass, written once: the
 * training forward (B sequences of T rows), the KV-cached decoding step (one
 * sequence of n rows after its cache) and batched decoding (n sequences of one
 * row, each after its own cache) all run gpt_block_forward. They differ only
 * in where the rows' keys come from (the attention mode), in which weights the
 * matrix products read (float32 or int8) and in which buffers they keep.
 *
 *   r2 = x + proj(attn(ln1(x)))      x, r2 (n,C)
 *     (with qk-norm and RoPE on attn's q and k when the config says so;
 *      ln1, ln2, ln_f are LayerNorm or RMSNorm)
 *   r3 = r2 + fc2(act(fc(ln2(r2))))  r3 (n,C), act GELU, relu^2 or SwiGLU
 * then, with fusion, next = LayerNorm(r3) with the next layer's ln1 (or ln_f)
 * weights in the same pass as the residual add. */
#ifndef MG_GPT_BLOCK_H
#define MG_GPT_BLOCK_H

#include "model/gpt.h"
#include "util/common.h" /* mg_now, for GPT_PROF */

/* Where attention finds its keys and values. */
typedef enum {
    GPT_ATTN_CAUSAL,    /* training: B sequences of T rows, causal over the rows themselves */
    GPT_ATTN_CACHED,    /* each of seq[0..nseq) takes its rows after its own cache */
    GPT_ATTN_CACHED_AT, /* one row, one cache, position read on the backend from pos_dev
                         * (a recorded graph step: ops.h, attention_cached_at) */
} gpt_attn_mode_t;

/* One sequence's cache for the cached modes: its rows come next in the block's
 * rows, n of them at positions pos..pos+n-1. k, v: the layer-0 caches (ctx,C);
 * layer l's are l * ctx * C floats further. */
typedef struct {
    float *k, *v;
    int pos, n;
} gpt_block_seq_t;

/* Which kernel computes the block's four matrix products. */
typedef enum {
    GPT_MM_FLOAT, /* matmul_forward on the float32 weights (fused with the activation where
                   * allowed) */
    GPT_MM_ROWS,  /* matmul_rows_forward where the backend has it: each row as alone (batched
                   * decoding: a sequence's logits must not depend on its batch-mates) */
    GPT_MM_Q8,    /* q8_matmul_forward on int8 copies: q8[4 l + 0..3] = qkv, proj, fc, fc2 */
} gpt_mm_mode_t;

/* Called after each sublayer (stage "attn", then "mlp") with the residual
 * stream r (rows x C, on the backend) that it left. */
typedef void (*gpt_block_hook_fn)(void *ctx, int layer, const char *stage, const float *r);

/* The buffers of one call (one layer). ln1 holds LayerNorm1(x) already when
 * ln1_ready (fusion: the previous block wrote it as its "next"). Any of the
 * mean / rstd pointers may be NULL (inference). r2 may be x's buffer only
 * when x is not needed afterwards; r3 may be x's buffer. */
typedef struct {
    const float *x;
    float *ln1, *ln1_mean, *ln1_rstd; /* (n,C), (n), (n) */
    float *qkv;                       /* (n,3C); q, k after qk-norm and RoPE when on */
    float *qk_rstd;                   /* (n,2NH) qk-norm's statistics, or NULL (inference) */
    float *att;                       /* GPT_ATTN_CAUSAL: attention_state_floats(B,NH,T) */
    float *atty;                      /* (n,C) */
    float *r2;                        /* (n,C) */
    float *ln2, *ln2_mean, *ln2_rstd; /* (n,C), (n), (n) */
    float *fch, *fchg;                /* (n,F) before and (n,H) after the activation (gpt.h) */
    float *r3;                        /* (n,C) */
    /* fused: LayerNorm(r3) with next_w, next_b into next (and mean, rstd) */
    float *next, *next_mean, *next_rstd;
    const float *next_w, *next_b;
    int ln1_ready;
} gpt_block_bufs_t;

/* What stays the same over the layers of one forward pass. */
typedef struct {
    gpt_model_t *m;
    int rows; /* n = B * T */
    gpt_attn_mode_t attn;
    int B, T;                   /* GPT_ATTN_CAUSAL */
    const gpt_block_seq_t *seq; /* GPT_ATTN_CACHED, GPT_ATTN_CACHED_AT (one) */
    int nseq;
    const int32_t *pos_dev; /* GPT_ATTN_CACHED_AT */
    gpt_mm_mode_t mm;
    void *const *q8;        /* GPT_MM_Q8 */
    gpt_prof_t *prof;       /* NULL, or per-op timing (gpt.h) into the forward phase */
    gpt_block_hook_fn hook; /* NULL, or called after each sublayer */
    void *hook_ctx;
} gpt_block_run_t;

/* Profiling (prof not NULL): synchronize, run the op, synchronize, add its
 * wall time to prof->seconds[phase][op]. Without prof: just the call. */
#define GPT_PROF(prof, ops, phase, op, call)                                                       \
    do {                                                                                           \
        if (prof) {                                                                                \
            (ops)->synchronize();                                                                  \
            double t0_ = mg_now();                                                                 \
            call;                                                                                  \
            (ops)->synchronize();                                                                  \
            (prof)->seconds[phase][op] += mg_now() - t0_;                                          \
        } else {                                                                                   \
            call;                                                                                  \
        }                                                                                          \
    } while (0)

/* Are the fused kernels used (fusion allowed and the backend has them, for
 * the model's norm: residual_layernorm_forward or residual_rmsnorm_forward)?
 * The caller needs fuse_ln to know whether ln1 and the final LayerNorm are
 * already done. */
int gpt_block_fuse_ln(const gpt_model_t *m);

/* The model's normalisation (LayerNorm, or RMSNorm: mean and b unused) of
 * x (n,C) into out; mean, rstd may be NULL (inference). */
void gpt_norm_forward(const gpt_model_t *m, float *out, float *mean, float *rstd, const float *x,
                      const float *w, const float *b, int n, int C);

/* Layer l of the model over r->rows rows; b says where everything goes. */
void gpt_block_forward(const gpt_block_run_t *r, int l, const gpt_block_bufs_t *b);

#endif
