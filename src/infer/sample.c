/* sample.c - greedy, temperature, top-k and top-p sampling. */
#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>

/* index sort by probability, descending; ties by smaller id so the order
 * (and so the sampled token) is deterministic */
static const float *sort_probs;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_probs[i] != sort_probs[j]) return sort_probs[i] > sort_probs[j] ? -1 : 1;
    return i - j;
}

int sample_token(const float *logits, int V, const sample_opts_t *o, mg_rng_t *rng,
                 float *scratch, sample_cand_t *cands, int n_cands) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    float temp = o->temperature > 0.0f ? o->temperature : 1.0f;
    /* probabilities at this temperature */
    float *p = scratch;
    int *idx = (int *)(scratch + V);
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        p[i] = expf((logits[i] - logits[best]) / temp);
        sum += p[i];
    }
    for (int i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
    /* the draw depends only on the options: asking for candidates (the
     * educational mode) sorts, but must not change which token is drawn */
    int cut = o->temperature > 0.0f && (o->top_k > 0 || o->top_p < 1.0f);
    int need_sort = cands || cut;
    int n = V;
    if (need_sort) {
        for (int i = 0; i < V; i++) idx[i] = i;
        sort_probs = p;
        qsort(idx, V, sizeof *idx, by_prob_desc);
        for (int i = 0; i < n_cands && i < V; i++) cands[i] = (sample_cand_t){idx[i], p[idx[i]]};
    }
    if (o->temperature <= 0.0f) return best;
    if (!cut) {
        float r = mg_rng_float(rng), acc = 0.0f;
        for (int i = 0; i < V; i++) {
            acc += p[i];
            if (r < acc) return i;
        }
        return best;
    }
    /* cut to the top k, then to the smallest prefix with mass >= top_p */
    if (o->top_k > 0 && o->top_k < n) n = o->top_k;
    if (o->top_p < 1.0f) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++) {
            acc += p[idx[i]];
            if (acc >= o->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    float mass = 0.0f;
    for (int i = 0; i < n; i++) mass += p[idx[i]];
    float r = mg_rng_float(rng) * mass, acc = 0.0f;
    for (int i = 0; i < n; i++) {
        acc += p[idx[i]];
        if (r < acc) return idx[i];
    }
    return idx[n - 1];
}
