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
    cuda_shadow_forget(out, total * sizeof(float));
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
    cuda_shadow_forget(out, C * sizeof(float));
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
    cuda_shadow_forget_all(); /* dwte's size is not known here; no copy is needed after it */
    embed_bwd_wte_kernel<<<cdiv(total, 256), 256, 0, g_cuda.stream>>>(dwte, dout, tok, C, total);
    LAUNCH_CHECK();
    embed_bwd_wpe_kernel<<<cdiv((size_t)T * C, 256), 256, 0, g_cuda.stream>>>(dwpe, dout, B, T, C);
    LAUNCH_CHECK();
}

#define LN_MAXV 32 /* row kernels keep C <= 32 * LN_MAXV values per lane in registers */
/* calls CALL(V) with the fewest registers per lane (V floats) for C */
#define LN_DISPATCH(C, CALL)                                                                        \
    do {                                                                                            \
        if ((C) <= WARP * 8) CALL(8);                                                               \
        else if ((C) <= WARP * 16) CALL(16);                                                        \
        else if ((C) <= WARP * 24) CALL(24);                                                        \
        else CALL(32);                                                                              \
    } while (0)

/* ---- LayerNorm: one warp per row (N,C) ---- */

/* res = a + b (b NULL: no residual, res NULL: not stored), then out =
 * layernorm(res) with mean and rstd (may be NULL), the row kept in
 * registers (C <= 32 * LN_MAXV). Every load of a and b is issued before
 * any store: res may alias them, so a store between loads would make each
 * load wait for the one before it (a chain of memory latencies). */
template <int V>
__global__ void layernorm_rows_kernel(float *res, float *__restrict__ out, bf16 *__restrict__ out16,
                                      float *__restrict__ mean,
                                      float *__restrict__ rstd, const float *a, const float *b,
                                      const float *__restrict__ w, const float *__restrict__ bias, int N,
                                      int C) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    float v[V], s = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        int c = lane + k * WARP;
        v[k] = c < C ? a[off + c] + (b ? b[off + c] : 0.0f) : 0.0f;
        s += v[k];
    }
    if (res)
#pragma unroll
        for (int k = 0; k < V; k++)
            if (lane + k * WARP < C) res[off + lane + k * WARP] = v[k];
    float mu = warp_sum(s) / C, var = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++)
        if (lane + k * WARP < C) var += (v[k] - mu) * (v[k] - mu);
    float rs = rsqrtf(warp_sum(var) / C + 1e-5f);
#pragma unroll
    for (int k = 0; k < V; k++) {
        int c = lane + k * WARP;
        if (c >= C) continue;
        float o = (v[k] - mu) * rs * w[c] + bias[c];
        out[off + c] = o;
        if (out16) out16[off + c] = __float2bfloat16(o);
    }
    if (lane == 0 && mean) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

/* rows too wide for registers: three passes over x (from the cache) */
__global__ void layernorm_wide_kernel(float *__restrict__ out, float *__restrict__ mean,
                                      float *__restrict__ rstd, const float *__restrict__ x,
                                      const float *__restrict__ w, const float *__restrict__ b, int N, int C) {
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
#define LN_FWD(V)                                                                                   \
    layernorm_rows_kernel<V><<<cdiv(N, 8), 8 * WARP, 0, g_cuda.stream>>>(NULL, out, out16, mean, rstd, x, NULL, w, \
                                                                        b, N, C)
    if (mean) cuda_shadow_forget(mean, N * sizeof(float));
    if (rstd) cuda_shadow_forget(rstd, N * sizeof(float));
    bf16 *out16 = C <= WARP * LN_MAXV ? cuda_shadow_make(out, (size_t)N * C, N) : NULL;
    if (!out16) cuda_shadow_forget(out, (size_t)N * C * sizeof(float));
    if (C <= WARP * LN_MAXV)
        LN_DISPATCH(C, LN_FWD);
#undef LN_FWD
    else
        layernorm_wide_kernel<<<cdiv(N, 8), 8 * WARP, 0, g_cuda.stream>>>(out, mean, rstd, x, w, b, N, C);
    LAUNCH_CHECK();
}

/* dx += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), with
 * dnorm = dout * w. One warp per row, the row in registers (V floats per
 * lane, C <= 32 V); a lane sums dw and db of its channels over the rows
 * it visits in registers, then once per block in shared memory and once
 * per block in global memory (atomics). All of a row's loads come before
 * its stores (dx is read and written). */
