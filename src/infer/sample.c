/* sample.c - greedy, temperature, top-k and top-p sampling. */
#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>

#include "util/common.h"

/* index sort by probability, descending; ties by smaller id so the order
 * (and so the sampled token) is deterministic */
static const float *sort_probs;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_probs[i] != sort_probs[j]) return sort_probs[i] > sort_probs[j] ? -1 : 1;
    return i - j;
}

/* The tokens with p >= t for a t at which they are at least `count` and
 * hold at least `mass`: a prefix of the sorted order that contains the
 * cut, so that only it needs sorting (tens or hundreds of ids instead of
 * the whole vocabulary). t steps down from pmax / 100 by factors of 100,
 * one pass each; t = 0 (every token) always qualifies. Returns the size. */
static int top_prefix(const float *p, int V, float pmax, int count, double mass, int *idx) {
    float t = pmax * 1e-2f;
    for (int k = 0; k < 6; k++, t *= 1e-2f) {
        int c = 0;
        double m = 0.0;
        for (int i = 0; i < V; i++)
            if (p[i] >= t) c++, m += p[i];
        if (c >= count && m >= mass) break;
    }
    if (t < pmax * 1e-13f) t = 0.0f; /* the loop ran out: take every token */
    int n = 0;
    for (int i = 0; i < V; i++)
        if (p[i] >= t) idx[n++] = i;
    return n;
}

int sample_argmax(const float *logits, int V) {
    int best = -1;
    for (int i = 0; i < V; i++)
        if (logits[i] == logits[i] && (best < 0 || logits[i] > logits[best]))
            best = i; /* NaN never */
    return best < 0 ? 0 : best;
}

int sample_token(const float *logits, int V, const sample_opts_t *o, mg_rng_t *rng, float *scratch,
                 sample_cand_t *cands, int n_cands) {
    float u = o->temperature > 0.0f ? mg_rng_float(rng) : 0.0f; /* greedy draws nothing */
    return sample_token_u(logits, V, o, u, scratch, cands, n_cands);
}

int sample_token_u(const float *logits, int V, const sample_opts_t *o, float u, float *scratch,
                   sample_cand_t *cands, int n_cands) {
    int best = sample_argmax(logits, V);
    float temp = o->temperature > 0.0f ? o->temperature : 1.0f;
    /* probabilities at this temperature */
    float *p = scratch;
    int *idx = (int *)(scratch + V);
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        p[i] = expf((logits[i] - logits[best]) / temp);
        sum += p[i];
    }
    for (int i = 0; i < V; i++)
        p[i] = (float)(p[i] / sum);
    /* the draw depends only on the options: asking for candidates (the
     * educational mode) sorts, but must not change which token is drawn */
    int cut = o->temperature > 0.0f && (o->top_k > 0 || o->top_p < 1.0f);
    int need_sort = cands || cut;
    int n = V;
    if (need_sort) {
        /* what the cut and the candidates need; the margin on the mass
         * covers float rounding in the prefix sums below */
        int count = MG_MAX(cands ? n_cands : 1, o->top_k > 0 ? (int)o->top_k : 1);
        double mass = cut && o->top_p < 1.0f ? o->top_p + 1e-3 : 0.0;
        n = top_prefix(p, V, p[best], MG_MIN(count, V), mass, idx);
        sort_probs = p;
        qsort(idx, n, sizeof *idx, by_prob_desc);
        for (int i = 0; i < n_cands && i < n; i++)
            cands[i] = (sample_cand_t){idx[i], p[idx[i]]};
    }
    if (o->temperature <= 0.0f) return best;
    if (!cut) {
        float r = u, acc = 0.0f;
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
    for (int i = 0; i < n; i++)
        mass += p[idx[i]];
    float r = u * mass, acc = 0.0f;
    for (int i = 0; i < n; i++) {
        acc += p[idx[i]];
        if (r < acc) return idx[i];
    }
    return n > 0 ? idx[n - 1] : best; /* n = 0: no finite probability (NaN logits) */
}

static int by_id(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return (i > j) - (i < j);
}

void sample_repeat_penalty(float *logits, int V, int32_t *recent, int n, float penalty) {
    qsort(recent, (size_t)n, sizeof *recent, by_id);
    for (int i = 0; i < n; i++) {
        int32_t id = recent[i];
        if ((i > 0 && recent[i - 1] == id) || id < 0 || id >= V) continue;
        logits[id] = logits[id] > 0.0f ? logits[id] / penalty : logits[id] * penalty;
    }
}
