/* generate.c - the generation loop with UTF-8-safe streaming. */
#include "infer/generate.h"

#include <string.h>

#include "util/common.h"
#include "util/utf8.h"

const char *gen_stop_name(gen_stop_t s) {
    switch (s) {
    case GEN_STOP_EOS: return "end-of-text token";
    case GEN_STOP_MAX_TOKENS: return "max tokens reached";
    case GEN_STOP_CONTEXT: return "context window full";
    case GEN_STOP_INTERRUPTED: return "interrupted";
    case GEN_STOP_STRING: return "stop string";
    }
    return "?";
}

typedef gen_pending_t pending_t;

static void emit(const gen_opts_t *o, pending_t *pd, const unsigned char *b, size_t n, int flush) {
    while (n > 0 || flush) {
        size_t take = MG_MIN(n, sizeof pd->buf - pd->n);
        if (take) memcpy(pd->buf + pd->n, b, take); /* b is NULL on the final flush */
        pd->n += take;
        b += take;
        n -= take;
        size_t ok = flush && n == 0 ? pd->n : utf8_complete_prefix(pd->buf, pd->n);
        if (ok && o->on_text) {
            unsigned char text[3 * sizeof pd->buf];
            o->on_text(o->ctx, (const char *)text, utf8_repair(pd->buf, ok, text));
        }
        memmove(pd->buf, pd->buf + ok, pd->n - ok);
        pd->n -= ok;
        if (n == 0) break;
    }
}

/* Feeds toks; with direct (nothing shows the logits) the backend also
 * picks the next token, and on a GPU only its id crosses back. The
 * uniform number of a draw is taken in the same order either way, so a
 * seed gives the same text. */
static int feed(kv_state_t *kv, const int32_t *toks, int n, const gen_opts_t *o, int direct,
                int32_t *next, char *err) {
    if (!direct) return kv_feed(kv, toks, n, err);
    float u = o->sample.temperature > 0.0f ? mg_rng_float(o->rng) : 0.0f;
    return kv_feed_next(kv, toks, n, &o->sample, u, next, err);
}

/* Does the new text now contain one of the stop strings? tail holds the
 * last bytes seen (keep = the longest string's length - 1, between calls)
 * and has room for them and a token. */
static int stop_seen(const char *const *stop, char *tail, size_t *n, size_t keep,
                     const unsigned char *b, size_t len) {
    memcpy(tail + *n, b, len);
    *n += len;
    int seen = 0;
    for (int k = 0; k < GEN_MAX_STOPS && stop[k] && !seen; k++) {
        size_t sl = strlen(stop[k]);
        for (size_t i = 0; i + sl <= *n && !seen; i++)
            seen = memcmp(tail + i, stop[k], sl) == 0;
    }
    keep = MG_MIN(*n, keep);
    memmove(tail, tail + *n - keep, keep);
    *n = keep;
    return seen;
}

int gen_begin(gen_t *g, kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n,
              const gen_opts_t *o, gen_stats_t *st, char *err) {
    const gpt_config_t *c = &kv->model->cfg;
    memset(g, 0, sizeof *g);
    memset(st, 0, sizeof *st);
    g->kv = kv;
    g->tok = tok;
    g->o = o;
    g->st = st;
    g->done = 1; /* until the prefill is through */
    st->prompt_tokens = n;
    if (n < 1) return mg_fail(err, "the prompt is empty");
    if (kv->pos + n > c->ctx)
        return mg_fail(err, "the prompt has %d tokens but the context holds %d", n,
                       c->ctx - kv->pos);
    /* the penalty changes the logits before the draw, so they come to the
     * host: no direct (on-device) choice of the next token then */
    g->penalize = o->repeat_penalty > 0.0f && o->repeat_penalty != 1.0f && o->repeat_last_n > 0;
    if (g->penalize) { /* the window: the end of the history, the prompt, the new tokens */
        int before = MG_MIN(o->n_penalty_history, o->repeat_last_n);
        g->hist =
            mg_malloc(((size_t)before + n + (size_t)MG_MAX(o->max_tokens, 0)) * sizeof *g->hist);
        g->recent = mg_malloc((size_t)o->repeat_last_n * sizeof *g->recent);
        if (!g->hist || !g->recent) goto oom;
        if (before)
            memcpy(g->hist, o->penalty_history + o->n_penalty_history - before,
                   (size_t)before * sizeof *g->hist);
        memcpy(g->hist + before, prompt, (size_t)n * sizeof *g->hist);
        g->n_hist = before + n;
    }
    for (int k = 0; k < GEN_MAX_STOPS && o->stop[k]; k++)
        g->tail_keep = MG_MAX(g->tail_keep, strlen(o->stop[k]) - 1);
    if (o->stop[0]) { /* room for the kept bytes and the longest token */
        size_t longest = 0, len;
        for (int id = 0; id < bpe_vocab_size(tok); id++)
            if (bpe_token_bytes(tok, id, &len)) longest = MG_MAX(longest, len);
        if (!(g->tail = mg_malloc(g->tail_keep + longest + 1))) goto oom;
    }
    g->direct = !o->caller_feeds && !o->on_token && !o->cands && o->max_tokens > 0 && !g->penalize;
    double t0 = mg_now();
    if (feed(kv, prompt, n, o, g->direct, &g->next, err) != 0) goto fail;
    st->prefill_s = mg_now() - t0;
    st->stop = GEN_STOP_MAX_TOKENS;
    g->t1 = mg_now();
    g->done = 0;
    return 0;
oom:
    mg_fail(err, "out of memory");
fail:
    gen_end(g);
    return -1;
}

