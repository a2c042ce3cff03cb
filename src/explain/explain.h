/* explain.h - the educational mode: traces a real generation (tokenizer
 * merges, embeddings, each layer's time and activations, one head's
 * attention weights, the sampling candidates) and renders it as text.
 * Every figure printed comes from the run being traced, never a canned
 * example. The pure helpers (stats, heatmap, attention weights) are
 * separate so they can be unit-tested on fixed data. */
#ifndef MG_EXPLAIN_H
#define MG_EXPLAIN_H

#include <stdint.h>
#include <stdio.h>

#include "infer/generate.h"
#include "infer/kv.h"
#include "infer/sample.h"
#include "tokenizer/bpe.h"

/* --- pure helpers --- */

typedef struct {
    double mean, std, min, max; /* std: population (divide by n) */
} explain_stats_t;
void explain_stats(const float *x, size_t n, explain_stats_t *st);

/* The shade levels of the heatmap: Unicode blocks on a terminal, plain
 * ASCII elsewhere (logs, pipes, tests). */
#define EXPLAIN_SHADES_UNICODE " ░▒▓█"
#define EXPLAIN_SHADES_ASCII " .:-=+*#%@"

/* Renders a rows x cols matrix of non-negative weights, one character per
 * cell, one line per row ("\n"-terminated). Each cell's level is
 * round(w / max * (levels - 1)) where max is the largest weight of the
 * whole matrix, so the strongest attention is always the darkest shade.
 * labels (NULL: none) are printed before each row, padded to label_w.
 * Returns an mg_malloc'd string, NULL when out of memory. */
char *explain_heatmap(const float *w, int rows, int cols, int unicode, const char *const *labels,
                      int label_w);

/* Causal softmax attention weights of head h, as the model computes them:
 * out[i][s] = softmax_s(q_i . k_s / sqrt(HS)) for s <= pos0 + i, 0 above.
 * qkv: n rows of 3C (q first); keys: (pos0 + n) rows of C (the K cache);
 * out: n rows of pos0 + n. Host memory. */
void explain_attention_weights(const float *qkv, const float *keys, int n, int pos0, int C, int NH,
                               int h, float *out);

/* How many tokens survive the temperature / top-k / top-p cut that
 * sample_token applies (V when no cut; 1 for greedy). scratch: 2*V floats. */
int explain_cut_size(const float *logits, int V, const sample_opts_t *o, float *scratch);

/* A printable form of a token's bytes ("\n" as \n, quotes escaped),
 * truncated to cap - 1 bytes. */
void explain_token_str(const bpe_t *tok, int id, char *out, size_t cap);

/* --- tracing a generation --- */

#define EXPLAIN_MAX_LAYERS 64
#define EXPLAIN_NCANDS 5

typedef struct {
    FILE *out;               /* where sections go; NULL: record numbers only */
    int unicode;             /* shade blocks (a terminal) or ASCII */
    int show_tensors;        /* activation stats after each sublayer */
    int att_layer, att_head; /* which head's weights to draw */
    const bpe_t *tok;
    const int32_t *ids; /* the fed tokens of the prefill, for labels */
    /* recorded from the last prefill */
    int prefill_rows, prefill_pos0, layers;
    double attn_s[EXPLAIN_MAX_LAYERS], mlp_s[EXPLAIN_MAX_LAYERS];
    int in_prefill; /* the next kv_feed with rows > 1 or the first is the prefill */
    float *att;     /* the drawn weights (prefill_rows x pos0 + rows), mg_malloc'd */
    int att_rows, att_cols;
    /* recorded per sampled token */
    int n_sampled;
    sample_cand_t last_cands[EXPLAIN_NCANDS];
    int last_id, last_kept;
    sample_opts_t sample;
    /* the web view (record_all set by the caller after explain_init):
     * every head's weights of the prefill, layers x heads x rows x cols
     * (cols = pos0 + rows; mg_malloc'd), and each sublayer's stats */
    int record_all;
    float *att_all;
    explain_stats_t embed_st, attn_st[EXPLAIN_MAX_LAYERS], mlp_st[EXPLAIN_MAX_LAYERS], lnf_st;
    float *scratch; /* 2*V floats for explain_cut_size */
    int V;
    char err[MG_ERR_LEN]; /* a download/alloc failure inside the hook */
} explain_t;

/* Sets up e for kv's model; out may be NULL. Returns 0 or -1 (err). */
int explain_init(explain_t *e, kv_state_t *kv, const bpe_t *tok, FILE *out, int unicode,
                 int show_tensors, char *err);
void explain_free(explain_t *e);
/* Arms the tracer for the next prefill of the given ids (rows of it). */
void explain_begin(explain_t *e, const int32_t *ids, int n);

/* The tokenization section: pre-tokens, the merges in order, the final ids.
 * *ids gets the encoding (mg_malloc'd). Returns 0 or -1 (err). */
int explain_tokenize(FILE *out, const bpe_t *tok, const char *text, size_t len, int32_t **ids,
                     size_t *n, char *err);
/* The embeddings section for the first fed token (download from the
 * model's weights): token row + position row = x. */
void explain_embeddings(FILE *out, const kv_state_t *kv, const bpe_t *tok, int id, int pos);

/* Call from gen_opts_t's on_token, with go->cands = e->last_cands and
 * go->n_cands = EXPLAIN_NCANDS: records (and prints) the candidates, the
 * sampled token and the cut that chose it. */
void explain_on_token(explain_t *e, int id, const float *logits);

/* The summary section from the generation's stats. */
void explain_summary(FILE *out, const gen_stats_t *st);

/* /explain: a walkthrough of the pipeline with the last run's numbers. */
void explain_walkthrough(FILE *out, const explain_t *e, const kv_state_t *kv,
                         const gen_stats_t *st);

#endif
