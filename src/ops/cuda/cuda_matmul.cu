/* cuda_matmul.cu - the linear layers through cuBLASLt: forward with the
 * bias fused into the matmul's epilogue, backward as two matmuls (dx, dw)
 * and a column-sum kernel for the bias gradient.
 *
 * Storage is float32 row-major. cuBLASLt is column-major, so a row-major
 * (R,K) matrix is a column-major (K,R) one and every product below is
 * written transposed: out^T = w . x^T and so on. fp32 computes exactly in
 * float32. With --precision bf16 the inputs are rounded to bfloat16 for the
 * tensor cores and the products accumulate in float32: large products run
 * a native bf16 x bf16 -> fp32 matmul on bf16 copies of their operands (the
 * copy an activation's producer made, cuda_shadow.cu, else one staged here
 * in a memory-bound pass); products of fewer than STAGE_MIN_ROWS rows use
 * CUBLAS_COMPUTE_32F_FAST_16BF on the fp32 operands, which converts inside
 * the matmul but runs at a fraction of the rate. One row (decoding) runs
 * the float32 GEMV at the end of this file in both precisions. */
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

enum { EPI_NONE, EPI_BIAS }; /* the epilogue */

/* One cached plan per distinct (shape, transposes, epilogue, precision):
 * descriptors and the heuristic's algorithm are made once, not per call. */
typedef struct {
    int m, n, k, ta, tb, epi, accumulate, bf16_in; /* epi: EPI_* */
    unsigned align_a, align_b, align_d; /* bytes: the heuristic must know */
    cublasComputeType_t compute;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int has_algo;
} plan_t;
#define MAX_PLANS 64
static plan_t plans[MAX_PLANS];
static int n_plans;

/* the largest power of two up to 256 that divides the address */
static unsigned alignment(const void *ptr) {
    uintptr_t a = (uintptr_t)ptr | 256;
    return (unsigned)(a & -a);
}

static plan_t *get_plan(int m, int n, int k, int ta, int tb, int epi, int accumulate, int bf16_in,
                        unsigned align_a, unsigned align_b, unsigned align_d) {
    cublasComputeType_t compute = bf16_in ? CUBLAS_COMPUTE_32F : g_cuda.compute;
    for (int i = 0; i < n_plans; i++) {
        plan_t *p = &plans[i];
        if (p->m == m && p->n == n && p->k == k && p->ta == ta && p->tb == tb && p->epi == epi &&
            p->accumulate == accumulate && p->bf16_in == bf16_in && p->compute == compute &&
            p->align_a == align_a && p->align_b == align_b && p->align_d == align_d)
            return p;
    }
    plan_t *p = &plans[n_plans < MAX_PLANS ? n_plans++ : MAX_PLANS - 1];
    if (p->desc) { /* table full: recycle the last slot */
        cublasLtMatmulDescDestroy(p->desc);
        cublasLtMatrixLayoutDestroy(p->la);
        cublasLtMatrixLayoutDestroy(p->lb);
        cublasLtMatrixLayoutDestroy(p->lc);
    }
    memset(p, 0, sizeof *p);
    p->m = m, p->n = n, p->k = k, p->ta = ta, p->tb = tb, p->epi = epi;
    p->accumulate = accumulate;
    p->bf16_in = bf16_in;
    p->compute = compute;
    p->align_a = align_a, p->align_b = align_b, p->align_d = align_d;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (epi == EPI_BIAS) {
        cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    }
    /* stored shapes: A is (m,k) or (k,m) if transposed, column-major */
    cudaDataType_t in = bf16_in ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, in, ta ? k : m, ta ? m : k, ta ? k : m));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, in, tb ? n : k, tb ? k : n, tb ? n : k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, m, n, m));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &g_cuda.workspace_bytes, sizeof g_cuda.workspace_bytes));
    const struct {
        cublasLtMatmulPreferenceAttributes_t attr;
        uint32_t bytes;
    } aligns[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d},
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d}};
    for (int i = 0; i < 4; i++)
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, aligns[i].attr, &aligns[i].bytes,
                                                          sizeof aligns[i].bytes));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(g_cuda.lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res,
                                       &found) == CUBLAS_STATUS_SUCCESS &&
        found > 0) {
        p->algo = res.algo;
        p->has_algo = 1;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    return p;
}

/* column-major D (m,n) = op(A) op(B) [+ D if accumulate] [+ bias per row];
 * A and B are float32, or bf16 when bf16_in */
