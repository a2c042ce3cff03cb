/* cuda_sample.cu - choosing the next token on the GPU, so that decoding
 * brings one id back to the host instead of the logits: the argmax
 * (greedy) and the draw of infer/sample.c (temperature, top-k, top-p) with
 * the host's uniform number, so that a seed draws the same tokens on both
 * devices up to float rounding.
 *
 * Both run in one block. The draw computes the probabilities as the host
 * does (expf of the scaled logit minus the largest, summed in double).
 * Without a cut it walks the tokens in index order: each thread sums its
 * slice, a scan gives every slice its start, and the slice where the
 * running sum passes u walks its tokens. With a cut it keeps the tokens at
 * or above the host's threshold (top_prefix), sorts them in shared memory
 * (bitonic, by probability, ties by id) and one thread applies top-k,
 * top-p and the draw in the host's order. More candidates than CAP: -1. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

#define THREADS 1024
#define WARPS (THREADS / 32)
#define CAP 4096 /* candidates a cut may keep here (32 KB of shared memory) */
#define FULL 0xffffffffu

/* ---- argmax: the first index wins ties, NaN never wins, as the host ---- */
__device__ inline void better(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}
/* the block's (largest, first index) over x (n); every thread gets it */
__device__ int block_argmax(const float *x, int n, int aligned) {
    __shared__ float wv[WARPS];
    __shared__ int wi[WARPS];
    float v = -INFINITY;
    int i = n, n4 = aligned ? n / 4 : 0; /* float4 loads when x allows */
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    for (int k = threadIdx.x; k < n4; k += 4 * blockDim.x) {
        float4 q[4];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (k + u * (int)blockDim.x < n4) q[u] = x4[k + u * blockDim.x];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int j = 4 * (k + u * blockDim.x);
            if (j / 4 >= n4) break;
            better(v, i, q[u].x, j);
            better(v, i, q[u].y, j + 1);
            better(v, i, q[u].z, j + 2);
            better(v, i, q[u].w, j + 3);
        }
    }
    for (int k = 4 * n4 + threadIdx.x; k < n; k += blockDim.x) better(v, i, x[k], k);
    for (int o = 16; o > 0; o >>= 1) better(v, i, __shfl_xor_sync(FULL, v, o), __shfl_xor_sync(FULL, i, o));
    __syncthreads(); /* wv may still be read by an earlier call */
    if (threadIdx.x % 32 == 0) wv[threadIdx.x / 32] = v, wi[threadIdx.x / 32] = i;
    __syncthreads();
    v = wv[0], i = wi[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++) better(v, i, wv[w], wi[w]);
    return i < n ? i : 0;
}
__global__ void argmax_kernel(int32_t *out, const float *x, int n, int aligned) {
    int i = block_argmax(x, n, aligned);
    if (threadIdx.x == 0) *out = i;
}
void cuda_argmax(int32_t *out, const float *x, int n) {
    cuda_shadow_forget(out, sizeof *out);
    argmax_kernel<<<1, THREADS, 0, g_cuda.stream>>>(out, x, n, (uintptr_t)x % 16 == 0);
    LAUNCH_CHECK();
}

/* ---- block-wide sums and scans (every thread gets the result) ---- */
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T sh[WARPS];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    __syncthreads();
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
    __syncthreads();
    T s = 0;
    for (int w = 0; w < WARPS; w++) s += sh[w]; /* in warp order: the same in every thread */
    return s;
}
/* the sum of v over the threads before this one, in thread order; *total:
 * over all */
template <typename T>
__device__ T block_scan(T v, T *total) {
    __shared__ T sh[WARPS];
    int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    T x = v;
    for (int o = 1; o < 32; o <<= 1) {
        T y = __shfl_up_sync(FULL, x, o);
        if (lane >= o) x += y;
    }
    __syncthreads();
    if (lane == 31) sh[w] = x;
    __syncthreads();
    T before = 0;
    for (int k = 0; k < w; k++) before += sh[k];
    T all = before;
    for (int k = w; k < WARPS; k++) all += sh[k];
    *total = all;
    return before + x - v;
}

