/* cuda_flash.cu - flash attention on the tensor cores (--precision bf16).
 *
 * Same contract and state as the float32 kernels of cuda_attention.cu (one
 * log-sum-exp per query row, no (T,T) matrix in memory), but every product
 * runs as bf16 x bf16 -> fp32 on the tensor cores with mma.sync m16n8k16,
 * as FlashAttention-2 does: q, k, v and dout are rounded to bf16 as tiles
 * are staged in shared memory, operands reach the tensor cores through
 * ldmatrix, and scores, probabilities and accumulators never leave the
 * registers. An accumulator fragment of S (16 x 16) has the layout of an
 * A operand, so P = softmax(S) feeds P V without a trip through memory.
 *
 * Each call first rewrites its inputs as bf16 in head-major order
 * (B,NH,T,HS), q times 1/sqrt(HS) (one memory-bound pass), so that a tile
 * is one contiguous block that cp.async copies into shared memory while
 * the tensor cores work on the previous one (two buffers). The forward's
 * rewrite of q, k, v is kept for the backward (cuda_shadow.cu) while
 * memory allows; the backward rewrites dout.
 *
 * A block has 4 warps; a warp owns 16 rows of the block's 64 and walks
 * tiles of BN columns (64; 32 for head size 128, to stay in registers):
 *   forward  64 queries; key tiles up to the diagonal; per tile
 *            S = Q K^T, online softmax in fp32, O = O * corr + P V;
 *   dk, dv   64 keys; query tiles from the diagonal on; per tile
 *            S^T = K Q^T, dP^T = V dO^T, P^T, dS^T = P^T (dP^T - D),
 *            dV += P^T dO, dK += dS^T Q;
 *   dq       64 queries; key tiles up to the diagonal; per tile
 *            S, dP = dO V^T, dS, dQ += dS K.
 * dq has its own kernel (recomputing S and dP) instead of atomics.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, lane = 4 g + t): A holds rows
 * g and g+8, columns 2t, 2t+1 (+8); B holds k rows 2t, 2t+1 (+8) of
 * column g; C holds rows g, g+8, columns 2t, 2t+1. */
#include <cuda_bf16.h>
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

#define BM 64 /* rows a block owns: 16 per warp */
#define FULL 0xffffffffu

/* columns per inner tile: a 16 x BN score tile and a 16 x HS output tile
 * in fp32 registers per warp */
template <int HS> struct tile_cols { static const int n = HS >= 128 ? 32 : 64; };

/* ---- tensor-core primitives ---- */
__device__ inline uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ inline void ldsm_x4(uint32_t *r, const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ inline void ldsm_x4_trans(uint32_t *r, const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
/* c (16x8, fp32) += a (16x16, bf16) b (16x8, bf16) */
__device__ inline void mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ inline uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* A fragments of a 16 x 16KC bf16 block (row-major, stride LD) */
template <int KC, int LD>
__device__ inline void load_a(uint32_t (*f)[4], const bf16 *a) {
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int kk = 0; kk < KC; kk++) ldsm_x4(f[kk], a + (lane & 15) * LD + kk * 16 + (lane >> 4) * 8);
}
/* acc (16 x 8NT) += A (16 x 16KC, fragments) . B^T, B (8NT x 16KC) row-major */
template <int KC, int NT, int LD>
__device__ inline void mma_abt(float (*acc)[4], const uint32_t (*af)[4], const bf16 *b) {
    int lane = threadIdx.x % 32;
    const bf16 *p = b + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < KC; kk++)
#pragma unroll
        for (int nb = 0; nb < NT / 2; nb++) {
            uint32_t r[4];
            ldsm_x4(r, p + nb * 16 * LD + kk * 16);
            mma(acc[2 * nb], af[kk], r[0], r[1]);
            mma(acc[2 * nb + 1], af[kk], r[2], r[3]);
        }
}
/* acc (16 x 8NT) += A (16 x 16KC, fragments) . B, B (16KC x 8NT) row-major */
template <int KC, int NT, int LD>
__device__ inline void mma_ab(float (*acc)[4], const uint32_t (*af)[4], const bf16 *b) {
    int lane = threadIdx.x % 32;
    const bf16 *p = b + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
#pragma unroll
    for (int kk = 0; kk < KC; kk++)
#pragma unroll
        for (int nb = 0; nb < NT / 2; nb++) {
            uint32_t r[4];
            ldsm_x4_trans(r, p + kk * 16 * LD + nb * 16);
            mma(acc[2 * nb], af[kk], r[0], r[1]);
            mma(acc[2 * nb + 1], af[kk], r[2], r[3]);
        }
}
/* accumulator fragments (16 x 16KC, fp32) -> A fragments (bf16) */
template <int KC>
__device__ inline void to_a(uint32_t (*f)[4], const float (*c)[4]) {
#pragma unroll
    for (int kk = 0; kk < KC; kk++) {
        f[kk][0] = pack(c[2 * kk][0], c[2 * kk][1]);
        f[kk][1] = pack(c[2 * kk][2], c[2 * kk][3]);
        f[kk][2] = pack(c[2 * kk + 1][0], c[2 * kk + 1][1]);
        f[kk][3] = pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
    }
}
template <int N>
__device__ inline void zero(float (*c)[4]) {
#pragma unroll
    for (int i = 0; i < N; i++) c[i][0] = c[i][1] = c[i][2] = c[i][3] = 0.0f;
}

