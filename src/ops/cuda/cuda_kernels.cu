/* cuda_kernels.cu - the CUDA backend's memory-bound kernels: embedding,
 * LayerNorm, GELU, residual add, softmax cross-entropy, the squared norm
 * for clipping and AdamW. One thread per element for the pointwise ones,
 * one warp per row for the row-wise ones. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

extern "C" {
#include "util/common.h"
}

#define WARP 32

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- embedding: out[b,t,:] = wte[tok[b,t],:] + wpe[pos0+t,:] ---- */
__global__ void embed_fwd_kernel(float *out, const int32_t *tok, const float *wte, const float *wpe,
                                 int T, int C, int pos0, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t n = i / C;
    int c = (int)(i % C), t = (int)(n % T);
    out[i] = wte[(size_t)tok[n] * C + c] + wpe[(size_t)(pos0 + t) * C + c];
}
void cuda_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                        int T, int C, int pos0) {
    size_t total = (size_t)B * T * C;
    embed_fwd_kernel<<<cdiv(total, 256), 256, 0, g_cuda.stream>>>(out, tok, wte, wpe, T, C, pos0, total);
    LAUNCH_CHECK();
}

/* one token at the position held in *pos_dev (a recorded decoding step) */
__global__ void embed_at_kernel(float *out, const int32_t *tok, const float *wte, const float *wpe,
                                int C, const int32_t *pos_dev) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < C) out[c] = wte[(size_t)tok[0] * C + c] + wpe[(size_t)*pos_dev * C + c];
}
void cuda_embed_forward_at(float *out, const int32_t *tok, const float *wte, const float *wpe, int C,
                           const int32_t *pos_dev) {
    embed_at_kernel<<<cdiv(C, 256), 256, 0, g_cuda.stream>>>(out, tok, wte, wpe, C, pos_dev);
    LAUNCH_CHECK();
}

/* dwte rows are shared between positions with the same token: atomics */
__global__ void embed_bwd_wte_kernel(float *dwte, const float *dout, const int32_t *tok, int C,
                                     size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    atomicAdd(&dwte[(size_t)tok[i / C] * C + i % C], dout[i]);
}
/* dwpe[t,c] += sum_b dout[b,t,c]: one thread per (t,c), no atomics */
__global__ void embed_bwd_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    float s = 0.0f;
    for (int b = 0; b < B; b++) s += dout[(size_t)b * T * C + i];
    dwpe[i] += s;
}
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                         int T, int C) {
    size_t total = (size_t)B * T * C;
    embed_bwd_wte_kernel<<<cdiv(total, 256), 256, 0, g_cuda.stream>>>(dwte, dout, tok, C, total);
    LAUNCH_CHECK();
    embed_bwd_wpe_kernel<<<cdiv((size_t)T * C, 256), 256, 0, g_cuda.stream>>>(dwpe, dout, B, T, C);
    LAUNCH_CHECK();
}

#define LN_MAXV 32 /* row kernels keep C <= 32 * LN_MAXV values per lane in registers */

/* ---- LayerNorm: one warp per row (N,C) ---- */
__global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *x,
                                     const float *w, const float *b, int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= N) return;
    const float *xr = x + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += WARP) s += xr[c];
    float mu = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += WARP) {
        float d = xr[c] - mu;
        v += d * d;
    }
    float rs = rsqrtf(warp_sum(v) / C + 1e-5f);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += WARP) o[c] = (xr[c] - mu) * rs * w[c] + b[c];
    if (lane == 0 && mean) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                            const float *b, int N, int C) {
    layernorm_fwd_kernel<<<cdiv(N, 8), 8 * WARP, 0, g_cuda.stream>>>(out, mean, rstd, x, w, b, N, C);
    LAUNCH_CHECK();
}

/* dx += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), with
 * dnorm = dout * w; dw, db summed over rows in shared memory per block,
 * then added with one atomic per channel per block. */
