/* kv.h - incremental inference with a KV cache: feeding n tokens costs work
 * for those n only; earlier positions are read from the cache. One sequence
 * per state; kv_feed_batch steps several states at once. The layers
 * themselves are model/gpt_block.c's. */
#ifndef MG_KV_H
#define MG_KV_H

#include <stdint.h>

#include "infer/sample.h"
#include "model/gpt.h"

struct kv_state;
/* Optional tracing hook (educational mode), called inside kv_feed:
 * stage "embed" (layer -1, t = x after token + position embedding),
 * "attn" and "mlp" (layer l, t = the residual stream x after that
 * sublayer; seconds = the sublayer's wall time; during "attn" s->qkv holds
 * this layer's q,k,v for the fed rows and the layer's K cache is filled up
 * to s->pos + rows), "ln_f" (layer L, t = final LayerNorm of the last row).
 * t is a backend pointer of rows x cols floats: read it with
 * s->model->ops->download. s->pos is still the first fed position. */
typedef void (*kv_trace_fn)(void *ctx, const struct kv_state *s, int layer, const char *stage,
                            const float *t, int rows, int cols, double seconds);

typedef struct kv_state {
    gpt_model_t *model;                            /* borrowed */
    int pos;                                       /* tokens already in the cache */
    float *kcache, *vcache;                        /* (L, ctx, C) on the backend */
    float *x, *tmp, *ln, *qkv, *atty, *fch, *fchg; /* per-position scratch */
    float *logits;                                 /* (V) on the backend */
    int32_t *tok;        /* (ctx + 2) on the backend: the fed tokens (a graph step
                          * reads {token, pos}); tok[ctx + 1] the greedy next */
    float *host_logits;  /* (V) logits after the last fed token */
    float *scratch;      /* (2V) host scratch of sample_token_u */
    void *block;         /* the backend allocation behind all of the above */
    size_t block_bytes;  /* its size, for memory reports */
    void *graph;         /* the recorded one-token step, when the backend has graphs */
    void **q8;           /* NULL, or int8 weights (kv_quantize): per layer qkv,
                          * proj, fc, fc2, then the classifier */
    size_t q8_bytes;     /* their size, for memory reports */
    float *batch_logits; /* NULL, or (batch_rows, V) on the backend: kv_feed_batch's logits
                          * when this state leads a batch */
    int batch_rows;
    kv_trace_fn trace; /* NULL (default): no tracing, no timing calls */
    void *trace_ctx;
} kv_state_t;

/* Allocates cache and scratch for the model's full context. */
kv_state_t *kv_create(gpt_model_t *m, char *err);
void kv_free(kv_state_t *s);
void kv_reset(kv_state_t *s);
/* From now on the matrix products (the four of each layer and the tied
 * classifier) of feeds of up to 8 tokens (decoding) read int8 copies of
 * the weights (ops.h, q8_make): a quarter of the bytes per token, at the
 * cost of rounding each weight to within 1/254 of its block's largest.
 * Longer feeds (a prompt's prefill) keep the float32 weights, which also
 * stay for the embeddings.
 * -1 with err when the backend has no int8 kernels or the width is not a
 * multiple of 32. */
int kv_quantize(kv_state_t *s, char *err);
/* Runs n tokens at positions pos..pos+n-1 and leaves the logits of the
 * last one in s->host_logits. -1 if the context would overflow. */
int kv_feed(kv_state_t *s, const int32_t *tokens, int n, char *err);
/* kv_feed, then *next = the next token as sample_token_u draws it with
 * options o (NULL or temperature 0: greedy, the first most likely) and the
 * uniform number u. On a backend with argmax and sample only that id
 * crosses back, and s->host_logits is then stale. next NULL: kv_feed. */
int kv_feed_next(kv_state_t *s, const int32_t *tokens, int n, const sample_opts_t *o, float u,
                 int32_t *next, char *err);
/* kv_feed_next, greedy */
int kv_feed_greedy(kv_state_t *s, const int32_t *tokens, int n, int32_t *next, char *err);
/* One decoding step for n sequences at once: seqs[i] (n distinct states of the same model) takes
 * tokens[i] at its own position seqs[i]->pos, which then advances by one. Each weight's matrix
 * product runs once for all n rows; attention reads each sequence's own cache. Afterwards
 * seqs[i]->host_logits holds that sequence's next-token logits, as kv_feed leaves them.
 * 0, or -1 with err (a full context, a token out of range: nothing is changed then).
 * The states must all be int8 (kv_quantize) or all float32; n <= the context (seqs[0]'s scratch
 * holds the rows). On the CPU each sequence's logits are bit-identical to a kv_feed of its token
 * alone (ops.h, matmul_rows_forward); s->logits on the backend is not updated and the trace hook
 * is not called. */
int kv_feed_batch(kv_state_t *const *seqs, const int32_t *tokens, int n, char *err);

#endif