/* ---- asynchronous copies into shared memory ---- */
__device__ inline void cp_async16(void *dst, const void *src, bool valid) {
    /* src-size 0: 16 bytes of zeros, nothing read */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ inline void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N> __device__ inline void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Starts copying rows r0..r0+ROWS-1 (zeros past T) of one head's (T,HS)
 * bf16 slice into a tile of stride HS+8. The padding of 8 puts the 8 rows
 * an ldmatrix reads in distinct banks. */
template <int HS, int ROWS>
__device__ inline void load_tile(bf16 *dst, const bf16 *src, int r0, int T) {
    for (int idx = threadIdx.x; idx < ROWS * HS / 8; idx += blockDim.x) {
        int j = idx / (HS / 8), c = idx % (HS / 8), r = r0 + j;
        cp_async16(dst + j * (HS + 8) + c * 8, src + (size_t)(r < T ? r : 0) * HS + c * 8, r < T);
    }
}

/* Writes a warp's 16 x HS accumulator, times f, to rows row0 + g (+8)
 * (valid while < T) at channel offset off of a (.., stride) fp32 tensor,
 * and to its bf16 copy dst16 (same layout) unless NULL. */
template <int HS>
__device__ inline void write_rows(float *dst, bf16 *dst16, int stride, int off, int row0, int T,
                                  const float (*acc)[4], float f) {
    int lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = row0 + g + 8 * i;
        if (r >= T) continue;
        size_t at = (size_t)r * stride + off + 2 * t;
#pragma unroll
        for (int d = 0; d < HS / 8; d++) {
            float2 v = make_float2(acc[d][2 * i] * f, acc[d][2 * i + 1] * f);
            *reinterpret_cast<float2 *>(dst + at + d * 8) = v;
            if (dst16) *reinterpret_cast<uint32_t *>(dst16 + at + d * 8) = pack(v.x, v.y);
        }
    }
}

