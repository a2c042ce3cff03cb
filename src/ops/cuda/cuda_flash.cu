/* cuda_flash.cu - flash attention on the tensor cores (--precision bf16).
 *
 * Same contract and state as the float32 kernels of cuda_attention.cu (one
 * log-sum-exp per query row, no (T,T) matrix in memory), but every product
 * runs as bf16 x bf16 -> fp32 on the tensor cores (WMMA 16x16x16): q, k, v
 * and dout are rounded to bf16 as tiles of 64 rows are staged in shared
 * memory; softmax statistics, accumulators and outputs stay in fp32.
 *
 * A block has 4 warps and 64 rows (16 per warp):
 *   forward  64 queries; key tiles of 64 up to the diagonal; per tile
 *            S = Q K^T, online softmax in fp32, O += P V (O in shared
 *            memory, as its rows are rescaled when the maximum moves);
 *   dk, dv   64 keys; query tiles from the diagonal on; per tile
 *            S^T = K Q^T, P^T, dV += P^T dO, dP^T = V dO^T,
 *            dS^T = P^T (dP^T - D), dK += dS^T Q (in registers);
 *   dq       64 queries; key tiles up to the diagonal; per tile
 *            S, P, dP = dO V^T, dS, dQ += dS K (in registers).
 * dq has its own kernel (recomputing S and dP) instead of atomics. */
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

#include "ops/cuda/cuda_common.cuh"

using namespace nvcuda;
typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> frag_b;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> frag_bt;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;

#define FB 64   /* rows per block and per tile */
#define LDS 68  /* fp32 stride of a 64-wide tile (padded against bank conflicts) */
#define LDP 72  /* bf16 stride of a 64-wide tile */
#define FULL 0xffffffffu

/* Stages rows r0..r0+63 (zeros past T) of a head's slice of a (.., stride)
 * fp32 tensor into a bf16 tile of stride HS+8, times scale. */
template <int HS>
__device__ inline void stage(bf16 *dst, const float *src, int r0, int T, int stride, int off, float scale) {
    for (int idx = threadIdx.x; idx < FB * HS / 4; idx += blockDim.x) {
        int j = idx / (HS / 4), d4 = idx % (HS / 4), r = r0 + j;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < T) x = reinterpret_cast<const float4 *>(src + (size_t)r * stride + off)[d4];
        __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(dst + j * (HS + 8) + d4 * 4);
        p[0] = __floats2bfloat162_rn(x.x * scale, x.y * scale);
        p[1] = __floats2bfloat162_rn(x.z * scale, x.w * scale);
    }
}

/* c (16 x 64, fp32) = a (16 x K) . bt^T, bt (64 x K): both bf16 row-major */
template <int K>
__device__ inline void mm_abt(float *c, const bf16 *a, int lda, const bf16 *bt, int ldb) {
#pragma unroll
    for (int nb = 0; nb < 4; nb++) {
        frag_c acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < K / 16; kk++) {
            frag_a fa;
            frag_bt fb;
            wmma::load_matrix_sync(fa, a + kk * 16, lda);
            wmma::load_matrix_sync(fb, bt + nb * 16 * ldb + kk * 16, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(c + nb * 16, acc, LDS, wmma::mem_row_major);
    }
}

/* acc[HS/16] (16 x HS) += a (16 x 64, bf16, stride LDP) . b (64 x HS, bf16, stride HS+8) */
template <int HS>
__device__ inline void mm_ab_acc(frag_c *acc, const bf16 *a, const bf16 *b) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        frag_a fa;
        wmma::load_matrix_sync(fa, a + kk * 16, LDP);
#pragma unroll
        for (int db = 0; db < HS / 16; db++) {
            frag_b fb;
            wmma::load_matrix_sync(fb, b + kk * 16 * (HS + 8) + db * 16, HS + 8);
            wmma::mma_sync(acc[db], fa, fb, acc[db]);
        }
    }
}

/* Writes a warp's 16 x HS fragments, times f, to rows row0.. (valid while
 * < T) at channel offset off of a (.., stride) fp32 tensor, through the
 * warp's fp32 scratch (16 x LDS, HS <= 64... or more: in two halves). */