template <int V>
__global__ __launch_bounds__(256) void layernorm_bwd_rows_kernel(float *dx, bf16 *__restrict__ dx16,
                                                                 float *dw, float *db,
                                                                 const float *dout, const float *x,
                                                                 const float *__restrict__ w,
                                                                 const float *__restrict__ mean,
                                                                 const float *__restrict__ rstd, int N, int C) {
    extern __shared__ float sh[]; /* dw[C], db[C] */
    float *sdw = sh, *sdb = sh + C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sdw[c] = sdb[c] = 0.0f;
    int warps = blockDim.x / WARP, lane = threadIdx.x % WARP;
    float wr[V], aw[V], ab[V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        int c = lane + k * WARP;
        wr[k] = c < C ? w[c] : 0.0f;
        aw[k] = ab[k] = 0.0f;
    }
    for (int row = blockIdx.x * warps + threadIdx.x / WARP; row < N; row += gridDim.x * warps) {
        size_t off = (size_t)row * C;
        float g[V], nx[V], d[V], mu = mean[row], rs = rstd[row], s1 = 0.0f, s2 = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            int c = lane + k * WARP;
            bool in = c < C;
            g[k] = in ? dout[off + c] : 0.0f;
            nx[k] = in ? x[off + c] : 0.0f;
            d[k] = in ? dx[off + c] : 0.0f;
        }
#pragma unroll
        for (int k = 0; k < V; k++) {
            nx[k] = (nx[k] - mu) * rs; /* the normalised x */
            s1 += g[k] * wr[k];
            s2 += g[k] * wr[k] * nx[k];
        }
        s1 = warp_sum(s1) / C;
        s2 = warp_sum(s2) / C;
#pragma unroll
        for (int k = 0; k < V; k++) {
            int c = lane + k * WARP;
            aw[k] += g[k] * nx[k];
            ab[k] += g[k];
            if (c >= C) continue;
            float v = d[k] + rs * (g[k] * wr[k] - s1 - nx[k] * s2);
            dx[off + c] = v;
            if (dx16) dx16[off + c] = __float2bfloat16(v);
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < V; k++) {
        int c = lane + k * WARP;
        if (c < C) {
            atomicAdd(&sdw[c], aw[k]);
            atomicAdd(&sdb[c], ab[k]);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        atomicAdd(&dw[c], sdw[c]);
        atomicAdd(&db[c], sdb[c]);
    }
}

/* rows too wide for registers: the same, two passes over each row */
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
    size_t shared = 2 * (size_t)C * sizeof(float);
    cuda_shadow_forget(dw, C * sizeof(float));
    cuda_shadow_forget(db, C * sizeof(float));
    if (C <= WARP * LN_MAXV) { /* one block of 8 warps per multiprocessor: registers bound it */
        unsigned blocks = MG_MIN((unsigned)g_cuda.sms, cdiv(N, 8));
        bf16 *dx16 = cuda_shadow_make(dx, (size_t)N * C, N);
#define LN_BWD(V)                                                                                   \
    layernorm_bwd_rows_kernel<V><<<blocks, 8 * WARP, shared, g_cuda.stream>>>(dx, dx16, dw, db, dout, x, w, mean, \
                                                                             rstd, N, C)
        LN_DISPATCH(C, LN_BWD);
#undef LN_BWD
        LAUNCH_CHECK();
        return;
    }
    cuda_shadow_forget(dx, (size_t)N * C * sizeof(float));
    unsigned blocks = MG_MIN((unsigned)g_cuda.sms * 2, cdiv(N, 16));
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
__global__ void gelu_fwd_kernel(float *out, bf16 *out16, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = cuda_gelu(x[i]);
    out[i] = v;
    if (out16) out16[i] = __float2bfloat16(v);
}
__global__ void gelu_bwd_kernel(float *dx, const float *x, const float *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    dx[i] = dout[i] * cuda_gelu_grad(x[i]);
}
void cuda_gelu_forward_copy(float *out, bf16 *out16, const float *x, size_t n) {
    if (!out16) cuda_shadow_forget(out, n * sizeof(float));
    gelu_fwd_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(out, out16, x, n);
    LAUNCH_CHECK();
}
void cuda_gelu_forward(float *out, const float *x, size_t n) { cuda_gelu_forward_copy(out, NULL, x, n); }
void cuda_gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
    cuda_shadow_forget(dx, n * sizeof(float));
    gelu_bwd_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(dx, x, dout, n);
    LAUNCH_CHECK();
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}
void cuda_add(float *out, const float *a, const float *b, size_t n) {
    cuda_shadow_forget(out, n * sizeof(float));
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
__global__ void xent_kernel(float *losses, float *dlogits, bf16 *d16, const float *logits,
                            const int32_t *targets, int V, float dloss) {
    size_t row = blockIdx.x;
    const float *x = logits + row * V;
    /* one read for the maximum and the sum (online: the sum is rescaled
     * when the maximum grows), one more to write the gradient */
    float m = -INFINITY, s = 0.0f;
    for (int i0 = threadIdx.x; i0 < V; i0 += 8 * blockDim.x) {
        float v[8]; /* eight loads in flight, then the updates that wait on them */
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int i = i0 + u * blockDim.x;
            v[u] = i < V ? x[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            if (i0 + u * (int)blockDim.x >= V) break;
            if (v[u] > m) {
                s = s * __expf(m - v[u]) + 1.0f;
                m = v[u];
            } else {
                s += __expf(v[u] - m);
            }
        }
    }
    float mx = block_reduce(m, 1);
    s = block_reduce(m == -INFINITY ? 0.0f : s * __expf(m - mx), 0);
    int tgt = targets[row];
    float target_logit = x[tgt]; /* read before dlogits (which may alias) is written */
    __syncthreads();
    if (threadIdx.x == 0) losses[row] = logf(s) + mx - target_logit;
    if (dlogits) {
        /* eight loads before their stores: d may alias x, and a store
         * between two loads would make each load wait for the last */
        float *d = dlogits + row * V, inv = 1.0f / s;
        for (int i0 = threadIdx.x; i0 < V; i0 += 8 * blockDim.x) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                int i = i0 + u * blockDim.x;
                v[u] = i < V ? x[i] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                int i = i0 + u * blockDim.x;
                if (i >= V) continue;
                float g = (__expf(v[u] - mx) * inv - (i == tgt ? 1.0f : 0.0f)) * dloss;
                d[i] = g;
                if (d16) d16[row * V + i] = __float2bfloat16(g);
            }
        }
    }
}
void cuda_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                                const int32_t *targets, int N, int V, float dloss) {
    cuda_shadow_forget(losses, N * sizeof(float));
    bf16 *d16 = dlogits ? cuda_shadow_make(dlogits, (size_t)N * V, N) : NULL;
    xent_kernel<<<N, 512, 0, g_cuda.stream>>>(losses, dlogits, d16, logits, targets, V, dloss);
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
    cuda_shadow_forget(p, n * sizeof(float));
    cuda_shadow_forget(m, n * sizeof(float));
    cuda_shadow_forget(v, n * sizeof(float));
    adamw_kernel<<<cdiv(n, 256), 256, 0, g_cuda.stream>>>(p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, bc1,
                                        bc2);
    LAUNCH_CHECK();
}

