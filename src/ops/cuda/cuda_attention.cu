/* cuda_attention.cu - flash-style causal self-attention on the GPU.
 *
 * No (T,T) matrix is ever stored: the forward walks the keys in tiles held
 * in shared memory with an online softmax and keeps one log-sum-exp per
 * query row (B,NH,T); the backward recomputes the probabilities from q, k
 * and that log-sum-exp. One thread owns one query row (forward, dq) or one
 * key row (dk, dv) with its vectors in registers; the tile it reads from
 * shared memory is the same for the whole warp (a broadcast), so every
 * shared-memory load feeds four FMAs. Causal tiles past a block's last row
 * are never loaded.
 *
 * This is the float32 path (--precision fp32); bf16 runs the tensor-core
 * kernels of cuda_flash.cu, which keep the same state.
 *
 * Head sizes 16, 32, 64 and 128 (a template parameter: the register arrays
 * need compile-time sizes). qkv (B,T,3C) holds q, k, v at channel offsets
 * 0, C, 2C; head h uses channels h*HS .. h*HS+HS-1 of each. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

#define QB 128 /* rows (queries or keys) per block: one per thread */
#define KT 32  /* rows per shared-memory tile */

__device__ inline float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ inline void axpy4(float4 &y, float a, float4 x) {
    y.x += a * x.x;
    y.y += a * x.y;
    y.z += a * x.z;
    y.w += a * x.w;
}

/* Loads rows r0..r0+KT-1 (zeros past T) of the tensor at channel offset
 * off of (b, head) into tile[KT][HS/4]. */
template <int HS>
__device__ inline void load_tile(float4 (*tile)[HS / 4], const float *base, int r0, int T, int stride,
                                 int off) {
    for (int idx = threadIdx.x; idx < KT * HS / 4; idx += blockDim.x) {
        int j = idx / (HS / 4), d4 = idx % (HS / 4), r = r0 + j;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < T) x = reinterpret_cast<const float4 *>(base + (size_t)r * stride + off)[d4];
        tile[j][d4] = x;
    }
}

template <int HS>
__device__ inline void load_row(float4 *dst, const float *src, float scale) {
    const float4 *s = reinterpret_cast<const float4 *>(src);
#pragma unroll
    for (int d = 0; d < HS / 4; d++) {
        float4 x = s[d];
        dst[d] = make_float4(x.x * scale, x.y * scale, x.z * scale, x.w * scale);
    }
}

/* ---- forward: out (B,T,C), lse (B,NH,T) ---- */
template <int HS>
__global__ __launch_bounds__(QB) void attn_fwd_kernel(float *out, float *lse, const float *qkv, int T,
                                                      int C, int NH) {
    __shared__ float4 ks[KT][HS / 4], vs[KT][HS / 4];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int qblock = gridDim.x - 1 - blockIdx.x; /* the longest rows first */
    int i = qblock * QB + threadIdx.x;
    const float *base = qkv + (size_t)b * T * C3;
    float4 q[HS / 4], o[HS / 4];
    bool valid = i < T;
    if (valid) load_row<HS>(q, base + (size_t)i * C3 + h * HS, rsqrtf((float)HS));
#pragma unroll
    for (int d = 0; d < HS / 4; d++) o[d] = make_float4(0.f, 0.f, 0.f, 0.f);
    float m = -INFINITY, l = 0.0f;
    int kend = min(T, (qblock + 1) * QB);
    for (int k0 = 0; k0 < kend; k0 += KT) {
        __syncthreads();
        load_tile<HS>(ks, base, k0, T, C3, C + h * HS);
        load_tile<HS>(vs, base, k0, T, C3, 2 * C + h * HS);
        __syncthreads();
        if (!valid || k0 > i) continue;
        float s[KT], mt = m;
#pragma unroll
        for (int j = 0; j < KT; j++) {
            float acc = 0.0f;
#pragma unroll
            for (int d = 0; d < HS / 4; d++) acc += dot4(q[d], ks[j][d]);
            s[j] = k0 + j <= i ? acc : -INFINITY;
            mt = fmaxf(mt, s[j]);
        }
        float corr = __expf(m - mt);
        l *= corr;
#pragma unroll
        for (int d = 0; d < HS / 4; d++) {
            o[d].x *= corr;
            o[d].y *= corr;
            o[d].z *= corr;
            o[d].w *= corr;
        }
#pragma unroll
        for (int j = 0; j < KT; j++) {
            float p = __expf(s[j] - mt);
            l += p;
#pragma unroll
            for (int d = 0; d < HS / 4; d++) axpy4(o[d], p, vs[j][d]);
        }
        m = mt;
    }
    if (!valid) return;
    float inv = 1.0f / l;
    float4 *dst = reinterpret_cast<float4 *>(out + ((size_t)b * T + i) * C + h * HS);
#pragma unroll
    for (int d = 0; d < HS / 4; d++) dst[d] = make_float4(o[d].x * inv, o[d].y * inv, o[d].z * inv, o[d].w * inv);
    lse[(size_t)bh * T + i] = m + logf(l);
}

