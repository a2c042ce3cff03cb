/* generate.h - streaming text generation: prefill the prompt into the KV
 * cache, then one incremental step per new token. */
#ifndef MG_GENERATE_H
#define MG_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "infer/kv.h"
#include "infer/sample.h"
#include "tokenizer/bpe.h"

#include <signal.h>

typedef enum {
    GEN_STOP_EOS,
    GEN_STOP_MAX_TOKENS,
    GEN_STOP_CONTEXT,
    GEN_STOP_INTERRUPTED,
    GEN_STOP_STRING
} gen_stop_t;

enum { GEN_MAX_STOPS = 4 }; /* stop strings, as OpenAI's API allows */

typedef struct {
    sample_opts_t sample;
    int max_tokens;
    mg_rng_t *rng;
    /* called with each run of complete UTF-8 characters as they appear
     * (bytes that can never form a character come as U+FFFD) */
    void (*on_text)(void *ctx, const char *bytes, size_t n);
    /* called with each token id as sampled (may be NULL) */
    void (*on_token)(void *ctx, int id, const float *logits);
    void *ctx;
    /* optional (NULL/0: off): the top n_cands candidates of each sampling
     * step are written to cands before on_token is called */
    sample_cand_t *cands;
    int n_cands;
    /* optional: checked between tokens; when set, generation stops
     * (GEN_STOP_INTERRUPTED), e.g. from a SIGINT handler */
    volatile sig_atomic_t *interrupt;
    /* optional (1/0: off): the repetition penalty over the last
     * repeat_last_n tokens, prompt included (sample_repeat_penalty) */
    float repeat_penalty;
    int repeat_last_n;
    /* optional (NULL entries: off): generation ends once the new text
     * contains one of these strings (GEN_STOP_STRING); the strings
     * themselves are still emitted, with the rest of their token */
    const char *stop[GEN_MAX_STOPS];
    /* optional: tokens before the prompt (already in the cache) that the
     * repetition penalty's window also covers (a chat's earlier turns) */
    const int32_t *penalty_history;
    int n_penalty_history;
    /* optional (0: off): the caller feeds the new tokens (a server batching
     * several generations into one kv_feed_batch): gen_next samples from
     * kv->host_logits, emits, and, when it returns 1, leaves in gen_t.next
     * the token to feed before the next gen_next. The text is the same as
     * without it: the draws come from rng in the same order. */
    int caller_feeds;
} gen_opts_t;

typedef struct {
    int prompt_tokens, new_tokens;
    double prefill_s, decode_s; /* wall time of the prefill and of the rest */
    gen_stop_t stop;
} gen_stats_t;

/* bytes produced but not yet emitted because they end mid-character */
typedef struct {
    unsigned char buf[64];
    size_t n;
} gen_pending_t;

/* A generation in progress (gen_begin .. gen_end), for callers that take
 * the text a token at a time (a server streaming it). Fields are private. */
typedef struct {
    kv_state_t *kv;
    const bpe_t *tok;
    const gen_opts_t *o;
    gen_stats_t *st;
    int direct, penalize, done, i, n_hist;
    int32_t next;           /* with caller_feeds: the token to feed (gen_next returned 1) */
    int32_t *hist, *recent; /* the penalty's tokens */
    char *tail;             /* the stop strings' window */
    size_t tail_n, tail_keep;
    gen_pending_t pd;
    double t1;
} gen_t;

/* Prefills prompt (n ids) at the cache's current position. Errors: empty
 * prompt, prompt longer than the remaining context, out of memory. o and
 * st must outlive the generation; st is filled as it goes. */
int gen_begin(gen_t *g, kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n,
              const gen_opts_t *o, gen_stats_t *st, char *err);
/* One more token (its text goes to o->on_text, whole characters only):
 * 1 while the generation goes on, 0 once it has ended (st->stop says why;
 * the last text is out), -1 on an error. */
int gen_next(gen_t *g, char *err);
/* Releases what gen_begin took (always call it, also after an error). */
void gen_end(gen_t *g);
/* The whole loop: gen_begin, gen_next until the end, gen_end. */
int gen_run(kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n, const gen_opts_t *o,
            gen_stats_t *st, char *err);
const char *gen_stop_name(gen_stop_t s);

#endif