void cuda_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a,
                                     const float *b, const float *w, const float *bias, int N, int C) {
    if (C > WARP * LN_MAXV) { /* too wide for registers: the two-pass path */
        cuda_add(res, a, b, (size_t)N * C);
        cuda_layernorm_forward(out, mean, rstd, res, w, bias, N, C);
        return;
    }
#define LN_RES(V)                                                                                   \
    layernorm_rows_kernel<V><<<cdiv(N, 8), 8 * WARP, 0, g_cuda.stream>>>(res, out, out16, mean, rstd, a, b, w, \
                                                                        bias, N, C)
    cuda_shadow_forget(res, (size_t)N * C * sizeof(float));
    if (mean) cuda_shadow_forget(mean, N * sizeof(float));
    if (rstd) cuda_shadow_forget(rstd, N * sizeof(float));
    bf16 *out16 = cuda_shadow_make(out, (size_t)N * C, N);
    LN_DISPATCH(C, LN_RES);
#undef LN_RES
    LAUNCH_CHECK();
}

/* ---- fused: dpre = dout * gelu'(pre) and dbias += column sums of dpre,
 * 32 columns x a slice of rows per block ---- */
__global__ void gelu_bias_backward_kernel(float *dpre, bf16 *dpre16, float *dbias, const float *pre,
                                          const float *dout, int N, int OC, int rows_per_block) {
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rows_per_block, r1 = min(N, r0 + rows_per_block);
    float s = 0.0f;
    if (col < OC) /* four rows' loads before their stores: dpre may alias dout */
        for (int r = r0 + threadIdx.y; r < r1; r += 32) {
            float v[4], go[4];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                size_t i = (size_t)(r + 8 * k) * OC + col;
                bool in = r + 8 * k < r1;
                v[k] = in ? pre[i] : 0.0f;
                go[k] = in ? dout[i] : 0.0f;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                if (r + 8 * k >= r1) break;
                size_t i = (size_t)(r + 8 * k) * OC + col;
                float d = go[k] * cuda_gelu_grad(v[k]);
                dpre[i] = d;
                if (dpre16) dpre16[i] = __float2bfloat16(d);
                s += d;
            }
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
    cuda_shadow_forget(dbias, OC * sizeof(float));
    bf16 *dpre16 = cuda_shadow_make(dpre, (size_t)N * OC, N);
    gelu_bias_backward_kernel<<<dim3(cdiv(OC, 32), cdiv(N, rows)), dim3(32, 8), 0, g_cuda.stream>>>(
        dpre, dpre16, dbias, pre, dout, N, OC, rows);
    LAUNCH_CHECK();
}