/* ---- forward ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_fwd_kernel(float *out, bf16 *out16, float *lse, const bf16 *heads,
                                                        int B, int T, int C, int NH) {
    const int BN = tile_cols<HS>::n, LD = HS + 8;
    extern __shared__ __align__(16) bf16 smem[];
    /* two buffers each of K and V tiles: buffer i at + i * BN * LD */
    bf16 *Qs = smem, *Kb = Qs + BM * LD, *Vb = Kb + 2 * BN * LD;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int q0 = (gridDim.x - 1 - blockIdx.x) * BM; /* the longest rows first */
    size_t plane = (size_t)B * NH * T * HS, head = (size_t)bh * T * HS;
    const bf16 *Q = heads + head, *K = Q + plane, *V = K + plane;
    int wrow = q0 + warp * 16, kend = min(T, q0 + BM), ntiles = (kend + BN - 1) / BN;
    load_tile<HS, BM>(Qs, Q, q0, T);
    load_tile<HS, BN>(Kb, K, 0, T);
    load_tile<HS, BN>(Vb, V, 0, T);
    cp_commit();
    uint32_t qf[HS / 16][4];
    float o[HS / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    zero<HS / 8>(o);
    for (int j = 0; j < ntiles; j++) {
        int k0 = j * BN, cur = j & 1;
        if (j + 1 < ntiles) { /* the next tile streams in during this one */
            load_tile<HS, BN>(Kb + (cur ^ 1) * BN * LD, K, k0 + BN, T);
            load_tile<HS, BN>(Vb + (cur ^ 1) * BN * LD, V, k0 + BN, T);
            cp_commit();
            cp_wait<1>();
        } else
            cp_wait<0>();
        __syncthreads();
        if (j == 0) load_a<HS / 16, LD>(qf, Qs + warp * 16 * LD);
        float s[BN / 8][4];
        zero<BN / 8>(s);
        mma_abt<HS / 16, BN / 8, LD>(s, qf, Kb + cur * BN * LD);
        if (k0 + BN > wrow || k0 + BN > T) /* the diagonal or the end: mask */
#pragma unroll
            for (int jj = 0; jj < BN / 8; jj++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = wrow + g + 8 * (e >> 1), c = k0 + jj * 8 + 2 * t + (e & 1);
                    if (c > r || c >= T) s[jj][e] = -INFINITY;
                }
        /* online softmax; a row's four lanes (t) share its maximum. Key 0
         * is in every row's first tile, so m is finite from then on. */
        float corr[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float mt = m[i];
#pragma unroll
            for (int jj = 0; jj < BN / 8; jj++) mt = fmaxf(mt, fmaxf(s[jj][2 * i], s[jj][2 * i + 1]));
            mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 2));
            corr[i] = __expf(m[i] - mt);
            m[i] = mt;
            l[i] *= corr[i];
        }
#pragma unroll
        for (int jj = 0; jj < BN / 8; jj++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = __expf(s[jj][e] - m[e >> 1]);
                s[jj][e] = p;
                l[e >> 1] += p; /* this lane's columns; the row sum is taken at the end */
            }
#pragma unroll
        for (int d = 0; d < HS / 8; d++) {
            o[d][0] *= corr[0], o[d][1] *= corr[0];
            o[d][2] *= corr[1], o[d][3] *= corr[1];
        }
        uint32_t pf[BN / 16][4];
        to_a<BN / 16>(pf, s);
        mma_ab<BN / 16, HS / 8, LD>(o, pf, Vb + cur * BN * LD);
        __syncthreads(); /* the buffer is refilled two tiles on */
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(FULL, l[i], 1);
        l[i] += __shfl_xor_sync(FULL, l[i], 2);
    }
    int r0 = wrow + g;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float inv = 1.0f / l[i];
#pragma unroll
        for (int d = 0; d < HS / 8; d++) o[d][2 * i] *= inv, o[d][2 * i + 1] *= inv;
        if (t == 0 && r0 + 8 * i < T) lse[(size_t)bh * T + r0 + 8 * i] = m[i] + logf(l[i]);
    }
    write_rows<HS>(out + (size_t)b * T * C, out16 ? out16 + (size_t)b * T * C : NULL, C, h * HS, wrow, T, o,
                   1.0f);
}

/* lse and D of query rows q0..q0+BN-1 into shared memory (0 past T) */
template <int BN>
__device__ inline void load_rows(float *ls, float *ds, const float *lse, const float *D, int q0, int T) {
    int i = threadIdx.x;
    if (i < BN) {
        ls[i] = q0 + i < T ? lse[q0 + i] : 0.0f;
        ds[i] = q0 + i < T ? D[q0 + i] : 0.0f;
    }
}