/* ---- the draw ---- */
__global__ __launch_bounds__(THREADS) void sample_kernel(int32_t *out, const float *x, int n, float temp,
                                                         int top_k, float top_p, float u, int aligned) {
    __shared__ float cp[CAP];
    __shared__ int ci[CAP];
    __shared__ int found;
    int best = block_argmax(x, n, aligned), tid = threadIdx.x;
    float top = x[best];
    double sum = 0.0;
    for (int i = tid; i < n; i += THREADS) sum += (double)expf((x[i] - top) / temp);
    sum = block_sum(sum);
    /* a token's probability, exactly as the host computes it */
#define P(i) ((float)((double)expf((x[i] - top) / temp) / sum))
    float pmax = P(best);
    int chunk = (n + THREADS - 1) / THREADS, lo = min(n, tid * chunk), hi = min(n, lo + chunk);
    if (top_k <= 0 && top_p >= 1.0f) { /* no cut: the index order */
        float part = 0.0f, total;
        for (int i = lo; i < hi; i++) part += P(i);
        float acc = block_scan(part, &total);
        if (tid == 0) found = n;
        __syncthreads();
        if (u < acc + part) /* the crossing may be here: the first one wins */
            for (int i = lo; i < hi; i++) {
                acc += P(i);
                if (u < acc) {
                    atomicMin(&found, i);
                    break;
                }
            }
        __syncthreads();
        if (tid == 0) *out = found < n ? found : best;
        return;
    }
    /* the host's threshold: tokens at or above t are at least `count` and
     * hold at least `mass` */
    int count = min(n, top_k > 0 ? top_k : 1);
    double mass = top_p < 1.0f ? top_p + 1e-3 : 0.0;
    float t = pmax * 1e-2f;
    for (int k = 0; k < 6; k++, t *= 1e-2f) {
        int c = 0;
        double m = 0.0;
        for (int i = tid; i < n; i += THREADS) {
            float p = P(i);
            if (p >= t) c++, m += p;
        }
        c = block_sum(c);
        m = block_sum(m);
        if (c >= count && m >= mass) break;
    }
    if (t < pmax * 1e-13f) t = 0.0f;
    /* the candidates, in index order, then sorted */
    int mine = 0, kept;
    for (int i = lo; i < hi; i++) mine += P(i) >= t;
    int at = block_scan(mine, &kept);
    if (kept > CAP) {
        if (tid == 0) *out = -1;
        return;
    }
    for (int i = lo; i < hi; i++) {
        float p = P(i);
        if (p >= t) cp[at] = p, ci[at++] = i;
    }
    int size = 1;
    while (size < kept) size <<= 1;
    for (int j = kept + tid; j < size; j += THREADS) cp[j] = -1.0f, ci[j] = n; /* after every candidate */
    __syncthreads();
    for (int k = 2; k <= size; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int e = tid; e < size; e += THREADS) {
                int f = e ^ j;
                if (f <= e) continue;
                /* f before e: higher probability, or equal and smaller id */
                bool f_first = cp[f] > cp[e] || (cp[f] == cp[e] && ci[f] < ci[e]);
                bool e_first = cp[e] > cp[f] || (cp[e] == cp[f] && ci[e] < ci[f]);
                if ((e & k) == 0 ? f_first : e_first) {
                    float tp = cp[e];
                    int ti = ci[e];
                    cp[e] = cp[f], ci[e] = ci[f];
                    cp[f] = tp, ci[f] = ti;
                }
            }
            __syncthreads();
        }
#undef P
    if (tid != 0) return;
    /* as the host: top-k, then the smallest prefix with mass >= top_p */
    int m = kept;
    if (top_k > 0 && top_k < m) m = top_k;
    if (top_p < 1.0f) {
        float acc = 0.0f;
        for (int i = 0; i < m; i++) {
            acc += cp[i];
            if (acc >= top_p) {
                m = i + 1;
                break;
            }
        }
    }
    float w = 0.0f;
    for (int i = 0; i < m; i++) w += cp[i];
    float r = u * w, acc = 0.0f;
    int pick = ci[m - 1];
    for (int i = 0; i < m; i++) {
        acc += cp[i];
        if (r < acc) {
            pick = ci[i];
            break;
        }
    }
    *out = pick;
}

void cuda_sample(int32_t *out, const float *x, int n, float temperature, int top_k, float top_p, float u) {
    cuda_shadow_forget(out, sizeof *out);
    sample_kernel<<<1, THREADS, 0, g_cuda.stream>>>(out, x, n, temperature, top_k, top_p, u,
                                                   (uintptr_t)x % 16 == 0);
    LAUNCH_CHECK();
}