/* D[b,h,i] = dout[b,i,h,:] . out[b,i,h,:] (one thread per row and head) */
__global__ void attn_dsum_kernel(float *D, const float *dout, const float *out, int B, int T, int C,
                                 int NH) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T) return;
    int i = (int)(idx % T), bh = (int)(idx / T), b = bh / NH, h = bh % NH, HS = C / NH;
    const float *x = dout + ((size_t)b * T + i) * C + h * HS, *y = out + ((size_t)b * T + i) * C + h * HS;
    float s = 0.0f;
    for (int d = 0; d < HS; d++) s += x[d] * y[d];
    D[idx] = s;
}

/* ---- dq: one thread per query row, keys 0..i in tiles ---- */
template <int HS>
__global__ __launch_bounds__(QB) void attn_dq_kernel(float *dqkv, const float *dout, const float *qkv,
                                                     const float *lse, const float *D, int T, int C,
                                                     int NH) {
    __shared__ float4 ks[KT][HS / 4], vs[KT][HS / 4];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int qblock = gridDim.x - 1 - blockIdx.x;
    int i = qblock * QB + threadIdx.x;
    const float *base = qkv + (size_t)b * T * C3;
    float scale = rsqrtf((float)HS);
    float4 q[HS / 4], go[HS / 4], dq[HS / 4];
    bool valid = i < T;
    float li = 0.0f, di = 0.0f;
    if (valid) {
        load_row<HS>(q, base + (size_t)i * C3 + h * HS, scale);
        load_row<HS>(go, dout + ((size_t)b * T + i) * C + h * HS, 1.0f);
        li = lse[(size_t)bh * T + i];
        di = D[(size_t)bh * T + i];
    }
#pragma unroll
    for (int d = 0; d < HS / 4; d++) dq[d] = make_float4(0.f, 0.f, 0.f, 0.f);
    int kend = min(T, (qblock + 1) * QB);
    for (int k0 = 0; k0 < kend; k0 += KT) {
        __syncthreads();
        load_tile<HS>(ks, base, k0, T, C3, C + h * HS);
        load_tile<HS>(vs, base, k0, T, C3, 2 * C + h * HS);
        __syncthreads();
        if (!valid || k0 > i) continue;
        int jmax = min(KT - 1, i - k0);
        for (int j = 0; j <= jmax; j++) {
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int d = 0; d < HS / 4; d++) {
                s += dot4(q[d], ks[j][d]);
                dp += dot4(go[d], vs[j][d]);
            }
            float ds = __expf(s - li) * (dp - di);
#pragma unroll
            for (int d = 0; d < HS / 4; d++) axpy4(dq[d], ds, ks[j][d]);
        }
    }
    if (!valid) return;
    float4 *dst = reinterpret_cast<float4 *>(dqkv + ((size_t)b * T + i) * C3 + h * HS);
#pragma unroll
    for (int d = 0; d < HS / 4; d++) dst[d] = make_float4(dq[d].x * scale, dq[d].y * scale, dq[d].z * scale, dq[d].w * scale);
}

/* ---- dk and dv: one thread per key row j, queries j..T-1 in tiles. Two
 * kernels (dv needs k and dv, dk needs k, v and dk): one would hold four
 * head vectors in registers and spill. ---- */
