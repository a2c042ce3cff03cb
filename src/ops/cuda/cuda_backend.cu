/* cuda_backend.cu - the CUDA backend's memory, device set-up and ops table,
 * and the two symbols the plugin exports (see src/ops/backend.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

extern "C" {
#include "util/common.h"
}

cuda_state_t g_cuda;

void cuda_fatal(const char *what, const char *detail, const char *file, int line) {
    fprintf(stderr, "minigpt: CUDA error: %s (%s at %s:%d)\n", detail, what, file, line);
    exit(1);
}

/* Live allocations, so that the memory figures are measured: few and
 * large (parameters, moments, one activation block, a KV cache), so a
 * short table scanned linearly is enough. */
#define MAX_ALLOCS 256
static struct {
    void *p;
    size_t bytes;
} allocs[MAX_ALLOCS];
static size_t in_use, peak;

/* cudaMalloc, freeing the retired bf16 copies first if it must */
static cudaError_t malloc_or_release(void **p, size_t bytes) {
    if (cudaMalloc(p, bytes) == cudaSuccess) return cudaSuccess;
    cudaGetLastError(); /* clear the sticky out-of-memory error */
    if (!cuda_shadow_release()) return cudaErrorMemoryAllocation;
    return cudaMalloc(p, bytes);
}

/* the backend's own scratch buffers: out of memory is fatal */
void *cuda_scratch_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(malloc_or_release(&p, bytes ? bytes : 1));
    return p;
}

void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (malloc_or_release(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, g_cuda.stream));
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (!allocs[i].p) {
            allocs[i].p = p;
            allocs[i].bytes = bytes;
            in_use += bytes;
            if (in_use > peak) peak = in_use;
            return p;
        }
    cudaFree(p);
    return NULL;
}

void cuda_free(void *p) {
    if (!p) return;
    cuda_shadow_forget_all(); /* the memory may come back for something else */
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].p == p) {
            in_use -= allocs[i].bytes;
            allocs[i].p = NULL;
        }
    CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream)); /* work may still use it */
    CUDA_CHECK(cudaFree(p));
}

static void cu_upload(void *dst, const void *src, size_t bytes) {
    /* from pageable memory: returns once src has been staged */
    cuda_shadow_forget(dst, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_cuda.stream));
}
static void cu_download(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_cuda.stream));
    CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream));
}
static void cu_zero(void *p, size_t bytes) {
    cuda_shadow_forget(p, bytes);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, g_cuda.stream));
}
static void cu_synchronize(void) { CUDA_CHECK(cudaStreamSynchronize(g_cuda.stream)); }

static void cu_memory(size_t *used, size_t *hi, size_t *capacity) {
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    *used = in_use;
    *hi = peak;
    *capacity = total;
}

/* ---- graphs: a decoding step recorded once, replayed per token ---- */
static void cu_graph_begin(void) {
    CUDA_CHECK(cudaStreamBeginCapture(g_cuda.stream, cudaStreamCaptureModeThreadLocal));
}
static void *cu_graph_end(void) {
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaStreamEndCapture(g_cuda.stream, &graph);
    cuda_shadow_forget_all(); /* what was recorded has not run */
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* recording failed: the caller runs the calls directly */
        return NULL;
    }
    return exec;
}
static void cu_graph_launch(void *g) {
    cuda_shadow_forget_all(); /* its writes are not seen one by one */
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)g, g_cuda.stream));
}
static void cu_graph_free(void *g) { cudaGraphExecDestroy((cudaGraphExec_t)g); }

static cudaDeviceProp prop;
static const char *cu_describe(void) {
    static char line[1024];
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    snprintf(line, sizeof line, "%s (%.1f GiB, %d SMs, CUDA runtime %d.%d, driver %d.%d), %s matmuls",
             prop.name, prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount, rt / 1000,
             rt % 1000 / 10, drv / 1000, drv % 1000 / 10,
             g_cuda.compute == CUBLAS_COMPUTE_32F ? "fp32" : "bf16 tensor-core");
    return line;
}