/* the end of a generation: the held-back bytes go out, the clock stops */
static int finish(gen_t *g, gen_stop_t why) {
    g->st->stop = why;
    emit(g->o, &g->pd, NULL, 0, 1);
    g->st->decode_s = mg_now() - g->t1;
    g->done = 1;
    return 0;
}

int gen_next(gen_t *g, char *err) {
    const gen_opts_t *o = g->o;
    kv_state_t *kv = g->kv;
    const gpt_config_t *c = &kv->model->cfg;
    if (g->done) return 0;
    if (g->i >= o->max_tokens) return finish(g, GEN_STOP_MAX_TOKENS);
    if (o->interrupt && *o->interrupt) return finish(g, GEN_STOP_INTERRUPTED);
    if (g->penalize) {
        int m = MG_MIN(g->n_hist, o->repeat_last_n);
        memcpy(g->recent, g->hist + g->n_hist - m, (size_t)m * sizeof *g->recent);
        sample_repeat_penalty(kv->host_logits, c->vocab, g->recent, m, o->repeat_penalty);
    }
    int32_t id = g->direct ? g->next
                           : sample_token(kv->host_logits, c->vocab, &o->sample, o->rng,
                                          kv->scratch, o->cands, o->cands ? o->n_cands : 0);
    if (o->on_token) o->on_token(o->ctx, id, kv->host_logits);
    if (id == bpe_eot_id(g->tok)) return finish(g, GEN_STOP_EOS); /* the model's own end of text */
    g->st->new_tokens++;
    if (g->penalize) g->hist[g->n_hist++] = id;
    size_t len;
    const unsigned char *bytes = bpe_token_bytes(g->tok, id, &len);
    if (bytes && bpe_token_kind(g->tok, id) != BPE_TOKEN_SPECIAL) {
        emit(o, &g->pd, bytes, len, 0);
        if (g->tail && stop_seen(o->stop, g->tail, &g->tail_n, g->tail_keep, bytes, len))
            return finish(g, GEN_STOP_STRING);
    }
    if (++g->i == o->max_tokens) return finish(g, GEN_STOP_MAX_TOKENS);
    if (kv->pos >= c->ctx) return finish(g, GEN_STOP_CONTEXT);
    /* before the feed draws the uniform number of the next token */
    if (g->direct && o->interrupt && *o->interrupt) return finish(g, GEN_STOP_INTERRUPTED);
    if (o->caller_feeds) {
        g->next = id;
        return 1;
    }
    if (feed(kv, &id, 1, o, g->direct, &g->next, err) != 0) return -1;
    return 1;
}

void gen_end(gen_t *g) {
    mg_free(g->hist);
    mg_free(g->recent);
    mg_free(g->tail);
    g->hist = g->recent = NULL;
    g->tail = NULL;
    g->done = 1;
}

int gen_run(kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n, const gen_opts_t *o,
            gen_stats_t *st, char *err) {
    gen_t g;
    if (gen_begin(&g, kv, tok, prompt, n, o, st, err) != 0) return -1;
    int r;
    while ((r = gen_next(&g, err)) > 0) {
    }
    gen_end(&g);
    return r < 0 ? -1 : 0;
}
