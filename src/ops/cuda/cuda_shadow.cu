/* cuda_shadow.cu - bf16 copies ("shadows") of float32 activations for the
 * bf16 matmuls.
 *
 * Without them every large matmul converts its float32 operands to bf16 in
 * a memory-bound pass of its own (cuda_matmul.cu), and the backward
 * converts the forward's inputs a second time. Instead the kernel that
 * produces a buffer a matmul will read (LayerNorm, attention, the loss
 * gradient, the GELU and LayerNorm backwards) writes its bf16 copy in the
 * same pass, and the matmul takes that copy.
 *
 * A copy is valid for exactly the (pointer, length) it was made for, until
 * anything else writes that memory: every op forgets the copies its
 * outputs overlap, and a graph launch (whose writes are not seen here)
 * forgets them all. Copies are made only where a matmul would stage (bf16
 * precision, enough rows) and while a tenth of the GPU's memory stays
 * free; otherwise the matmul converts as before. The buffers are kept and
 * reused (a training step makes the same copies every step); an
 * allocation that fails frees those no longer valid and tries again.
 *
 * A copy has a kind: SHADOW_ROWS is the buffer as it is, in bf16;
 * SHADOW_HEADS is the attention's head-major rewrite of q, k, v, which the
 * forward makes and the backward would otherwise make again. */
#include "ops/cuda/cuda_common.cuh"

#define SHADOW_MAX 128

typedef struct {
    const float *p; /* the float32 buffer */
    size_t n;       /* its floats */
    int kind;       /* SHADOW_* */
    uint64_t shape; /* what else its layout depends on */
    bf16 *buf;      /* the copy */
    size_t cap;     /* bf16 capacity of buf */
    int valid;
} shadow_t;
static shadow_t tab[SHADOW_MAX];
static int ntab;

void cuda_shadow_forget(const void *p, size_t bytes) {
    const char *a = (const char *)p, *b = a + bytes;
    for (int i = 0; i < ntab; i++) {
        const char *s = (const char *)tab[i].p, *e = s + tab[i].n * sizeof(float);
        if (tab[i].valid && s < b && a < e) tab[i].valid = 0;
    }
}

void cuda_shadow_forget_all(void) {
    for (int i = 0; i < ntab; i++) tab[i].valid = 0;
}

bf16 *cuda_shadow_add(const float *p, size_t n, int rows, int kind, uint64_t shape) {
    for (int i = 0; i < ntab; i++)
        if (tab[i].p == p && tab[i].kind == kind) tab[i].valid = 0;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (!cuda_staging(rows) || cudaStreamIsCapturing(g_cuda.stream, &capturing) != cudaSuccess ||
        capturing != cudaStreamCaptureStatusNone) /* a recorded kernel writes nothing yet */
        return NULL;
    shadow_t *e = NULL;
    for (int i = 0; i < ntab && !e; i++) /* this buffer's own, else any spare one */
        if (tab[i].p == p && tab[i].kind == kind && tab[i].cap >= n) e = &tab[i];
    for (int i = 0; i < ntab && !e; i++)
        if (!tab[i].valid && tab[i].cap >= n) e = &tab[i];
    if (!e) {
        size_t free_b = 0, total = 0;
        /* room stays for a tenth of the GPU and for one conversion of this
         * size, which a consumer needs if a copy is refused later */
        if (ntab == SHADOW_MAX || cudaMemGetInfo(&free_b, &total) != cudaSuccess ||
            free_b < 2 * n * sizeof(bf16) + total / 10)
            return NULL;
        bf16 *buf = (bf16 *)cuda_alloc(n * sizeof(bf16));
        if (!buf) return NULL;
        e = &tab[ntab++];
        e->buf = buf;
        e->cap = n;
    }
    e->p = p;
    e->n = n;
    e->kind = kind;
    e->shape = shape;
    e->valid = 1;
    return e->buf;
}

bf16 *cuda_shadow_make(const float *p, size_t n, int rows) {
    cuda_shadow_forget(p, n * sizeof(float));
    return cuda_shadow_add(p, n, rows, SHADOW_ROWS, 0);
}

const bf16 *cuda_shadow_find(const float *p, size_t n, int kind, uint64_t shape) {
    for (int i = 0; i < ntab; i++)
        if (tab[i].valid && tab[i].p == p && tab[i].n == n && tab[i].kind == kind && tab[i].shape == shape)
            return tab[i].buf;
    return NULL;
}

int cuda_shadow_release(void) {
    int freed = 0, kept = 0;
    for (int i = 0; i < ntab; i++) {
        if (tab[i].valid) { /* a caller may hold it: kept */
            tab[kept++] = tab[i];
            continue;
        }
        cuda_free(tab[i].buf); /* waits for the stream */
        freed++;
    }
    ntab = kept;
    return freed > 0;
}