static const ops_backend_t cuda_backend = {
    .name = "cuda",
    .describe = cu_describe,
    .synchronize = cu_synchronize,
    .memory = cu_memory,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cu_upload,
    .download = cu_download,
    .zero = cu_zero,
    .embed_forward = cuda_embed_forward,
    .embed_backward = cuda_embed_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .attention_state_floats = cuda_attention_state_floats,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .attention_cached = cuda_attention_cached,
    .gelu_forward = cuda_gelu_forward,
    .gelu_backward = cuda_gelu_backward,
    .add = cuda_add,
    .xent_forward_backward = cuda_xent_forward_backward,
    .sq_norm = cuda_sq_norm,
    .adamw = cuda_adamw,
    /* fused (ops.h): the LayerNorm backward already takes dw and db in its
     * one pass over the rows */
    .residual_layernorm_forward = cuda_residual_layernorm_forward,
    .residual_layernorm_backward = cuda_layernorm_backward,
    .matmul_bias_gelu_forward = cuda_matmul_bias_gelu_forward,
    .gelu_bias_backward = cuda_gelu_bias_backward,
    .adamw_clip = NULL, /* per-tensor AdamW launches: a fraction of a millisecond */
    .embed_forward_at = cuda_embed_forward_at,
    .attention_cached_at = cuda_attention_cached_at,
    .argmax = cuda_argmax,
    .sample = cuda_sample,
    .graph_begin = cu_graph_begin,
    .graph_end = cu_graph_end,
    .graph_launch = cu_graph_launch,
    .graph_free = cu_graph_free,
    /* int8 weights: the CPU's decoding option only (ops.h) */
    .q8_make = NULL,
    .q8_matmul_forward = NULL,
    .q8_bytes = NULL,
    .q8_free = NULL,
    /* batched decoding: cuBLAS matmul_forward (rows as in any product) */
    .matmul_rows_forward = NULL,
    /* the MLPs besides GELU (--mlp relu2|swiglu): CPU only for now; a model
     * that needs them is refused at creation (gpt_backend_check) */
    .mlp_act_forward = NULL,
    .mlp_act_backward = NULL,
    .mlp_act_bias_backward = NULL,
    .matmul_bias_act_forward = NULL,
};

/* the layout version of the table above (ops.h, OPS_ABI_VERSION), checked
 * by src/ops/backend.c before it asks for the table */
extern "C" __attribute__((visibility("default"))) int mg_cuda_abi(void) { return OPS_ABI_VERSION; }

/* 0 when a GPU is usable; err says why not */
extern "C" __attribute__((visibility("default"))) int mg_cuda_probe(char *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return mg_fail(err, "no usable GPU (%s)", cudaGetErrorString(e));
    if (n < 1) return mg_fail(err, "no GPU found");
    return 0;
}

/* The backend on GPU 0 at the given precision (NULL: bf16). table_size is
 * the caller's sizeof(ops_backend_t): a plugin built against another
 * ops.h would hand over a table of another layout. */
extern "C" __attribute__((visibility("default"))) const ops_backend_t *
mg_cuda_backend(const char *precision, size_t table_size, char *err) {
    if (table_size != sizeof(ops_backend_t))
        return mg_fail(err, "minigpt_cuda.so was built against another src/ops/ops.h: rebuild it"),
               (const ops_backend_t *)NULL;
    if (mg_cuda_probe(err) != 0) return NULL;
    int bf16 = !precision || strcmp(precision, "bf16") == 0;
    if (!g_cuda.lt) {
        if (cudaSetDevice(0) != cudaSuccess || cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
            return mg_fail(err, "cannot open GPU 0"), (const ops_backend_t *)NULL;
        if (cublasLtCreate(&g_cuda.lt) != CUBLAS_STATUS_SUCCESS)
            return mg_fail(err, "cannot start cuBLASLt"), (const ops_backend_t *)NULL;
        g_cuda.sms = prop.multiProcessorCount;
        /* one stream of our own (not the legacy default one), so that a
         * decoding step can be captured into a CUDA graph */
        if (cudaStreamCreateWithFlags(&g_cuda.stream, cudaStreamNonBlocking) != cudaSuccess)
            return mg_fail(err, "cannot create a CUDA stream"), (const ops_backend_t *)NULL;
        g_cuda.workspace_bytes = 32 << 20;
        if (cudaMalloc(&g_cuda.workspace, g_cuda.workspace_bytes) != cudaSuccess ||
            cudaMalloc(&g_cuda.reduce, sizeof(double)) != cudaSuccess)
            return mg_fail(err, "out of GPU memory for the cuBLASLt workspace"),
                   (const ops_backend_t *)NULL;
    }
    g_cuda.compute = bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    return &cuda_backend;
}
