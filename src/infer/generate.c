/* generate.c - the generation loop with UTF-8-safe streaming. */
#include "infer/generate.h"

#include <string.h>

#include "infer/utf8.h"
#include "util/common.h"

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

/* bytes produced but not yet emitted because they end mid-character */
typedef struct {
    unsigned char buf[64];
    size_t n;
} pending_t;

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
static int feed(kv_state_t *kv, const int32_t *toks, int n, const gen_opts_t *o, int direct, int32_t *next,
                char *err) {
    if (!direct) return kv_feed(kv, toks, n, err);
    float u = o->sample.temperature > 0.0f ? mg_rng_float(o->rng) : 0.0f;
    return kv_feed_next(kv, toks, n, &o->sample, u, next, err);
}

/* Does the new text, whose last bytes are tail (n of them, at most the
 * stop string's length plus a token's), now contain the stop string? The
 * tail keeps the last len(stop) - 1 bytes between calls. */
static int stop_seen(const char *stop, char *tail, size_t *n, const unsigned char *b, size_t len) {
    size_t sl = strlen(stop);
    memcpy(tail + *n, b, len);
    *n += len;
    int seen = 0;
    for (size_t i = 0; i + sl <= *n && !seen; i++) seen = memcmp(tail + i, stop, sl) == 0;
    size_t keep = MG_MIN(*n, sl - 1);
    memmove(tail, tail + *n - keep, keep);
    *n = keep;
    return seen;
}

int gen_run(kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n, const gen_opts_t *o,
            gen_stats_t *st, char *err) {
    const gpt_config_t *c = &kv->model->cfg;
    int rc = -1;
    int32_t *hist = NULL, *recent = NULL;
    char *tail = NULL;
    size_t tail_n = 0;
    memset(st, 0, sizeof *st);
    st->prompt_tokens = n;
    if (n < 1) return mg_fail(err, "the prompt is empty");
    if (kv->pos + n > c->ctx)
        return mg_fail(err, "the prompt has %d tokens but the context holds %d", n, c->ctx - kv->pos);
    /* the penalty changes the logits before the draw, so they come to the
     * host: no direct (on-device) choice of the next token then */
    int penalize = o->repeat_penalty > 0.0f && o->repeat_penalty != 1.0f && o->repeat_last_n > 0;
    int stopping = o->stop && *o->stop;
    int n_hist = 0;
    if (penalize) {
        hist = mg_malloc(((size_t)n + (size_t)MG_MAX(o->max_tokens, 0)) * sizeof *hist);
        recent = mg_malloc((size_t)o->repeat_last_n * sizeof *recent);
        if (!hist || !recent) {
            mg_fail(err, "out of memory");
            goto done;
        }
        memcpy(hist, prompt, (size_t)n * sizeof *hist);
        n_hist = n;
    }
    if (stopping) { /* room for the kept bytes and the longest token */
        size_t longest = 0, len;
        for (int id = 0; id < bpe_vocab_size(tok); id++)
            if (bpe_token_bytes(tok, id, &len)) longest = MG_MAX(longest, len);
        if (!(tail = mg_malloc(strlen(o->stop) + longest))) {
            mg_fail(err, "out of memory");
            goto done;
        }
    }
    int direct = !o->on_token && !o->cands && o->max_tokens > 0 && !penalize;
    int32_t next = 0;
    double t0 = mg_now();
    if (feed(kv, prompt, n, o, direct, &next, err) != 0) goto done;
    st->prefill_s = mg_now() - t0;
    pending_t pd = {.n = 0};
    double t1 = mg_now();
    st->stop = GEN_STOP_MAX_TOKENS;
    for (int i = 0; i < o->max_tokens; i++) {
        if (o->interrupt && *o->interrupt) {
            st->stop = GEN_STOP_INTERRUPTED;
            break;
        }
        if (penalize) {
            int m = MG_MIN(n_hist, o->repeat_last_n);
            memcpy(recent, hist + n_hist - m, (size_t)m * sizeof *recent);
            sample_repeat_penalty(kv->host_logits, c->vocab, recent, m, o->repeat_penalty);
        }
        int32_t id = direct ? next
                            : sample_token(kv->host_logits, c->vocab, &o->sample, o->rng, kv->scratch,
                                           o->cands, o->cands ? o->n_cands : 0);
        if (o->on_token) o->on_token(o->ctx, id, kv->host_logits);
        if (id == BPE_EOS) {
            st->stop = GEN_STOP_EOS;
            break;
        }
        st->new_tokens++;
        if (penalize) hist[n_hist++] = id;
        size_t len;
        const unsigned char *bytes = bpe_token_bytes(tok, id, &len);
        if (bytes && id >= BPE_BYTE0) {
            emit(o, &pd, bytes, len, 0);
            if (stopping && stop_seen(o->stop, tail, &tail_n, bytes, len)) {
                st->stop = GEN_STOP_STRING;
                break;
            }
        }
        if (i + 1 == o->max_tokens) break;
        if (kv->pos >= c->ctx) {
            st->stop = GEN_STOP_CONTEXT;
            break;
        }
        if (direct && o->interrupt && *o->interrupt) { /* before the feed draws for the next token */
            st->stop = GEN_STOP_INTERRUPTED;
            break;
        }
        if (feed(kv, &id, 1, o, direct, &next, err) != 0) goto done;
    }
    emit(o, &pd, NULL, 0, 1);
    st->decode_s = mg_now() - t1;
    rc = 0;
done:
    mg_free(hist);
    mg_free(recent);
    mg_free(tail);
    return rc;
}