static void lt_matmul(float *D, const void *A, const void *B, const float *bias, int m, int n, int k,
                      int ta, int tb, int accumulate, int bf16_in) {
    plan_t *p = get_plan(m, n, k, ta, tb, bias ? EPI_BIAS : EPI_NONE, accumulate, bf16_in, alignment(A),
                         alignment(B), alignment(D));
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
    float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(g_cuda.lt, p->desc, &one, A, p->la, B, p->lb, &beta, D, p->lc, D,
                                p->lc, p->has_algo ? &p->algo : NULL, g_cuda.workspace,
                                g_cuda.workspace_bytes, g_cuda.stream));
}

/* ---- bf16 staging of operands ---- */
#define STAGE_MIN_ROWS 128
__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i + 3 < n) {
        float4 x = *reinterpret_cast<const float4 *>(src + i);
        reinterpret_cast<__nv_bfloat162 *>(dst + i)[0] = __floats2bfloat162_rn(x.x, x.y);
        reinterpret_cast<__nv_bfloat162 *>(dst + i)[1] = __floats2bfloat162_rn(x.z, x.w);
    } else {
        for (; i < n; i++) dst[i] = __float2bfloat16(src[i]);
    }
}
/* bf16 copy of n floats in staging slot 0 or 1 (grown on demand, kept) */
static const void *to_bf16(const float *src, size_t n, int slot) {
    static __nv_bfloat16 *buf[2];
    static size_t cap[2];
    if (n > cap[slot]) {
        CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream));
        if (buf[slot]) CUDA_CHECK(cudaFree(buf[slot]));
        buf[slot] = (__nv_bfloat16 *)cuda_scratch_alloc(n * sizeof(__nv_bfloat16));
        cap[slot] = n;
    }
    to_bf16_kernel<<<cdiv(cdiv(n, 4), 256), 256, 0, g_cuda.stream>>>(buf[slot], src, n);
    LAUNCH_CHECK();
    return buf[slot];
}
/* stage when bf16 and large enough to pay (MINIGPT_CUDA_STAGE=0 turns it
 * off, to measure the other path); float4 reads need 16-byte alignment */
int cuda_staging(int rows) {
    static int mode = -1;
    if (mode < 0) mode = !getenv("MINIGPT_CUDA_STAGE") || atoi(getenv("MINIGPT_CUDA_STAGE")) != 0;
    return mode && g_cuda.compute != CUBLAS_COMPUTE_32F && rows >= STAGE_MIN_ROWS;
}
static int staged(int rows, const void *a, const void *b) {
    return cuda_staging(rows) && alignment(a) >= 16 && alignment(b) >= 16;
}
/* x's bf16 copy, from its shadow when its producer made one */
static const void *bf16_of(const float *x, size_t n, int slot) {
    const bf16 *s = cuda_shadow_find(x, n, SHADOW_ROWS, 0);
    return s ? (const void *)s : to_bf16(x, n, slot);
}

/* One row (decoding): out (OC) = w (OC,C) . x (C) + bias, in float32,
 * bound by reading w once at memory speed (the general matmul kernels are
 * built for many rows). SPLIT warps share an output row (long rows: more
 * loads in flight over more multiprocessors), a lane has four 16-byte
 * loads in flight. GELU: pre gets the sum, out its GELU. */
#define GEMV_WARPS 4 /* per block: small blocks spread a layer over every SM */
template <bool GELU, int SPLIT>
__global__ __launch_bounds__(32 * GEMV_WARPS) void gemv_kernel(float *out, float *pre, const float *x,
                                                               const float *w, const float *bias, int C,
                                                               int OC) {
    __shared__ float part[GEMV_WARPS];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, sub = warp % SPLIT;
    int row = blockIdx.x * (GEMV_WARPS / SPLIT) + warp / SPLIT;
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (row < OC) {
        const float4 *wr = reinterpret_cast<const float4 *>(w + (size_t)row * C);
        const float4 *xr = reinterpret_cast<const float4 *>(x);
        const int step = 32 * SPLIT;
        int i = sub * 32 + lane, n4 = C / 4;
        for (; i + 3 * step < n4; i += 4 * step) {
            float4 a[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = wr[i + u * step];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                float4 b = xr[i + u * step];
                s[u] += a[u].x * b.x + a[u].y * b.y + a[u].z * b.z + a[u].w * b.w;
            }
        }
        for (; i < n4; i += step) {
            float4 a = wr[i], b = xr[i];
            s[0] += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
        }
    }
    float v = (s[0] + s[1]) + (s[2] + s[3]);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (SPLIT > 1) {
        if (lane == 0) part[warp] = v;
        __syncthreads();
        if (lane == 0 && sub == 0)
            for (int k = 1; k < SPLIT; k++) v += part[warp + k];
    }
    if (lane != 0 || sub != 0 || row >= OC) return;
    v += bias ? bias[row] : 0.0f;
    if (GELU) {
        pre[row] = v;
        out[row] = cuda_gelu(v);
    } else
        out[row] = v;
}
static int gemv_ok(int N, int C, const void *x, const void *w) {
    return N == 1 && C % 4 == 0 && alignment(x) >= 16 && alignment(w) >= 16;
}
template <bool GELU>
static void gemv(float *out, float *pre, const float *x, const float *w, const float *bias, int C, int OC) {
    if (C >= 2048)
        gemv_kernel<GELU, GEMV_WARPS><<<OC, 32 * GEMV_WARPS, 0, g_cuda.stream>>>(out, pre, x, w, bias, C, OC);
    else
        gemv_kernel<GELU, 1><<<cdiv(OC, GEMV_WARPS), 32 * GEMV_WARPS, 0, g_cuda.stream>>>(out, pre, x, w, bias, C, OC);
    LAUNCH_CHECK();
}

