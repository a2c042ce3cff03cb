/* cpu_backend.c - the CPU backend: host memory and the kernel table. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <cblas.h>

#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops.h"
#include "util/common.h"

static void *cpu_alloc(size_t bytes) { return mg_calloc(1, bytes ? bytes : 1); }
static void cpu_free(void *p) { mg_free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

static const char *cpu_describe(void) {
    static char line[160];
    snprintf(line, sizeof line, "CPU, %d threads (OpenMP), OpenBLAS %s kernels",
             omp_get_max_threads(), openblas_get_corename());
    return line;
}
static void cpu_synchronize(void) {}
static void cpu_memory(size_t *in_use, size_t *peak, size_t *capacity) {
    *in_use = mg_mem_current();
    *peak = mg_mem_peak();
    *capacity = 0;
}

static const ops_backend_t cpu_backend = {
    .name = "cpu",
    .describe = cpu_describe,
    .synchronize = cpu_synchronize,
    .memory = cpu_memory,
    .attention_state_floats = cpu_attention_state_floats,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .embed_forward = cpu_embed_forward,
    .embed_backward = cpu_embed_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_cached = cpu_attention_cached,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .add = cpu_add,
    .xent_forward_backward = cpu_xent_forward_backward,
    .sq_norm = cpu_sq_norm,
    .adamw = cpu_adamw,
    .residual_layernorm_forward = cpu_residual_layernorm_forward,
    .residual_layernorm_backward = cpu_residual_layernorm_backward,
    .matmul_bias_gelu_forward = cpu_matmul_bias_gelu_forward,
    .gelu_bias_backward = cpu_gelu_bias_backward,
    .adamw_clip = cpu_adamw_clip,
    .q8_make = cpu_q8_make,
    .q8_matmul_forward = cpu_q8_matmul_forward,
    .q8_bytes = cpu_q8_bytes,
    .q8_free = cpu_q8_free,
    .matmul_rows_forward = cpu_matmul_rows_forward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .residual_rmsnorm_forward = cpu_residual_rmsnorm_forward,
    .qk_forward = cpu_qk_forward,
    .qk_backward = cpu_qk_backward,
    .mlp_act_forward = cpu_mlp_act_forward,
    .mlp_act_backward = cpu_mlp_act_backward,
    .mlp_act_bias_backward = cpu_mlp_act_bias_backward,
    .matmul_bias_act_forward = cpu_matmul_bias_act_forward,
    .muon_scratch_floats = cpu_muon_scratch_floats,
    .muon_update = cpu_muon_update,
};

const ops_backend_t *ops_cpu(void) { return &cpu_backend; }

/* Flush denormals to zero (FTZ) and treat denormal inputs as zero (DAZ)
 * on every thread: tiny gradients late in training otherwise fall into
 * the slow microcode path and a step can take 4x as long. MXCSR is
 * per-thread, so each OpenMP thread (which also runs BLAS) sets its own. */
static void set_ftz_daz(void) {
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);
}

void ops_cpu_set_threads(int n_threads) {
    if (n_threads > 0) {
        omp_set_num_threads(n_threads);
        openblas_set_num_threads(n_threads);
    }
    set_ftz_daz();
}

/* OpenBLAS 0.3.21 (Debian 12) treats AMD Zen 4 as Haswell and runs its
 * AVX2 kernels there; it picks kernels once, when the library loads, from
 * OPENBLAS_CORETYPE, so the only way to change the choice is to set the
 * variable and start again. Measured on this project's 2-core Zen 4 machine:
 * one-thread sgemm 2048x768x256 at 96 GFLOP/s (Haswell) vs 193 (SkylakeX). */
static int amd_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_is("amd"); /* Intel parts are detected correctly */
}

/* libgomp's idle threads spin 300000 times (~3 ms) before they sleep. On
 * a machine where another program keeps a core busy, a thread that waits
 * at a barrier for one the scheduler has put aside burns the core that
 * thread needs: 2-thread decoding of tiny fell from ~2000 to 6 tokens/s,
 * and sleeping at once (OMP_WAIT_POLICY=PASSIVE) was fastest there. On a
 * quiet machine the spinning pays: `tiny` decodes at ~8000 tokens/s with
 * it and ~3750 passive (bench/RESULTS.md, "Beside a busy process"). So
 * minigpt looks at start: when the machine's 1-minute load average is 0.7
 * or more (about a core kept busy; an instant's runnable count would also
 * see the other programs of a pipeline starting), it waits passively; otherwise it spins 300000
 * times, libgomp's default, set explicitly because without the variable libgomp spins only 1000
 * times whenever it counts more threads than cores (measured here: `tiny` decoded at ~4000 tokens/s
 * unset, ~9000 with the variable). libgomp reads the variables in its constructor, before main,
 * hence the restart. */
static int machine_busy(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double load = 0.0;
    if (!f) return 0;
    int ok = fscanf(f, "%lf", &load) == 1;
    fclose(f);
    return ok && load >= 0.7; /* about one core kept busy over the last minute */
}

void ops_cpu_select_kernels(char **argv) {
    int again = 0;
    if (!getenv("OPENBLAS_CORETYPE") && amd_avx512())
        again |= setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        if (machine_busy())
            again |= setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;
        else /* libgomp's spin, also where it would throttle it to 1000 */
            again |= setenv("GOMP_SPINCOUNT", "300000", 1) == 0;
    }
    if (again) execv("/proc/self/exe", argv);
}

const char *ops_cpu_blas_info(void) {
    static char info[128];
    snprintf(info, sizeof info, "OpenBLAS, %s kernels", openblas_get_corename());
    return info;
}

int ops_cpu_threads(void) { return omp_get_max_threads(); }

static float *scratch;
static size_t scratch_len;

float *cpu_scratch(size_t nfloats) {
    if (nfloats > scratch_len) {
        float *p = mg_malloc(nfloats * sizeof(float));
        if (!p) return NULL;
        mg_free(scratch);
        scratch = p;
        scratch_len = nfloats;
    }
    return scratch;
}
