/* sample.h - choosing the next token from logits: greedy, temperature,
 * top-k and top-p (nucleus) sampling. */
#ifndef MG_SAMPLE_H
#define MG_SAMPLE_H

#include <stdint.h>

#include "util/common.h"

typedef struct {
    float temperature; /* 0: greedy (argmax) */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
} sample_opts_t;

/* One candidate token after the cuts, for display (educational mode). */
typedef struct {
    int id;
    float prob; /* probability after temperature and cuts */
} sample_cand_t;

/* The index of the largest logit (V), the first on ties, NaN never (0 if
 * all are NaN): greedy. */
int sample_argmax(const float *logits, int V);

/* Picks a token id from logits (V). scratch must hold 2*V floats.
 * If cands is not NULL, the top n_cands candidates (by probability after
 * temperature, before renormalising the cut) are written there. */
int sample_token(const float *logits, int V, const sample_opts_t *o, mg_rng_t *rng, float *scratch,
                 sample_cand_t *cands, int n_cands);
/* The same draw with its uniform number u in [0, 1) given (sample_token
 * takes one from rng when the temperature is above 0, none otherwise):
 * the tokens in index order without a cut, else the kept candidates by
 * probability (ties: smaller id first), the first whose running sum passes
 * u times their mass. */
int sample_token_u(const float *logits, int V, const sample_opts_t *o, float u, float *scratch,
                   sample_cand_t *cands, int n_cands);

/* Repetition penalty (as llama.cpp's --repeat-penalty): each distinct id
 * of recent (n ids, duplicates allowed) gets its logit divided by penalty
 * when positive and multiplied by it when negative, so that penalty > 1
 * makes every recently seen token less likely. recent is sorted in place. */
void sample_repeat_penalty(float *logits, int V, int32_t *recent, int n, float penalty);

#endif