template <int HS>
__device__ inline void write_rows(float *dst, int stride, int off, int row0, int T, frag_c *acc,
                                  float *scratch, float f) {
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int half = 0; half < (HS + 63) / 64; half++) {
#pragma unroll
        for (int db = 0; db < 4 && half * 4 + db < HS / 16; db++)
            wmma::store_matrix_sync(scratch + db * 16, acc[half * 4 + db], LDS, wmma::mem_row_major);
        __syncwarp();
        int width = HS - half * 64 < 64 ? HS - half * 64 : 64;
        for (int i = lane; i < 16 * width; i += 32) {
            int r = i / width, d = i % width;
            if (row0 + r < T) dst[(size_t)(row0 + r) * stride + off + half * 64 + d] = scratch[r * LDS + d] * f;
        }
        __syncwarp();
    }
}

/* ---- forward ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_fwd_kernel(float *out, float *lse, const float *qkv, int T,
                                                        int C, int NH) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int LDH = HS + 8, LDO = HS + 4;
    bf16 *Qs = (bf16 *)smem, *Ks = Qs + FB * LDH, *Vs = Ks + FB * LDH;
    float *Sw = (float *)(Vs + FB * LDH);
    bf16 *Pw = (bf16 *)(Sw + 4 * 16 * LDS);
    float *Ow = (float *)(Pw + 4 * 16 * LDP);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int q0 = (gridDim.x - 1 - blockIdx.x) * FB; /* the longest rows first */
    const float *base = qkv + (size_t)b * T * C3;
    stage<HS>(Qs, base, q0, T, C3, h * HS, rsqrtf((float)HS));
    float *S = Sw + warp * 16 * LDS, *O = Ow + warp * 16 * LDO;
    bf16 *P = Pw + warp * 16 * LDP;
    for (int i = lane; i < 16 * LDO; i += 32) O[i] = 0.0f;
    int r = lane / 2, half = lane % 2, qi = q0 + warp * 16 + r;
    float m = -INFINITY, l = 0.0f;
    int kend = min(T, q0 + FB);
    for (int k0 = 0; k0 < kend; k0 += FB) {
        __syncthreads();
        stage<HS>(Ks, base, k0, T, C3, C + h * HS, 1.0f);
        stage<HS>(Vs, base, k0, T, C3, 2 * C + h * HS, 1.0f);
        __syncthreads();
        mm_abt<HS>(S, Qs + warp * 16 * LDH, LDH, Ks, LDH);
        __syncwarp();
        /* online softmax: two lanes per row, 32 columns each */
        float *srow = S + r * LDS + half * 32, mt = -INFINITY;
        for (int j = 0; j < 32; j++) {
            int kj = k0 + half * 32 + j;
            float s = kj <= qi && kj < T ? srow[j] : -INFINITY;
            srow[j] = s;
            mt = fmaxf(mt, s);
        }
        mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 1));
        float mnew = fmaxf(m, mt);
        float corr = mnew == -INFINITY ? 1.0f : __expf(m - mnew), sum = 0.0f;
        bf16 *prow = P + r * LDP + half * 32;
        for (int j = 0; j < 32; j++) {
            float p = srow[j] == -INFINITY ? 0.0f : __expf(srow[j] - mnew);
            sum += p;
            prow[j] = __float2bfloat16(p);
        }
        sum += __shfl_xor_sync(FULL, sum, 1);
        l = l * corr + sum;
        m = mnew;
        float *orow = O + r * LDO + half * (HS / 2);
        for (int d = 0; d < HS / 2; d++) orow[d] *= corr;
        __syncwarp();
        frag_c acc[HS / 16];
#pragma unroll
        for (int db = 0; db < HS / 16; db++) wmma::load_matrix_sync(acc[db], O + db * 16, LDO, wmma::mem_row_major);
        mm_ab_acc<HS>(acc, P, Vs);
#pragma unroll
        for (int db = 0; db < HS / 16; db++) wmma::store_matrix_sync(O + db * 16, acc[db], LDO, wmma::mem_row_major);
        __syncwarp();
    }
    if (qi < T) {
        float inv = 1.0f / l, *dst = out + ((size_t)b * T + qi) * C + h * HS + half * (HS / 2);
        const float *orow = O + r * LDO + half * (HS / 2);
        for (int d = 0; d < HS / 2; d++) dst[d] = orow[d] * inv;
        if (half == 0) lse[(size_t)bh * T + qi] = m + logf(l);
    }
}