/* out (N,OC) = x (N,C) @ w (OC,C)^T + bias
 * column-major: out^T (OC,N) = w^T... w is stored (C,OC) col-major, so op T */
void cuda_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N,
                         int C, int OC) {
    cuda_shadow_forget(out, (size_t)N * OC * sizeof(float));
    if (gemv_ok(N, C, x, w))
        gemv<false>(out, NULL, x, w, bias, C, OC);
    else if (staged(N, x, w))
        lt_matmul(out, to_bf16(w, (size_t)OC * C, 0), bf16_of(x, (size_t)N * C, 1), bias, OC, N, C, 1,
                  0, 0, 1);
    else
        lt_matmul(out, w, x, bias, OC, N, C, 1, 0, 0, 0);
}

/* pre = x @ w^T + bias, out = GELU(pre): one row (decoding) in the GEMV;
 * many rows run the matmul, then the GELU pass, which also writes out's
 * bf16 copy for the next matmul. (cuBLASLt's GELU_AUX_BIAS epilogue, which
 * writes both from the matmul, measured slower: 9.1 against 8.4 ms per
 * GPT-2 step for these 12 products.) */
void cuda_matmul_bias_gelu_forward(float *pre, float *out, const float *x, const float *w,
                                   const float *bias, int N, int C, int OC) {
    cuda_shadow_forget(out, (size_t)N * OC * sizeof(float));
    if (gemv_ok(N, C, x, w)) {
        cuda_shadow_forget(pre, (size_t)N * OC * sizeof(float));
        gemv<true>(out, pre, x, w, bias, C, OC);
        return;
    }
    cuda_matmul_forward(pre, x, w, bias, N, C, OC);
    cuda_gelu_forward_copy(out, cuda_shadow_make(out, (size_t)N * OC, N), pre, (size_t)N * OC);
}

/* dbias[oc] += sum_n dout[n,oc]: each block sums a 32-column strip over a
 * slice of rows in shared memory, then one atomic per column. */
__global__ void bias_grad_kernel(float *dbias, const float *dout, int N, int OC, int rows_per_block) {
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block, r1 = min(N, r0 + rows_per_block);
    float s = 0.0f;
    if (col < OC)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) s += dout[(size_t)r * OC + col];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < OC) {
        for (int i = 1; i < 8; i++) s += part[i][threadIdx.x];
        atomicAdd(&dbias[col], s);
    }
}

void cuda_matmul_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                          const float *w, int N, int C, int OC) {
    cuda_shadow_forget(dx, (size_t)N * C * sizeof(float));
    cuda_shadow_forget(dw, (size_t)OC * C * sizeof(float));
    if (dbias) cuda_shadow_forget(dbias, (size_t)OC * sizeof(float));
    if (staged(N, dout, w) && alignment(x) >= 16) { /* dout staged once for both */
        const void *gb = bf16_of(dout, (size_t)N * OC, 0);
        lt_matmul(dx, to_bf16(w, (size_t)OC * C, 1), gb, NULL, C, N, OC, 0, 0, 0, 1);
        lt_matmul(dw, bf16_of(x, (size_t)N * C, 1), gb, NULL, C, OC, N, 0, 1, 1, 1);
    } else {
        /* dx (N,C) = dout (N,OC) @ w (OC,C): col-major dx^T (C,N) = w (C,OC) . dout^T (OC,N) */
        lt_matmul(dx, w, dout, NULL, C, N, OC, 0, 0, 0, 0);
        /* dw (OC,C) += dout^T @ x: col-major dw^T (C,OC) = x^T (C,N) . dout (N,OC) */
        lt_matmul(dw, x, dout, NULL, C, OC, N, 0, 1, 1, 0);
    }
    if (dbias) {
        int rows = 256;
        dim3 grid(cdiv(OC, 32), cdiv(N, rows));
        bias_grad_kernel<<<grid, dim3(32, 8), 0, g_cuda.stream>>>(dbias, dout, N, OC, rows);
        LAUNCH_CHECK();
    }
}