template <int HS, bool DK>
__global__ __launch_bounds__(QB) void attn_dkv_kernel(float *dqkv, const float *dout, const float *qkv,
                                                      const float *lse, const float *D, int T, int C,
                                                      int NH) {
    __shared__ float4 qs[KT][HS / 4], gs[KT][HS / 4];
    __shared__ float ls[KT], dsum[KT];
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int kblock = blockIdx.x; /* key block 0 sees every query: it goes first */
    int j = kblock * QB + threadIdx.x;
    const float *base = qkv + (size_t)b * T * C3, *gbase = dout + (size_t)b * T * C;
    float scale = rsqrtf((float)HS);
    float4 k[HS / 4], v[HS / 4], acc[HS / 4];
    bool valid = j < T;
    if (valid) {
        load_row<HS>(k, base + (size_t)j * C3 + C + h * HS, scale);
        if (DK) load_row<HS>(v, base + (size_t)j * C3 + 2 * C + h * HS, 1.0f);
    }
#pragma unroll
    for (int d = 0; d < HS / 4; d++) acc[d] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int q0 = kblock * QB; q0 < T; q0 += KT) {
        __syncthreads();
        load_tile<HS>(qs, base, q0, T, C3, h * HS);
        load_tile<HS>(gs, gbase, q0, T, C, h * HS);
        if (threadIdx.x < KT) {
            int r = q0 + threadIdx.x;
            ls[threadIdx.x] = r < T ? lse[(size_t)bh * T + r] : 0.0f;
            dsum[threadIdx.x] = r < T ? D[(size_t)bh * T + r] : 0.0f;
        }
        __syncthreads();
        if (!valid || q0 + KT - 1 < j) continue;
        int i0 = max(0, j - q0), i1 = min(KT, T - q0);
        for (int r = i0; r < i1; r++) {
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int d = 0; d < HS / 4; d++) {
                s += dot4(k[d], qs[r][d]);
                if (DK) dp += dot4(v[d], gs[r][d]);
            }
            float p = __expf(s - ls[r]);
            if (DK) {
                float ds = p * (dp - dsum[r]);
#pragma unroll
                for (int d = 0; d < HS / 4; d++) axpy4(acc[d], ds, qs[r][d]);
            } else {
#pragma unroll
                for (int d = 0; d < HS / 4; d++) axpy4(acc[d], p, gs[r][d]);
            }
        }
    }
    if (!valid) return;
    float f = DK ? scale : 1.0f;
    float4 *dst = reinterpret_cast<float4 *>(dqkv + ((size_t)b * T + j) * C3 + (DK ? C : 2 * C) + h * HS);
#pragma unroll
    for (int d = 0; d < HS / 4; d++) dst[d] = make_float4(acc[d].x * f, acc[d].y * f, acc[d].z * f, acc[d].w * f);
}

/* ---- decoding with a KV cache (batch 1): one warp per (row, head); each
 * lane keeps an online softmax over every 32nd key, then the lanes merge ---- */
/* pos_dev, when set, holds pos0 (a recorded decoding step reads it at replay) */
__global__ void kv_store_kernel(float *kcache, float *vcache, const float *qkv, int n, int pos0,
                                const int32_t *pos_dev, int C) {
    if (pos_dev) pos0 = *pos_dev;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * C) return;
    size_t i = idx / C, c = idx % C;
    kcache[(pos0 + i) * C + c] = qkv[i * 3 * C + C + c];
    vcache[(pos0 + i) * C + c] = qkv[i * 3 * C + 2 * C + c];
}

/* One block of CACHED_THREADS per (row, head): every thread keeps an
 * online softmax over every CACHED_THREADS-th key, then the warps merge
 * their (max, sum, output) in shared memory. Decoding has one row, so the
 * keys must be spread over many threads for the GPU to be busy. One row
 * (n = 1) stores its own head's k and v in the cache first: a launch less
 * per layer and token, as no other block reads them. */