/* ---- dk, dv: a block owns 64 keys ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_dkv_kernel(float *dqkv, const float *dout, const float *qkv,
                                                        const float *lse, const float *D, int T, int C,
                                                        int NH) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int LDH = HS + 8;
    bf16 *Ks = (bf16 *)smem, *Vs = Ks + FB * LDH, *Qs = Vs + FB * LDH, *Gs = Qs + FB * LDH;
    float *Sw = (float *)(Gs + FB * LDH), *dPw = Sw + 4 * 16 * LDS;
    bf16 *Pw = (bf16 *)(dPw + 4 * 16 * LDS), *dSw = Pw + 4 * 16 * LDP;
    float *ls = (float *)(dSw + 4 * 16 * LDP), *ds = ls + FB;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int k0 = blockIdx.x * FB; /* key block 0 sees every query: first */
    const float *base = qkv + (size_t)b * T * C3, *gbase = dout + (size_t)b * T * C;
    float scale = rsqrtf((float)HS);
    stage<HS>(Ks, base, k0, T, C3, C + h * HS, 1.0f);
    stage<HS>(Vs, base, k0, T, C3, 2 * C + h * HS, 1.0f);
    float *S = Sw + warp * 16 * LDS, *dP = dPw + warp * 16 * LDS;
    bf16 *P = Pw + warp * 16 * LDP, *dS = dSw + warp * 16 * LDP;
    frag_c dk[HS / 16], dv[HS / 16];
#pragma unroll
    for (int db = 0; db < HS / 16; db++) {
        wmma::fill_fragment(dk[db], 0.0f);
        wmma::fill_fragment(dv[db], 0.0f);
    }
    int r = lane / 2, half = lane % 2, kj = k0 + warp * 16 + r;
    for (int q0 = k0; q0 < T; q0 += FB) {
        __syncthreads();
        stage<HS>(Qs, base, q0, T, C3, h * HS, scale);
        stage<HS>(Gs, gbase, q0, T, C, h * HS, 1.0f);
        if (threadIdx.x < FB) {
            int q = q0 + threadIdx.x;
            ls[threadIdx.x] = q < T ? lse[(size_t)bh * T + q] : 0.0f;
            ds[threadIdx.x] = q < T ? D[(size_t)bh * T + q] : 0.0f;
        }
        __syncthreads();
        mm_abt<HS>(S, Ks + warp * 16 * LDH, LDH, Qs, LDH);      /* S^T (16 keys x 64 queries) */
        mm_abt<HS>(dP, Vs + warp * 16 * LDH, LDH, Gs, LDH);     /* dP^T = V dO^T */
        __syncwarp();
        for (int j = 0; j < 32; j++) {
            int c = half * 32 + j, qi = q0 + c;
            bool ok = qi >= kj && qi < T && kj < T;
            float p = ok ? __expf(S[r * LDS + c] - ls[c]) : 0.0f;
            P[r * LDP + c] = __float2bfloat16(p);
            dS[r * LDP + c] = __float2bfloat16(p * (dP[r * LDS + c] - ds[c]));
        }
        __syncwarp();
        mm_ab_acc<HS>(dv, P, Gs);  /* dV += P^T dO */
        mm_ab_acc<HS>(dk, dS, Qs); /* dK += dS^T (Q * scale) */
    }
    write_rows<HS>(dqkv + (size_t)b * T * C3, C3, C + h * HS, k0 + warp * 16, T, dk, S, 1.0f);
    write_rows<HS>(dqkv + (size_t)b * T * C3, C3, 2 * C + h * HS, k0 + warp * 16, T, dv, S, 1.0f);
}