/* ---- dk, dv: a block owns 64 keys ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_dkv_kernel(float *dqkv, bf16 *dqkv16, const bf16 *heads,
                                                        const bf16 *dheads,
                                                        const float *lse, const float *D, int B, int T,
                                                        int C, int NH) {
    const int BN = tile_cols<HS>::n, LD = HS + 8;
    extern __shared__ __align__(16) bf16 smem[];
    bf16 *Ks = smem, *Vs = Ks + BM * LD;
    /* two buffers each of Q and dO tiles (+ i * BN * LD), lse and D (+ i * BN) */
    bf16 *Qb = Vs + BM * LD, *Gb = Qb + 2 * BN * LD;
    float *lb = (float *)(Gb + 2 * BN * LD), *db = lb + 2 * BN;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int k0 = blockIdx.x * BM; /* key block 0 sees every query: first */
    size_t plane = (size_t)B * NH * T * HS, head = (size_t)bh * T * HS;
    const bf16 *Q = heads + head, *K = Q + plane, *V = K + plane, *G = dheads + head;
    lse += (size_t)bh * T, D += (size_t)bh * T;
    int wkey = k0 + warp * 16, ntiles = (T - k0 + BN - 1) / BN;
    load_tile<HS, BM>(Ks, K, k0, T);
    load_tile<HS, BM>(Vs, V, k0, T);
    load_tile<HS, BN>(Qb, Q, k0, T);
    load_tile<HS, BN>(Gb, G, k0, T);
    cp_commit();
    load_rows<BN>(lb, db, lse, D, k0, T);
    float dk[HS / 8][4], dv[HS / 8][4];
    zero<HS / 8>(dk);
    zero<HS / 8>(dv);
    for (int j = 0; j < ntiles; j++) {
        int q0 = k0 + j * BN, cur = j & 1;
        if (j + 1 < ntiles) {
            load_tile<HS, BN>(Qb + (cur ^ 1) * BN * LD, Q, q0 + BN, T);
            load_tile<HS, BN>(Gb + (cur ^ 1) * BN * LD, G, q0 + BN, T);
            cp_commit();
            load_rows<BN>(lb + (cur ^ 1) * BN, db + (cur ^ 1) * BN, lse, D, q0 + BN, T);
            cp_wait<1>();
        } else
            cp_wait<0>();
        __syncthreads();
        float s[BN / 8][4], dp[BN / 8][4];
        zero<BN / 8>(s);
        zero<BN / 8>(dp);
        {
            uint32_t af[HS / 16][4];
            load_a<HS / 16, LD>(af, Ks + warp * 16 * LD);
            mma_abt<HS / 16, BN / 8, LD>(s, af, Qb + cur * BN * LD); /* S^T (16 keys x BN queries) */
            load_a<HS / 16, LD>(af, Vs + warp * 16 * LD);
            mma_abt<HS / 16, BN / 8, LD>(dp, af, Gb + cur * BN * LD); /* dP^T = V dO^T */
        }
        bool edge = q0 < wkey + 16 || q0 + BN > T || wkey + 16 > T;
        const float *lc = lb + cur * BN, *dc = db + cur * BN;
#pragma unroll
        for (int jj = 0; jj < BN / 8; jj++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int c = jj * 8 + 2 * t + (e & 1), kj = wkey + g + 8 * (e >> 1), qi = q0 + c;
                float p = __expf(s[jj][e] - lc[c]);
                if (edge && (qi < kj || qi >= T || kj >= T)) p = 0.0f;
                s[jj][e] = p;
                dp[jj][e] = p * (dp[jj][e] - dc[c]);
            }
        uint32_t pf[BN / 16][4];
        to_a<BN / 16>(pf, s);
        mma_ab<BN / 16, HS / 8, LD>(dv, pf, Gb + cur * BN * LD); /* dV += P^T dO */
        to_a<BN / 16>(pf, dp);
        mma_ab<BN / 16, HS / 8, LD>(dk, pf, Qb + cur * BN * LD); /* dK += dS^T (Q * scale) */
        __syncthreads();
    }
    float *dst = dqkv + (size_t)b * T * C3;
    bf16 *dst16 = dqkv16 ? dqkv16 + (size_t)b * T * C3 : NULL;
    write_rows<HS>(dst, dst16, C3, C + h * HS, wkey, T, dk, 1.0f);
    write_rows<HS>(dst, dst16, C3, 2 * C + h * HS, wkey, T, dv, 1.0f);
}