__global__ void layernorm_bwd_kernel(float *dx, float *dw, float *db, const float *dout,
                                     const float *x, const float *w, const float *mean,
                                     const float *rstd, int N, int C) {
    extern __shared__ float sh[]; /* dw[C], db[C] */
    float *sdw = sh, *sdb = sh + C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sdw[c] = sdb[c] = 0.0f;
    __syncthreads();
    int warps = blockDim.x / WARP, lane = threadIdx.x % WARP;
    for (int row = blockIdx.x * warps + threadIdx.x / WARP; row < N; row += gridDim.x * warps) {
        const float *xr = x + (size_t)row * C, *dr = dout + (size_t)row * C;
        float mu = mean[row], rs = rstd[row], s1 = 0.0f, s2 = 0.0f;
        for (int c = lane; c < C; c += WARP) {
            float dn = dr[c] * w[c];
            s1 += dn;
            s2 += dn * (xr[c] - mu) * rs;
        }
        s1 = warp_sum(s1) / C;
        s2 = warp_sum(s2) / C;
        float *dxr = dx + (size_t)row * C;
        for (int c = lane; c < C; c += WARP) {
            float norm = (xr[c] - mu) * rs;
            atomicAdd(&sdw[c], dr[c] * norm);
            atomicAdd(&sdb[c], dr[c]);
            dxr[c] += rs * (dr[c] * w[c] - s1 - norm * s2);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        atomicAdd(&dw[c], sdw[c]);
        atomicAdd(&db[c], sdb[c]);
    }
}
void cuda_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                             const float *w, const float *mean, const float *rstd, int N, int C) {
    unsigned blocks = MG_MIN((unsigned)g_cuda.sms * 2, cdiv(N, 16));
    size_t shared = 2 * (size_t)C * sizeof(float);
    static size_t raised;
    if (shared > 48 * 1024 && shared > raised) {
        CUDA_CHECK(cudaFuncSetAttribute(layernorm_bwd_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared));
        raised = shared;
    }
    layernorm_bwd_kernel<<<blocks, 16 * WARP, shared, g_cuda.stream>>>(dx, dw, db, dout, x, w, mean, rstd, N, C);
    LAUNCH_CHECK();
}

/* ---- GELU (tanh approximation), as the CPU backend ---- */
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
__global__ void gelu_fwd_kernel(float *out, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
}
__global__ void gelu_bwd_kernel(float *dx, const float *x, const float *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i], u = GELU_K * (v + 0.044715f * v * v * v), th = tanhf(u);
    float sech2 = 1.0f - th * th;
    float g = 0.5f * (1.0f + th) + 0.5f * v * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
    dx[i] = dout[i] * g;
}
void cuda_gelu_forward(float *out, const float *x, size_t n) {
    gelu_fwd_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(out, x, n);
    LAUNCH_CHECK();
}
void cuda_gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
    gelu_bwd_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(dx, x, dout, n);
    LAUNCH_CHECK();
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}
void cuda_add(float *out, const float *a, const float *b, size_t n) {
    add_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(out, a, b, n);
    LAUNCH_CHECK();
}

/* ---- softmax cross-entropy: one block per row, the row read three times
 * (max, sum, write), from L2 after the first ---- */
__device__ float block_reduce(float v, int is_max) {
    __shared__ float sh[32];
    v = is_max ? warp_max(v) : warp_sum(v);
    int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    __syncthreads(); /* sh may still be read by the previous call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? warp_max(v) : warp_sum(v);
}
__global__ void xent_kernel(float *losses, float *dlogits, const float *logits,
                            const int32_t *targets, int V, float dloss) {
    size_t row = blockIdx.x;
    const float *x = logits + row * V;
    /* one read for the maximum and the sum (online: the sum is rescaled
     * when the maximum grows), one more to write the gradient */
    float m = -INFINITY, s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = x[i];
        if (v > m) {
            s = s * __expf(m - v) + 1.0f;
            m = v;
        } else {
            s += __expf(v - m);
        }
    }
    float mx = block_reduce(m, 1);
    s = block_reduce(m == -INFINITY ? 0.0f : s * __expf(m - mx), 0);
    int tgt = targets[row];
    float target_logit = x[tgt]; /* read before dlogits (which may alias) is written */
    __syncthreads();
    if (threadIdx.x == 0) losses[row] = logf(s) + mx - target_logit;
    if (dlogits) {
        float *d = dlogits + row * V, inv = 1.0f / s;
        for (int i = threadIdx.x; i < V; i += blockDim.x)
            d[i] = (__expf(x[i] - mx) * inv - (i == tgt ? 1.0f : 0.0f)) * dloss;
    }
}
void cuda_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                                const int32_t *targets, int N, int V, float dloss) {
    xent_kernel<<<N, 512, 0, g_cuda.stream>>>(losses, dlogits, logits, targets, V, dloss);
    LAUNCH_CHECK();
}