/* ---- dq: a block owns 64 queries ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_dq_kernel(float *dqkv, const float *dout, const float *qkv,
                                                       const float *lse, const float *D, int T, int C,
                                                       int NH) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int LDH = HS + 8;
    bf16 *Qs = (bf16 *)smem, *Gs = Qs + FB * LDH, *Ks = Gs + FB * LDH, *Vs = Ks + FB * LDH;
    float *Sw = (float *)(Vs + FB * LDH), *dPw = Sw + 4 * 16 * LDS;
    bf16 *dSw = (bf16 *)(dPw + 4 * 16 * LDS);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int q0 = (gridDim.x - 1 - blockIdx.x) * FB;
    const float *base = qkv + (size_t)b * T * C3, *gbase = dout + (size_t)b * T * C;
    float scale = rsqrtf((float)HS);
    stage<HS>(Qs, base, q0, T, C3, h * HS, scale);
    stage<HS>(Gs, gbase, q0, T, C, h * HS, 1.0f);
    float *S = Sw + warp * 16 * LDS, *dP = dPw + warp * 16 * LDS;
    bf16 *dS = dSw + warp * 16 * LDP;
    int r = lane / 2, half = lane % 2, qi = q0 + warp * 16 + r;
    float li = qi < T ? lse[(size_t)bh * T + qi] : 0.0f, di = qi < T ? D[(size_t)bh * T + qi] : 0.0f;
    frag_c dq[HS / 16];
#pragma unroll
    for (int db = 0; db < HS / 16; db++) wmma::fill_fragment(dq[db], 0.0f);
    int kend = min(T, q0 + FB);
    for (int k0 = 0; k0 < kend; k0 += FB) {
        __syncthreads();
        stage<HS>(Ks, base, k0, T, C3, C + h * HS, 1.0f);
        stage<HS>(Vs, base, k0, T, C3, 2 * C + h * HS, 1.0f);
        __syncthreads();
        mm_abt<HS>(S, Qs + warp * 16 * LDH, LDH, Ks, LDH);  /* S = (Q * scale) K^T */
        mm_abt<HS>(dP, Gs + warp * 16 * LDH, LDH, Vs, LDH); /* dP = dO V^T */
        __syncwarp();
        for (int j = 0; j < 32; j++) {
            int c = half * 32 + j, kj = k0 + c;
            bool ok = kj <= qi && kj < T && qi < T;
            float p = ok ? __expf(S[r * LDS + c] - li) : 0.0f;
            dS[r * LDP + c] = __float2bfloat16(p * (dP[r * LDS + c] - di));
        }
        __syncwarp();
        mm_ab_acc<HS>(dq, dS, Ks); /* dQ += dS K (times scale at the end) */
    }
    write_rows<HS>(dqkv + (size_t)b * T * C3, C3, h * HS, q0 + warp * 16, T, dq, S, scale);
}

/* shared-memory bytes of each kernel, as carved above */
static size_t fwd_smem(int HS) { return 3 * FB * (HS + 8) * 2 + 4 * 16 * LDS * 4 + 4 * 16 * LDP * 2 + 4 * 16 * (HS + 4) * 4; }
static size_t dkv_smem(int HS) { return 4 * FB * (HS + 8) * 2 + 2 * 4 * 16 * LDS * 4 + 2 * 4 * 16 * LDP * 2 + 2 * FB * 4; }
static size_t dq_smem(int HS) { return 4 * FB * (HS + 8) * 2 + 2 * 4 * 16 * LDS * 4 + 4 * 16 * LDP * 2; }

/* raises a kernel's dynamic shared-memory limit once */
#define SMEM_LIMIT(kernel, bytes)                                                                   \
    do {                                                                                            \
        static int done_;                                                                           \
        if (!done_) {                                                                               \
            CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,    \
                                            (int)(bytes)));                                         \
            done_ = 1;                                                                              \
        }                                                                                           \
    } while (0)

int cuda_flash_supported(int HS) { return HS == 32 || HS == 64 || HS == 128; }

template <int HS>
static void fwd(float *out, float *lse, const float *qkv, int B, int T, int C, int NH) {
    SMEM_LIMIT(flash_fwd_kernel<HS>, fwd_smem(HS));
    flash_fwd_kernel<HS><<<dim3(cdiv(T, FB), B * NH), 128, fwd_smem(HS), g_cuda.stream>>>(out, lse, qkv, T, C, NH);
    LAUNCH_CHECK();
}

template <int HS>
static void bwd(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                int B, int T, int C, int NH) {
    SMEM_LIMIT(flash_dkv_kernel<HS>, dkv_smem(HS));
    SMEM_LIMIT(flash_dq_kernel<HS>, dq_smem(HS));
    dim3 grid(cdiv(T, FB), B * NH);
    flash_dkv_kernel<HS><<<grid, 128, dkv_smem(HS), g_cuda.stream>>>(dqkv, dout, qkv, lse, D, T, C, NH);
    LAUNCH_CHECK();
    flash_dq_kernel<HS><<<grid, 128, dq_smem(HS), g_cuda.stream>>>(dqkv, dout, qkv, lse, D, T, C, NH);
    LAUNCH_CHECK();
}

void cuda_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH) {
    switch (C / NH) {
    case 32: fwd<32>(out, lse, qkv, B, T, C, NH); break;
    case 64: fwd<64>(out, lse, qkv, B, T, C, NH); break;
    default: fwd<128>(out, lse, qkv, B, T, C, NH); break;
    }
}

void cuda_flash_backward(float *dqkv, const float *dout, const float *qkv, const float *lse,
                         const float *D, int B, int T, int C, int NH) {
    switch (C / NH) {
    case 32: bwd<32>(dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    case 64: bwd<64>(dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    default: bwd<128>(dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    }
}