/* ---- dq: a block owns 64 queries ---- */
template <int HS>
__global__ __launch_bounds__(128) void flash_dq_kernel(float *dqkv, bf16 *dqkv16, const bf16 *heads,
                                                       const bf16 *dheads,
                                                       const float *lse, const float *D, int B, int T,
                                                       int C, int NH) {
    const int BN = tile_cols<HS>::n, LD = HS + 8;
    extern __shared__ __align__(16) bf16 smem[];
    bf16 *Qs = smem, *Gs = Qs + BM * LD;
    bf16 *Kb = Gs + BM * LD, *Vb = Kb + 2 * BN * LD; /* two buffers each, + i * BN * LD */
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
    int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
    size_t plane = (size_t)B * NH * T * HS, head = (size_t)bh * T * HS;
    const bf16 *Q = heads + head, *K = Q + plane, *V = K + plane, *G = dheads + head;
    int wrow = q0 + warp * 16, kend = min(T, q0 + BM), ntiles = (kend + BN - 1) / BN;
    load_tile<HS, BM>(Qs, Q, q0, T);
    load_tile<HS, BM>(Gs, G, q0, T);
    load_tile<HS, BN>(Kb, K, 0, T);
    load_tile<HS, BN>(Vb, V, 0, T);
    cp_commit();
    float li[2], di[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = wrow + g + 8 * i;
        li[i] = r < T ? lse[(size_t)bh * T + r] : 0.0f;
        di[i] = r < T ? D[(size_t)bh * T + r] : 0.0f;
    }
    float dq[HS / 8][4];
    zero<HS / 8>(dq);
    for (int j = 0; j < ntiles; j++) {
        int k0 = j * BN, cur = j & 1;
        if (j + 1 < ntiles) {
            load_tile<HS, BN>(Kb + (cur ^ 1) * BN * LD, K, k0 + BN, T);
            load_tile<HS, BN>(Vb + (cur ^ 1) * BN * LD, V, k0 + BN, T);
            cp_commit();
            cp_wait<1>();
        } else
            cp_wait<0>();
        __syncthreads();
        float s[BN / 8][4], dp[BN / 8][4];
        zero<BN / 8>(s);
        zero<BN / 8>(dp);
        {
            uint32_t af[HS / 16][4];
            load_a<HS / 16, LD>(af, Qs + warp * 16 * LD);
            mma_abt<HS / 16, BN / 8, LD>(s, af, Kb + cur * BN * LD); /* S = (Q * scale) K^T */
            load_a<HS / 16, LD>(af, Gs + warp * 16 * LD);
            mma_abt<HS / 16, BN / 8, LD>(dp, af, Vb + cur * BN * LD); /* dP = dO V^T */
        }
        bool edge = k0 + BN > wrow || k0 + BN > T || wrow + 16 > T;
#pragma unroll
        for (int jj = 0; jj < BN / 8; jj++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = e >> 1, qi = wrow + g + 8 * i, kj = k0 + jj * 8 + 2 * t + (e & 1);
                float p = __expf(s[jj][e] - li[i]);
                if (edge && (kj > qi || kj >= T || qi >= T)) p = 0.0f;
                dp[jj][e] = p * (dp[jj][e] - di[i]);
            }
        uint32_t pf[BN / 16][4];
        to_a<BN / 16>(pf, dp);
        mma_ab<BN / 16, HS / 8, LD>(dq, pf, Kb + cur * BN * LD); /* dQ += dS K (times scale at the end) */
        __syncthreads();
    }
    write_rows<HS>(dqkv + (size_t)b * T * C3, dqkv16 ? dqkv16 + (size_t)b * T * C3 : NULL, C3, h * HS, wrow, T, dq,
                   rsqrtf((float)HS));
}

/* (B,T,stride) fp32, parts blocks of C channels from channel 0 (q, k, v or
 * dout) -> bf16 (parts,B,NH,T,HS); part 0 times scale0 */
__global__ void to_heads_kernel(bf16 *dst, const float *src, int B, int T, int C, int NH, int stride,
                                int parts, float scale0) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, c4 = C / 4;
    if (i >= (size_t)parts * B * T * c4) return;
    int c = (int)(i % c4) * 4;
    size_t row = i / c4; /* (p, b, t) */
    int tt = (int)(row % T), b = (int)(row / T % B), p = (int)(row / T / B), HS = C / NH;
    float4 x = *reinterpret_cast<const float4 *>(src + ((size_t)b * T + tt) * stride + (size_t)p * C + c);
    float f = p == 0 ? scale0 : 1.0f;
    size_t o = ((((size_t)p * B + b) * NH + c / HS) * T + tt) * HS + c % HS;
    *reinterpret_cast<uint2 *>(dst + o) = make_uint2(pack(x.x * f, x.y * f), pack(x.z * f, x.w * f));
}

/* the layout of a head-major copy besides its length */
static uint64_t heads_shape(int B, int T, int NH) { return ((uint64_t)B << 40) | ((uint64_t)T << 16) | (uint64_t)NH; }

