/* eval.h - loss, perplexity and bits per byte over held-out text.
 *
 * Bits per byte = total nats / total bytes / ln 2, where the bytes are
 * those of the predicted tokens: unlike loss per token it does not depend
 * on the tokenizer, so models with different vocabularies compare. */
#ifndef MG_EVAL_H
#define MG_EVAL_H

#include <stdint.h>

#include "model/gpt.h"
#include "tokenizer/bpe.h"

typedef struct {
    double nats;      /* summed cross-entropy of the predicted tokens */
    long long tokens; /* predicted tokens */
    long long bytes;  /* their bytes */
} eval_sum_t;

/* Adds positions from..T-1 of each of B rows: losses (B,T) are the
 * per-token losses of a gpt_forward (m->host_losses), y its targets. */
void eval_accumulate(const float *losses, const bpe_t *tok, const int32_t *y, int B, int T,
                     int from, eval_sum_t *s);
double eval_loss(const eval_sum_t *s);       /* nats per token */
double eval_perplexity(const eval_sum_t *s); /* exp(loss) */
double eval_bpb(const eval_sum_t *s);        /* bits per byte */

/* Every token of ids (but the first, which nothing predicts) scored with a
 * sliding window of T tokens moving by T/2: each window scores only its
 * second half (the first window all of it), so every prediction sees at
 * least T/2 tokens of context. Batches of B windows; m must have
 * activations for (B,T). */
int eval_tokens(gpt_model_t *m, const bpe_t *tok, const int32_t *ids, size_t n, int B, int T,
                eval_sum_t *out, char *err);

/* The same windows and scores as eval_tokens, computed the way generation
 * runs: through the KV cache kv, one token at a time (with its int8
 * weights when kv_quantize was called). T <= the model's context. */
struct kv_state;
int eval_tokens_incremental(struct kv_state *kv, const bpe_t *tok, const int32_t *ids, size_t n,
                            int T, eval_sum_t *out, char *err);

#endif
