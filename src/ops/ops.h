/* ops.h - the backend interface: every numeric kernel the model runs.
 *
 * The model code calls only these function pointers. Buffers (parameters,
 * gradients, activations, token ids) are allocated by the backend and live
 * where the backend wants them (host memory for the CPU backend, device
 * memory for a GPU backend): the model may offset such pointers but never
 * dereferences them; it moves data with upload/download.
 *
 * Conventions: row-major; N = B*T rows; C channels; OC output channels;
 * NH heads of size HS = C/NH. Backward kernels OVERWRITE activation
 * gradients (dx) unless noted, and ACCUMULATE (+=) into parameter
 * gradients, so several micro-batches can add up into one step. */
#ifndef MG_OPS_H
#define MG_OPS_H

#include <stddef.h>
#include <stdint.h>

/* one parameter tensor for adamw_clip: floats [offset, offset + numel) */
typedef struct ops_segment {
    size_t offset, numel;
    int decay;
} ops_segment_t;

typedef struct ops_backend {
    const char *name; /* "cpu", "cuda" */

    /* one line for logs: "NVIDIA H100 80GB HBM3 (79.1 GiB), bf16 matmuls" */
    const char *(*describe)(void);
    /* waits until queued work is done (for timing; a no-op on the CPU) */
    void (*synchronize)(void);
    /* bytes this backend has allocated now and at most, and what it can
     * hold (0: host memory, see util/sysinfo) */
    void (*memory)(size_t *in_use, size_t *peak, size_t *capacity);

    /* memory: alloc returns zeroed memory or NULL */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);

    /* out[b,t,:] = wte[tok[b,t],:] + wpe[pos0+t,:]      tok (B,T) -> out (B,T,C);
     * wpe NULL (rotary positions): out = wte[tok] only (the CPU backend;
     * other backends refuse rope before this is reached) */
    void (*embed_forward)(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                          int T, int C, int pos0);
    /* dwte[tok] += dout; dwpe[t] += sum_b dout          dout (B,T,C); dwpe may be NULL */
    void (*embed_backward)(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                           int T, int C);

    /* out = (x - mean) * rstd * w + b over the last dim  x (N,C) -> out (N,C);
     * mean, rstd (N) are saved for backward (may be NULL at inference) */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int N, int C);
    /* dx += ..., dw += ..., db += ...  (dx ACCUMULATES: it is the residual stream) */
    void (*layernorm_backward)(float *dx, float *dw, float *db, const float *dout, const float *x,
                               const float *w, const float *mean, const float *rstd, int N, int C);

    /* out = x @ w^T + bias     x (N,C), w (OC,C), bias (OC) or NULL -> out (N,OC) */
    void (*matmul_forward)(float *out, const float *x, const float *w, const float *bias, int N,
                           int C, int OC);
    /* dx = dout @ w (overwrite); dw += dout^T @ x; dbias += sum_n dout (if not NULL) */
    void (*matmul_backward)(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                            const float *w, int N, int C, int OC);

    /* causal self-attention   qkv (B,T,3C) -> out (B,T,C);
     * att keeps what backward needs, attention_state_floats(B,NH,T) floats:
     * the probabilities (B,NH,T,T) or, for a flash-style kernel that
     * recomputes them, one log-sum-exp per row (B,NH,T) */
    size_t (*attention_state_floats)(int B, int NH, int T);
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH);
    /* dqkv (B,T,3C) = gradient wrt qkv (overwrite)     dout (B,T,C);
     * out (B,T,C) is what attention_forward wrote (a flash-style backward
     * needs rowsum(dout * out)) */
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *out,
                               const float *att, int B, int T, int C, int NH);
    /* Inference with a KV cache (batch 1): the n new rows of qkv (n,3C) are
     * at positions pos0..pos0+n-1; their k and v are stored into kcache and
     * vcache (max_T, C), then each attends to positions 0..itself.
     * out (n,C). */
    void (*attention_cached)(float *out, float *kcache, float *vcache, const float *qkv, int n,
                             int pos0, int C, int NH);

    /* GELU, tanh approximation      x (n) -> out (n) */
    void (*gelu_forward)(float *out, const float *x, size_t n);
    /* dx = dout * gelu'(x) (overwrite; dx may alias dout) */
    void (*gelu_backward)(float *dx, const float *x, const float *dout, size_t n);

    /* out = a + b (out may alias a) */
    void (*add)(float *out, const float *a, const float *b, size_t n);

    /* Softmax cross-entropy over logits (N,V): losses (N) = -log p[target].
     * When dlogits is not NULL it gets (softmax - onehot(target)) * dloss;
     * dlogits may alias logits. */
    void (*xent_forward_backward)(float *losses, float *dlogits, const float *logits,
                                  const int32_t *targets, int N, int V, float dloss);

    /* sum of squares, accumulated in double (for global-norm clipping) */
    double (*sq_norm)(const float *x, size_t n);
    /* AdamW step t (1-based) on n parameters: g is scaled by grad_scale
     * first (clipping); weight decay wd is decoupled. */
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, float grad_scale, int t);

    /* ---- OPTIONAL fused kernels. NULL: the backend has none, and the
     * model runs the unfused sequence (it also does when m->no_fusion is
     * set). Each must give what that sequence gives, up to rounding. ---- */

    /* res = a + b (res may alias a or b), then out = layernorm(res) with
     * mean and rstd saved, as layernorm_forward: one pass per row instead
     * of add + layernorm_forward            a, b, res, out (N,C) */
    void (*residual_layernorm_forward)(float *res, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *w,
                                       const float *bias, int N, int C);
    /* layernorm_backward (same arguments and semantics: dx ACCUMULATES,
     * which is the residual add's backward) with dw and db taken in the
     * same pass over dout and x */
    void (*residual_layernorm_backward)(float *dx, float *dw, float *db, const float *dout,
                                        const float *x, const float *w, const float *mean,
                                        const float *rstd, int N, int C);
    /* pre = x @ w^T + bias and out = GELU(pre): the bias add and the GELU
     * in one pass after the matmul          x (N,C), w (OC,C) -> pre, out (N,OC) */
    void (*matmul_bias_gelu_forward)(float *pre, float *out, const float *x, const float *w,
                                     const float *bias, int N, int C, int OC);
    /* dpre = dout * gelu'(pre) (overwrite; may alias dout) and dbias +=
     * sum_n dpre in the same pass (then matmul_backward with dbias NULL) */
    void (*gelu_bias_backward)(float *dpre, float *dbias, const float *pre, const float *dout,
                               int N, int OC);
    /* Global-norm clipping and AdamW over all parameters in one call: the
     * norm of g, then every segment's update with g scaled by clip/norm
     * when clip > 0 and norm > clip. seg (host memory): nseg tensors,
     * decay selects wd or 0. Returns the norm before clipping. */
    float (*adamw_clip)(float *p, const float *g, float *m, float *v, const ops_segment_t *seg,
                        int nseg, float lr, float beta1, float beta2, float eps, float wd,
                        float clip, int t);

    /* ---- OPTIONAL batch-1 decoding as one replayed graph (a GPU pays a
     * launch per kernel otherwise; NULL: none). The _at variants are
     * embed_forward (B = T = 1) and attention_cached (n = 1) with the
     * position read from pos_dev (one int32 on the backend) when they run,
     * so that one recorded step serves every position. Between
     * graph_begin and graph_end calls are recorded, not run; graph_end
     * returns the graph (NULL if recording failed), graph_launch runs it. */
    void (*embed_forward_at)(float *out, const int32_t *tok, const float *wte, const float *wpe,
                             int C, const int32_t *pos_dev);
    void (*attention_cached_at)(float *out, float *kcache, float *vcache, const float *qkv, int C,
                                int NH, const int32_t *pos_dev);
    /* out (one int32 on the backend) = the index of the largest of x (n),
     * the first on ties, NaN never: greedy decoding without bringing the
     * logits back (NULL: the caller takes the argmax on the host) */
    void (*argmax)(int32_t *out, const float *x, int n);
    /* out (one int32 on the backend) = the token sample_token_u
     * (infer/sample.h) draws from the logits x (n) at this temperature
     * (> 0), top_k (0: off) and top_p (1: off) with the uniform number u,
     * up to float rounding; -1 when the cut keeps more candidates than the
     * backend can sort (the caller then draws on the host). NULL: none. */
    void (*sample)(int32_t *out, const float *x, int n, float temperature, int top_k, float top_p,
                   float u);
    void (*graph_begin)(void);
    void *(*graph_end)(void);
    void (*graph_launch)(void *graph);
    void (*graph_free)(void *graph);

    /* ---- OPTIONAL int8 weights for inference (llama.cpp's Q8_0): each
     * row of w is cut into blocks of 32, stored as int8 q and one float
     * scale s = max|w| / 127 per block, so w ~ s * q. q8_make quantizes w
     * (OC,C) into a backend object (NULL when C is not a multiple of 32,
     * or out of memory); q8_matmul_forward is matmul_forward with it,
     * accumulating in float32; q8_bytes is its size; q8_free releases it.
     * NULL: the backend has none. ---- */
    void *(*q8_make)(const float *w, int OC, int C);
    void (*q8_matmul_forward)(float *out, const float *x, const void *wq, const float *bias, int N,
                              int C, int OC);
    size_t (*q8_bytes)(const void *wq);
    void (*q8_free)(void *wq);

    /* ---- OPTIONAL batched decoding of independent sequences (infer/kv.h,
     * kv_feed_batch): pre (N,OC) = x (N,C) @ w^T + bias with each row
     * exactly as matmul_forward gives it for that row alone (N = 1), and
     * with out not NULL also out = GELU(pre) exactly as
     * matmul_bias_gelu_forward gives it for one row, the weights read once
     * for all N rows: a sequence's logits then do not depend on its
     * batch-mates. NULL: batches run matmul_forward (whose rows may then
     * differ from a lone row's in the last bits). ---- */
    void (*matmul_rows_forward)(float *pre, float *out, const float *x, const float *w,
                                const float *bias, int N, int C, int OC);

    /* ---- OPTIONAL architecture options (model/gpt.h: --norm rmsnorm, --pos
     * rope, --qk-norm). NULL: the backend has none, and gpt_create refuses
     * a model that needs them (gpt_backend_check), except the fused
     * residual_rmsnorm_forward, without which the model runs add +
     * rmsnorm_forward. ---- */
    /* RMSNorm: out = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + 1e-5)
     * over the last dim (no mean, no bias)   x (N,C) -> out (N,C); rstd (N)
     * saved for backward (may be NULL at inference) */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *w, int N, int C);
    /* dx += ... (ACCUMULATES: it is the residual stream), dw += ... */
    void (*rmsnorm_backward)(float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int N, int C);
    /* res = a + b (res may alias a or b), then out = rmsnorm(res), rstd saved */
    void (*residual_rmsnorm_forward)(float *res, float *out, float *rstd, const float *a,
                                     const float *b, const float *w, int N, int C);
    /* In place on the q and k thirds of qkv (n,3C), for each head of HS =
     * C/NH: with qk_norm, x = x / sqrt(mean(x^2) + 1e-5) (rstd (n,2NH):
     * q's heads then k's, may be NULL); then with rope the rotary position
     * embedding of row i's position p = pos0 + i % T: for j < HS/2 the pair
     * (x[j], x[j+HS/2]) turns by the angle p * 10000^(-2j/HS) (GPT-NeoX's
     * rotate-half layout). v is untouched. */
    void (*qk_forward)(float *qkv, float *rstd, int n, int T, int pos0, int C, int NH, int rope,
                       int qk_norm);
    /* its backward in place on the q and k thirds of dqkv (n,3C) (v's
     * gradient untouched): qkv is what qk_forward left, rstd what it saved */
    void (*qk_backward)(float *dqkv, const float *qkv, const float *rstd, int n, int T, int pos0,
                        int C, int NH, int rope, int qk_norm);
    /* ---- OPTIONAL MLP activations besides GELU (model/gpt.h, --mlp). act:
     *   OPS_MLP_RELU2:  out (N,OC) = max(pre, 0)^2
     *   OPS_MLP_SWIGLU: each row of pre (N,OC) is [gate | up], OC = 2H, and
     *                   out (N,H) = silu(gate) * up, silu(g) = g * sigmoid(g)
     * Each row of out is a function of its row of pre alone, the same for any
     * N and thread count (batched decoding gives a row what it gets alone).
     * NULL: a model with such an MLP is refused on this backend. ---- */
    void (*mlp_act_forward)(float *out, const float *pre, int N, int OC, int act);
    /* dpre (N,OC) = the gradient wrt pre of dout (out's shape) (overwrite;
     * may alias dout for relu2, never for SwiGLU, whose shapes differ) */
    void (*mlp_act_backward)(float *dpre, const float *pre, const float *dout, int N, int OC,
                             int act);
    /* Fused (each also optional; NULL, or m->no_fusion: the calls apart):
     * mlp_act_backward with dbias += sum_n dpre in the same pass (then
     * matmul_backward with dbias NULL) */
    void (*mlp_act_bias_backward)(float *dpre, float *dbias, const float *pre, const float *dout,
                                  int N, int OC, int act);
    /* pre = x @ w^T + bias and out = act(pre), the bias and the activation
     * in one pass after the product; for N = 1 exactly what
     * matmul_rows_forward and mlp_act_forward give   x (N,C), w (OC,C) */
    void (*matmul_bias_act_forward)(float *pre, float *out, const float *x, const float *w,
                                    const float *bias, int N, int C, int OC, int act);
    /* ---- OPTIONAL Muon (train --optimizer muon; NULL: the backend has
     * none, and such a run is refused at start). One step on a hidden
     * matrix p (rows,cols), cut into `blocks` equal row blocks of
     * (R,cols), R = rows/blocks, each orthogonalised on its own:
     *   buf = momentum * buf + grad_scale * g          (the momentum buffer)
     *   u   = grad_scale * g + momentum * buf          (Nesterov)
     *   O   = NS5(u_block / (||u_block||_F + 1e-7))     per block
     *   p   = p - lr * wd * p - lr * sqrt(max(1, R/cols)) * O
     * NS5 is the quintic Newton-Schulz iteration, 5 steps of
     * X = a X + (b A + c A A) X with A = X X^T (X^T X, and X B on the right,
     * when R > cols), (a,b,c) = (3.4445, -4.7750, 2.0315): it pushes the
     * singular values of the block into about [0.68, 1.13] and keeps its
     * singular vectors. scratch (on the backend): muon_scratch_floats(rows,
     * cols, blocks) floats, its contents undefined after. ---- */
    size_t (*muon_scratch_floats)(int rows, int cols, int blocks);
    void (*muon_update)(float *p, const float *g, float *buf, int rows, int cols, int blocks,
                        float lr, float momentum, float wd, float grad_scale, float *scratch);
} ops_backend_t;