#define CACHED_THREADS 256
template <int HS>
__global__ __launch_bounds__(CACHED_THREADS) void attn_cached_kernel(
    float *out, float *kcache, float *vcache, const float *qkv, int n, int pos0,
    const int32_t *pos_dev, int C, int NH) {
    __shared__ float wm[CACHED_THREADS / 32], wl[CACHED_THREADS / 32], wo[CACHED_THREADS / 32][HS];
    if (pos_dev) pos0 = *pos_dev;
    int i = blockIdx.x / NH, h = blockIdx.x % NH, last = pos0 + i;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (n == 1) {
        size_t at = (size_t)pos0 * C + h * HS;
        if (threadIdx.x < HS) kcache[at + threadIdx.x] = qkv[C + h * HS + threadIdx.x];
        else if (threadIdx.x < 2 * HS) vcache[at + threadIdx.x - HS] = qkv[2 * C + h * HS + threadIdx.x - HS];
        __syncthreads();
    }
    float4 q[HS / 4], o[HS / 4];
    load_row<HS>(q, qkv + (size_t)i * 3 * C + h * HS, rsqrtf((float)HS));
#pragma unroll
    for (int d = 0; d < HS / 4; d++) o[d] = make_float4(0.f, 0.f, 0.f, 0.f);
    float m = -INFINITY, l = 0.0f;
    for (int s = threadIdx.x; s <= last; s += CACHED_THREADS) {
        const float4 *kr = reinterpret_cast<const float4 *>(kcache + (size_t)s * C + h * HS);
        const float4 *vr = reinterpret_cast<const float4 *>(vcache + (size_t)s * C + h * HS);
        float sc = 0.0f;
#pragma unroll
        for (int d = 0; d < HS / 4; d++) sc += dot4(q[d], kr[d]);
        float mt = fmaxf(m, sc), corr = __expf(m - mt), p = __expf(sc - mt);
        l = l * corr + p;
#pragma unroll
        for (int d = 0; d < HS / 4; d++) {
            float4 vv = vr[d];
            o[d] = make_float4(o[d].x * corr + p * vv.x, o[d].y * corr + p * vv.y,
                               o[d].z * corr + p * vv.z, o[d].w * corr + p * vv.w);
        }
        m = mt;
    }
    /* merge the lanes of each warp, then the warps */
    float mw = m;
    for (int off = 16; off > 0; off >>= 1) mw = fmaxf(mw, __shfl_xor_sync(0xffffffffu, mw, off));
    float f = m == -INFINITY ? 0.0f : __expf(m - mw); /* threads that saw no key */
    l *= f;
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
#pragma unroll
    for (int d = 0; d < HS / 4; d++) {
        float x[4] = {o[d].x * f, o[d].y * f, o[d].z * f, o[d].w * f};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            for (int off = 16; off > 0; off >>= 1) x[e] += __shfl_xor_sync(0xffffffffu, x[e], off);
            if (lane == (4 * d + e) % 32) wo[warp][4 * d + e] = x[e];
        }
    }
    if (lane == 0) {
        wm[warp] = mw;
        wl[warp] = l;
    }
    __syncthreads();
    if (threadIdx.x >= HS) return;
    float mall = -INFINITY, lall = 0.0f, acc = 0.0f;
    for (int w = 0; w < CACHED_THREADS / 32; w++) mall = fmaxf(mall, wm[w]);
    for (int w = 0; w < CACHED_THREADS / 32; w++) {
        float g = wm[w] == -INFINITY ? 0.0f : __expf(wm[w] - mall);
        lall += wl[w] * g;
        acc += wo[w][threadIdx.x] * g;
    }
    out[(size_t)i * C + h * HS + threadIdx.x] = acc / lall;
}

/* ---- dispatch on the head size ---- */
static void bad_head_size(int HS) {
    char msg[96];
    snprintf(msg, sizeof msg, "head size %d (the CUDA backend supports 16, 32, 64, 128)", HS);
    cuda_fatal("attention", msg, __FILE__, __LINE__);
}
#define HS_DISPATCH(HS, CALL)                                                                       \
    switch (HS) {                                                                                   \
    case 16: CALL(16); break;                                                                       \
    case 32: CALL(32); break;                                                                       \
    case 64: CALL(64); break;                                                                       \
    case 128: CALL(128); break;                                                                     \
    default: bad_head_size(HS);                                                                     \
    }

size_t cuda_attention_state_floats(int B, int NH, int T) { return (size_t)B * NH * T; }

/* bf16 precision takes the tensor-core kernels of cuda_flash.cu */
static int use_flash(int HS) { return g_cuda.compute != CUBLAS_COMPUTE_32F && cuda_flash_supported(HS); }

