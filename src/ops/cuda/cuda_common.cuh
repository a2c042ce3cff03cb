/* cuda_common.cuh - what the CUDA backend's files share: error checks, the
 * backend's global state (cuBLASLt handle, precision, workspace) and the
 * kernel entry points that cuda_backend.cu puts in the ops table.
 *
 * Every kernel runs on one stream (g_cuda.stream), in order; download
 * waits for it, so the model sees the same ordering as on the CPU. A CUDA failure inside a kernel is not recoverable (the context is
 * lost): it ends the program with a one-line message and exit code 1. */
#ifndef MG_CUDA_COMMON_CUH
#define MG_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "ops/ops.h"
}

void cuda_fatal(const char *what, const char *detail, const char *file, int line);
#define CUDA_CHECK(call)                                                                            \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) cuda_fatal(#call, cudaGetErrorString(e_), __FILE__, __LINE__);       \
    } while (0)
#define CUBLAS_CHECK(call)                                                                          \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                            \
            cuda_fatal(#call, cublasLtGetStatusString(s_), __FILE__, __LINE__);                     \
    } while (0)
/* after every launch: a bad configuration shows up here, not later */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

typedef struct {
    cudaStream_t stream; /* every kernel, copy and matmul runs on it, in order */
    cublasLtHandle_t lt;
    cublasComputeType_t compute; /* CUBLAS_COMPUTE_32F (fp32) or _32F_FAST_16BF (bf16) */
    void *workspace;             /* cuBLASLt scratch */
    size_t workspace_bytes;
    int sms;                     /* multiprocessors, for grid sizing */
    double *reduce;              /* one double of device scratch (sq_norm) */
} cuda_state_t;
extern cuda_state_t g_cuda;

static inline unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

typedef __nv_bfloat16 bf16;

/* device memory counted in the backend's figures (cuda_backend.cu); both
 * free the retired bf16 copies (cuda_shadow_release) before failing */
void *cuda_alloc(size_t bytes);
void cuda_free(void *p);
/* the backend's own scratch (cudaFree it): out of memory is fatal */
void *cuda_scratch_alloc(size_t bytes);

/* 1 when matmuls over this many rows take bf16 operands staged from the
 * float32 ones (bf16 precision; MINIGPT_CUDA_STAGE=0 turns it off) */
int cuda_staging(int rows);

/* bf16 copies of float32 buffers that matmuls read (cuda_shadow.cu).
 * make: forgets copies overlapping (p, n floats) and returns a buffer of n
 * bf16 for the caller's kernel to fill with p's new contents in the same
 * pass, or NULL (no copy: float32 precision, rows too few for staging, or
 * memory short). add: the same for another kind of copy of unchanged
 * contents (other kinds stay). find: the copy of exactly (p, n) of that
 * kind, or NULL. forget: every op calls it on what it writes (but make
 * does it for what it copies). */
enum { SHADOW_ROWS, SHADOW_HEADS }; /* as stored; q, k, v head-major (cuda_flash.cu) */
bf16 *cuda_shadow_make(const float *p, size_t n, int rows);
/* shape: what else the layout depends on (0 for SHADOW_ROWS) */
bf16 *cuda_shadow_add(const float *p, size_t n, int rows, int kind, uint64_t shape);
const bf16 *cuda_shadow_find(const float *p, size_t n, int kind, uint64_t shape);
void cuda_shadow_forget(const void *p, size_t bytes);
void cuda_shadow_forget_all(void);
/* frees the memory of the copies no longer valid; 0 if there was none */
int cuda_shadow_release(void);

/* GELU, tanh approximation (as the CPU backend) */
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
__device__ inline float cuda_gelu(float v) {
    return 0.5f * v * (1.0f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
}
__device__ inline float cuda_gelu_grad(float v) {
    float th = tanhf(GELU_K * (v + 0.044715f * v * v * v));
    return 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
}

/* kernels (same contracts as the ops_backend_t entries of the same name) */
void cuda_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                        int T, int C, int pos0);
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                         int T, int C);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                            const float *b, int N, int C);
void cuda_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                             const float *w, const float *mean, const float *rstd, int N, int C);
void cuda_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N,
                         int C, int OC);
void cuda_matmul_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                          const float *w, int N, int C, int OC);
size_t cuda_attention_state_floats(int B, int NH, int T);
void cuda_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                             const float *att, int B, int T, int C, int NH);
void cuda_attention_cached(float *out, float *kcache, float *vcache, const float *qkv, int n,
                           int pos0, int C, int NH);
/* tensor-core flash attention (cuda_flash.cu), head sizes 32, 64, 128 */
int cuda_flash_supported(int HS);
void cuda_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
void cuda_flash_backward(float *dqkv, const float *dout, const float *qkv, const float *lse,
                         const float *D, int B, int T, int C, int NH);
void cuda_embed_forward_at(float *out, const int32_t *tok, const float *wte, const float *wpe, int C,
                           const int32_t *pos_dev);
void cuda_attention_cached_at(float *out, float *kcache, float *vcache, const float *qkv, int C,
                              int NH, const int32_t *pos_dev);
void cuda_matmul_bias_gelu_forward(float *pre, float *out, const float *x, const float *w,
                                   const float *bias, int N, int C, int OC);
void cuda_argmax(int32_t *out, const float *x, int n);
void cuda_sample(int32_t *out, const float *x, int n, float temperature, int top_k, float top_p, float u);
void cuda_gelu_forward(float *out, const float *x, size_t n);
/* the same, writing out's bf16 copy too (out16 from cuda_shadow_make, or NULL) */
void cuda_gelu_forward_copy(float *out, bf16 *out16, const float *x, size_t n);
void cuda_gelu_backward(float *dx, const float *x, const float *dout, size_t n);
void cuda_add(float *out, const float *a, const float *b, size_t n);
void cuda_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                                const int32_t *targets, int N, int V, float dloss);
void cuda_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a,
                                     const float *b, const float *w, const float *bias, int N, int C);
void cuda_gelu_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout, int N,
                             int OC);
double cuda_sq_norm(const float *x, size_t n);
void cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float wd, float grad_scale, int t);

#endif