/* the act argument of the MLP slots (the values of gpt.h's GPT_MLP_*) */
enum { OPS_MLP_RELU2 = 1, OPS_MLP_SWIGLU = 2 };

/* The layout version of ops_backend_t: the CUDA plugin, built separately,
 * exports the version it was built with (mg_cuda_abi) and src/ops/backend.c
 * refuses a plugin of another one. Bump it with every change to the table
 * (a field added, removed, moved or retyped). */
#define OPS_ABI_VERSION 3

/* Backend selection for --device. device: "auto" (the GPU when one is
 * usable, else the CPU), "cpu" or "cuda"; precision (NULL: the device's
 * default): "fp32" for exact float32 everywhere, "bf16" for bfloat16
 * tensor-core matrix inputs with float32 accumulation, master weights and
 * optimizer state (GPU only). threads: CPU threads (<= 0: all cores), also
 * used for the host work of a GPU run (the one place that sets them). note
 * (may be NULL, MG_ERR_LEN) gets a line when auto fell back to the CPU, and
 * why. NULL with err when the
 * device asked for is not usable. */
const ops_backend_t *ops_select(const char *device, const char *precision, int threads, char *note,
                                char *err);
/* Is a GPU backend usable here (without printing anything)? */
int ops_cuda_available(void);

#endif