void cuda_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    cuda_shadow_forget(att, cuda_attention_state_floats(B, NH, T) * sizeof(float));
    cuda_shadow_forget(out, (size_t)B * T * C * sizeof(float)); /* the flash path makes a copy */
    if (use_flash(C / NH)) {
        cuda_flash_forward(out, att, qkv, B, T, C, NH);
        return;
    }
    dim3 grid(cdiv(T, QB), B * NH);
#define FWD(H) attn_fwd_kernel<H><<<grid, QB, 0, g_cuda.stream>>>(out, att, qkv, T, C, NH)
    HS_DISPATCH(C / NH, FWD);
    LAUNCH_CHECK();
}

/* scratch for D (B,NH,T), grown on demand and kept */
static float *dsum_buf;
static size_t dsum_len;

void cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                             const float *att, int B, int T, int C, int NH) {
    cuda_shadow_forget(dqkv, (size_t)B * T * 3 * C * sizeof(float)); /* the flash path makes a copy */
    size_t rows = (size_t)B * NH * T;
    if (rows > dsum_len) {
        CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream));
        if (dsum_buf) CUDA_CHECK(cudaFree(dsum_buf));
        dsum_buf = (float *)cuda_scratch_alloc(rows * sizeof(float));
        dsum_len = rows;
    }
    attn_dsum_kernel<<<cdiv(rows, 256), 256, 0, g_cuda.stream>>>(dsum_buf, dout, out, B, T, C, NH);
    LAUNCH_CHECK();
    if (use_flash(C / NH)) {
        cuda_flash_backward(dqkv, dout, qkv, att, dsum_buf, B, T, C, NH);
        return;
    }
    dim3 grid(cdiv(T, QB), B * NH);
#define BWD(H)                                                                                      \
    do {                                                                                            \
        attn_dq_kernel<H><<<grid, QB, 0, g_cuda.stream>>>(dqkv, dout, qkv, att, dsum_buf, T, C, NH);                  \
        attn_dkv_kernel<H, true><<<grid, QB, 0, g_cuda.stream>>>(dqkv, dout, qkv, att, dsum_buf, T, C, NH);           \
        attn_dkv_kernel<H, false><<<grid, QB, 0, g_cuda.stream>>>(dqkv, dout, qkv, att, dsum_buf, T, C, NH);          \
    } while (0)
    HS_DISPATCH(C / NH, BWD);
    LAUNCH_CHECK();
}

static void cached(float *out, float *kcache, float *vcache, const float *qkv, int n, int pos0,
                   const int32_t *pos_dev, int C, int NH) {
    cuda_shadow_forget(out, (size_t)n * C * sizeof(float));
    if (pos_dev) /* the row is known only on the device */
        cuda_shadow_forget_all();
    else {
        cuda_shadow_forget(kcache + (size_t)pos0 * C, (size_t)n * C * sizeof(float));
        cuda_shadow_forget(vcache + (size_t)pos0 * C, (size_t)n * C * sizeof(float));
    }
    if (n > 1) { /* rows read each other's keys: stored first (one row: by the kernel) */
        kv_store_kernel<<<cdiv((size_t)n * C, 256), 256, 0, g_cuda.stream>>>(kcache, vcache, qkv, n, pos0,
                                                                             pos_dev, C);
        LAUNCH_CHECK();
    }
#define CACHED(H)                                                                                   \
    attn_cached_kernel<H><<<n * NH, CACHED_THREADS, 0, g_cuda.stream>>>(out, kcache, vcache, qkv, n,   \
                                                                        pos0, pos_dev, C, NH)
    HS_DISPATCH(C / NH, CACHED);
    LAUNCH_CHECK();
}

void cuda_attention_cached(float *out, float *kcache, float *vcache, const float *qkv, int n,
                           int pos0, int C, int NH) {
    cached(out, kcache, vcache, qkv, n, pos0, NULL, C, NH);
}

void cuda_attention_cached_at(float *out, float *kcache, float *vcache, const float *qkv, int C,
                              int NH, const int32_t *pos_dev) {
    cached(out, kcache, vcache, qkv, 1, 0, pos_dev, C, NH);
}
