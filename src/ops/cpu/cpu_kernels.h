/* cpu_kernels.h - the CPU backend's kernels (private to src/ops/cpu/).
 * Shapes and semantics are documented once, in src/ops/ops.h. */
#ifndef MG_CPU_KERNELS_H
#define MG_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

void cpu_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                       int T, int C, int pos0);
void cpu_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                        int T, int C);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int N, int C);
void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                            const float *w, const float *mean, const float *rstd, int N, int C);
void cpu_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N, int C,
                        int OC);
void cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                         const float *w, int N, int C, int OC);
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *att, int B, int T, int C, int NH);
/* the attention kernels (cpu_attention.c): "full" keeps the (T,T)
 * probabilities, "flash" one log-sum-exp per row; cpu_attention_forward and
 * _backward pick one by T (or MINIGPT_ATTENTION=flash|full, or
 * cpu_attention_set_kernel) and cpu_attention_state_floats sizes the state
 * for that choice */
enum { CPU_ATTN_AUTO = 0, CPU_ATTN_FULL = 1, CPU_ATTN_FLASH = 2 };
#define CPU_FLASH_BLOCK 64  /* query and key tile of the flash kernel */
#define CPU_FLASH_MIN_T 128 /* auto: flash from this T up (see cpu_attention.c) */
void cpu_attention_set_kernel(int kernel);
size_t cpu_attention_state_floats(int B, int NH, int T);
void cpu_attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                int NH);
void cpu_attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                                 int B, int T, int C, int NH);
void cpu_attention_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C,
                                 int NH);
void cpu_attention_flash_backward(float *dqkv, const float *dout, const float *qkv,
                                  const float *out, const float *lse, int B, int T, int C, int NH);
void cpu_attention_cached(float *out, float *kcache, float *vcache, const float *qkv, int n,
                          int pos0, int C, int NH);
/* int8 weights (cpu_q8.c; see ops.h) */
void *cpu_q8_make(const float *w, int OC, int C);
void cpu_q8_matmul_forward(float *out, const float *x, const void *wq, const float *bias, int N,
                           int C, int OC);
size_t cpu_q8_bytes(const void *wq);
void cpu_q8_free(void *wq);
void cpu_gelu_forward(float *out, const float *x, size_t n);
void cpu_gelu_backward(float *dx, const float *x, const float *dout, size_t n);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                               const int32_t *targets, int N, int V, float dloss);
double cpu_sq_norm(const float *x, size_t n);
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float grad_scale, int t);

/* fused kernels (optional entries of ops_backend_t) */
void cpu_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                    const float *a, const float *b, const float *w,
                                    const float *bias, int N, int C);
void cpu_residual_layernorm_backward(float *dx, float *dw, float *db, const float *dout,
                                     const float *x, const float *w, const float *mean,
                                     const float *rstd, int N, int C);
void cpu_matmul_bias_gelu_forward(float *pre, float *out, const float *x, const float *w,
                                  const float *bias, int N, int C, int OC);
void cpu_gelu_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout, int N,
                            int OC);
float cpu_adamw_clip(float *p, const float *g, float *m, float *v, const ops_segment_t *seg,
                     int nseg, float lr, float beta1, float beta2, float eps, float wd, float clip,
                     int t);
/* the architecture options (cpu_rmsnorm.c, cpu_rope.c) */
void cpu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C);
void cpu_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int C);
void cpu_residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                  const float *b, const float *w, int N, int C);
void cpu_qk_forward(float *qkv, float *rstd, int n, int T, int pos0, int C, int NH, int rope,
                    int qk_norm);
void cpu_qk_backward(float *dqkv, const float *qkv, const float *rstd, int n, int T, int pos0,
                     int C, int NH, int rope, int qk_norm);
/* Muon (cpu_muon.c; see ops.h): the update of one hidden matrix, and its
 * Newton-Schulz part alone (for the unit test and bench): x (R,C) <-
 * NS5(x / (||x||_F + 1e-7)) in place, work cpu_muon_ns_work_floats(R, C) floats */
size_t cpu_muon_scratch_floats(int rows, int cols, int blocks);
void cpu_muon_update(float *p, const float *g, float *buf, int rows, int cols, int blocks, float lr,
                     float momentum, float wd, float grad_scale, float *scratch);
size_t cpu_muon_ns_work_floats(int R, int C);
void cpu_muon_orthogonalize(float *x, int R, int C, float *work);
/* the passes after and before the sgemm, apart (for bench/bench_kernels.c):
 * out += bias per row; dbias += column sums of dout; pre += bias, out =
 * GELU(pre) in one pass */
void cpu_bias_add(float *out, const float *bias, int N, int OC);
void cpu_bias_backward(float *dbias, const float *dout, int N, int OC);
void cpu_bias_gelu(float *pre, float *out, const float *bias, int N, int OC);
/* ops.h matmul_rows_forward: each row as cpu_matvec (and the fused GELU) gives it */
void cpu_matmul_rows_forward(float *pre, float *out, const float *x, const float *w,
                             const float *bias, int N, int C, int OC);
/* the MLP activations besides GELU (cpu_mlp.c; ops.h, act OPS_MLP_*) */
void cpu_mlp_act_forward(float *out, const float *pre, int N, int OC, int act);
void cpu_mlp_act_backward(float *dpre, const float *pre, const float *dout, int N, int OC, int act);
/* the act of the MLP kernels for GELU (ops.h's OPS_MLP_* are the others):
 * cpu_gelu_bias_backward is cpu_mlp_act_bias_backward with it */
enum { CPU_ACT_GELU = 0 };
void cpu_mlp_act_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout,
                               int N, int OC, int act);
void cpu_matmul_bias_act_forward(float *pre, float *out, const float *x, const float *w,
                                 const float *bias, int N, int C, int OC, int act);
/* out (OC) = w (OC,C) @ x (C) + bias (may be NULL): matmul_forward at N = 1 */
void cpu_matvec(float *out, const float *x, const float *w, const float *bias, int C, int OC);

/* A scratch buffer reused across calls (grown when needed), so that no
 * kernel allocates inside a training step once the first step has run.
 * Returns NULL only if the allocation fails. */
float *cpu_scratch(size_t nfloats);

#endif