/* ---- sum of squares in double: per-block partials, one atomic each ---- */
__global__ void sq_norm_kernel(double *out, const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    __shared__ double sh[32];
    int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP;
    if (lane == 0) sh[wid] = s;
    __syncthreads();
    if (wid == 0) {
        s = lane < (int)(blockDim.x / WARP) ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) atomicAdd(out, s);
    }
}
double cuda_sq_norm(const float *x, size_t n) {
    CUDA_CHECK(cudaMemsetAsync(g_cuda.reduce, 0, sizeof(double), g_cuda.stream));
    unsigned blocks = cdiv(n, 512);
    if (blocks > (unsigned)g_cuda.sms * 4) blocks = g_cuda.sms * 4;
    sq_norm_kernel<<<blocks ? blocks : 1, 512, 0, g_cuda.stream>>>(g_cuda.reduce, x, n);
    LAUNCH_CHECK();
    double h = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&h, g_cuda.reduce, sizeof h, cudaMemcpyDeviceToHost, g_cuda.stream));
    CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream));
    return h;
}

/* ---- AdamW, decoupled weight decay, gradient pre-scaled (clipping) ---- */
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr,
                             float b1, float b2, float eps, float wd, float scale, float bc1,
                             float bc2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i] * scale;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
}
void cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float wd, float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    adamw_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, bc1,
                                        bc2);
    LAUNCH_CHECK();
}

/* ---- fused: res = a + b, then out = layernorm(res), one warp per row,
 * the row kept in registers between the two (C <= 32 * LN_MAXV) ---- */
__global__ void residual_layernorm_kernel(float *res, float *out, float *mean, float *rstd,
                                          const float *a, const float *b, const float *w,
                                          const float *bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    float v[LN_MAXV], s = 0.0f;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        int c = lane + k * WARP;
        v[k] = c < C ? a[off + c] + b[off + c] : 0.0f;
        if (c < C) res[off + c] = v[k];
        s += v[k];
    }
    float mu = warp_sum(s) / C, var = 0.0f;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++)
        if (lane + k * WARP < C) var += (v[k] - mu) * (v[k] - mu);
    float rs = rsqrtf(warp_sum(var) / C + 1e-5f);
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        int c = lane + k * WARP;
        if (c < C) out[off + c] = (v[k] - mu) * rs * w[c] + bias[c];
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}
void cuda_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a,
                                     const float *b, const float *w, const float *bias, int N, int C) {
    if (C > WARP * LN_MAXV) { /* too wide for registers: the two-pass path */
        cuda_add(res, a, b, (size_t)N * C);
        cuda_layernorm_forward(out, mean, rstd, res, w, bias, N, C);
        return;
    }
    residual_layernorm_kernel<<<cdiv(N, 8), 8 * WARP, 0, g_cuda.stream>>>(res, out, mean, rstd, a, b, w, bias, N, C);
    LAUNCH_CHECK();
}

/* ---- fused: dpre = dout * gelu'(pre) and dbias += column sums of dpre,
 * 32 columns x a slice of rows per block ---- */
__global__ void gelu_bias_backward_kernel(float *dpre, float *dbias, const float *pre,
                                          const float *dout, int N, int OC, int rows_per_block) {
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block, r1 = min(N, r0 + rows_per_block);
    float s = 0.0f;
    if (col < OC)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            size_t i = (size_t)r * OC + col;
            float v = pre[i], u = GELU_K * (v + 0.044715f * v * v * v), th = tanhf(u);
            float g = 0.5f * (1.0f + th) +
                      0.5f * v * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
            float d = dout[i] * g;
            dpre[i] = d;
            s += d;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < OC) {
        for (int i = 1; i < 8; i++) s += part[i][threadIdx.x];
        atomicAdd(&dbias[col], s);
    }
}
void cuda_gelu_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout, int N,
                             int OC) {
    int rows = 128;
    gelu_bias_backward_kernel<<<dim3(cdiv(OC, 32), cdiv(N, rows)), dim3(32, 8), 0, g_cuda.stream>>>(dpre, dbias, pre, dout,
                                                                                  N, OC, rows);
    LAUNCH_CHECK();
}