/* scratch for head-major copies (grown on demand, kept) */
static bf16 *scratch(size_t n) {
    static bf16 *buf;
    static size_t len;
    if (n > len) {
        CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream));
        if (buf) CUDA_CHECK(cudaFree(buf));
        buf = (bf16 *)cuda_scratch_alloc(n * sizeof(bf16));
        len = n;
    }
    return buf;
}
/* parts blocks of C channels of src (B,T,stride) -> dst (parts,B,NH,T,HS) */
static void to_heads(bf16 *dst, const float *src, int B, int T, int C, int NH, int stride, int parts,
                     float scale0) {
    size_t quads = (size_t)parts * B * T * C / 4;
    to_heads_kernel<<<cdiv(quads, 256), 256, 0, g_cuda.stream>>>(dst, src, B, T, C, NH, stride, parts, scale0);
    LAUNCH_CHECK();
}

int cuda_flash_supported(int HS) { return HS == 32 || HS == 64 || HS == 128; }

/* shared-memory bytes of each kernel, as carved above (dynamic: more than
 * the 48 KB a kernel gets by default) */
template <int HS> static size_t tile_bytes(int rows) { return (size_t)rows * (HS + 8) * sizeof(bf16); }
template <int HS> static size_t fwd_smem() { return tile_bytes<HS>(BM + 4 * tile_cols<HS>::n); }
template <int HS> static size_t dkv_smem() {
    return tile_bytes<HS>(2 * BM + 4 * tile_cols<HS>::n) + 4 * tile_cols<HS>::n * sizeof(float);
}
template <int HS> static size_t dq_smem() { return tile_bytes<HS>(2 * BM + 4 * tile_cols<HS>::n); }

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

template <int HS>
static void fwd(float *out, float *lse, const float *qkv, int B, int T, int C, int NH) {
    /* q, k, v head-major: kept for the backward when memory allows */
    size_t n = (size_t)B * T * 3 * C;
    bf16 *heads = cuda_shadow_add(qkv, n, B * T, SHADOW_HEADS, heads_shape(B, T, NH));
    if (!heads) heads = scratch(n);
    to_heads(heads, qkv, B, T, C, NH, 3 * C, 3, rsqrtf((float)HS));
    bf16 *out16 = cuda_shadow_make(out, (size_t)B * T * C, B * T); /* for the proj matmul */
    SMEM_LIMIT(flash_fwd_kernel<HS>, fwd_smem<HS>());
    flash_fwd_kernel<HS><<<dim3(cdiv(T, BM), B * NH), 128, fwd_smem<HS>(), g_cuda.stream>>>(out, out16, lse,
                                                                                           heads, B, T, C, NH);
    LAUNCH_CHECK();
}

template <int HS>
static void bwd(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *D,
                int B, int T, int C, int NH) {
    size_t n = (size_t)B * T * 3 * C;
    const bf16 *heads = cuda_shadow_find(qkv, n, SHADOW_HEADS, heads_shape(B, T, NH)); /* the forward's, if kept */
    bf16 *dheads = scratch(heads ? n / 3 : n + n / 3);
    if (!heads) {
        to_heads(dheads, qkv, B, T, C, NH, 3 * C, 3, rsqrtf((float)HS));
        heads = dheads;
        dheads += n;
    }
    to_heads(dheads, dout, B, T, C, NH, C, 1, 1.0f);
    bf16 *dqkv16 = cuda_shadow_make(dqkv, (size_t)B * T * 3 * C, B * T); /* for the qkv matmul */
    SMEM_LIMIT(flash_dkv_kernel<HS>, dkv_smem<HS>());
    SMEM_LIMIT(flash_dq_kernel<HS>, dq_smem<HS>());
    dim3 grid(cdiv(T, BM), B * NH);
    flash_dkv_kernel<HS><<<grid, 128, dkv_smem<HS>(), g_cuda.stream>>>(dqkv, dqkv16, heads, dheads, lse, D, B, T,
                                                                       C, NH);
    LAUNCH_CHECK();
    flash_dq_kernel<HS><<<grid, 128, dq_smem<HS>(), g_cuda.stream>>>(dqkv, dqkv16, heads, dheads, lse, D, B, T, C,
                                                                     NH);
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
