/* eval.c - held-out loss and bits per byte. */
#include "train/eval.h"

#include <math.h>
#include <string.h>

#include "infer/kv.h"
#include "util/common.h"

void eval_accumulate(const float *losses, const bpe_t *tok, const int32_t *y, int B, int T,
                     int from, eval_sum_t *s) {
    for (int b = 0; b < B; b++) {
        for (int t = from; t < T; t++) {
            size_t len = 0;
            bpe_token_bytes(tok, y[(size_t)b * T + t], &len);
            s->nats += losses[(size_t)b * T + t];
            s->bytes += (long long)len;
            s->tokens++;
        }
    }
}

double eval_loss(const eval_sum_t *s) { return s->tokens ? s->nats / s->tokens : NAN; }
double eval_perplexity(const eval_sum_t *s) { return exp(eval_loss(s)); }
double eval_bpb(const eval_sum_t *s) { return s->bytes ? s->nats / s->bytes / log(2.0) : NAN; }

/* the windows of eval_tokens: window k starts at *s0 and scores its
 * targets from *from on; 0 when every target has been planned */
static int next_window(size_t n, size_t W, size_t *s, size_t *planned, size_t *s0, int *from) {
    if (*planned >= n - 1) return 0;
    *s0 = MG_MIN(*s, n - 1 - W); /* the last window slides back to stay full */
    *from = (int)(*planned - *s0);
    *planned = *s0 + W;
    *s += MG_MAX(1, W / 2);
    return 1;
}

int eval_tokens_incremental(kv_state_t *kv, const bpe_t *tok, const int32_t *ids, size_t n, int T,
                            eval_sum_t *out, char *err) {
    memset(out, 0, sizeof *out);
    if (n < 2) return mg_fail(err, "need at least 2 tokens to evaluate, have %zu", n);
    int V = kv->model->cfg.vocab;
    size_t W = MG_MIN((size_t)T, n - 1), s = 0, planned = 0, s0;
    int from;
    while (next_window(n, W, &s, &planned, &s0, &from)) {
        kv_reset(kv);
        for (size_t t = 0; t < W; t++) {
            if (kv_feed(kv, ids + s0 + t, 1, err) != 0) return -1;
            if ((int)t < from) continue;
            /* -log softmax(logits)[target], in double */
            const float *z = kv->host_logits;
            int32_t y = ids[s0 + t + 1];
            double mx = z[0], sum = 0.0;
            for (int v = 1; v < V; v++)
                mx = fmax(mx, z[v]);
            for (int v = 0; v < V; v++)
                sum += exp(z[v] - mx);
            size_t len = 0;
            bpe_token_bytes(tok, y, &len);
            out->nats += log(sum) + mx - z[y];
            out->bytes += (long long)len;
            out->tokens++;
        }
    }
    return 0;
}

int eval_tokens(gpt_model_t *m, const bpe_t *tok, const int32_t *ids, size_t n, int B, int T,
                eval_sum_t *out, char *err) {
    memset(out, 0, sizeof *out);
    if (n < 2) return mg_fail(err, "need at least 2 tokens to evaluate, have %zu", n);
    if (B > m->B || T > m->T) return mg_fail(err, "evaluation shape exceeds the allocated batch");
    int rc = -1;
    int32_t *x = mg_malloc((size_t)B * T * sizeof(int32_t));
    int32_t *y = mg_malloc((size_t)B * T * sizeof(int32_t));
    int *from = mg_malloc((size_t)B * sizeof(int));
    if (!x || !y || !from) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    /* window inputs ids[s0, s0+W) predict ids[s0+1, s0+W]; `planned` is
     * the last target index already given to some window */
    size_t W = MG_MIN((size_t)T, n - 1), s = 0, planned = 0, s0;
    while (planned < n - 1) {
        int nb = 0;
        while (nb < B && next_window(n, W, &s, &planned, &s0, &from[nb])) {
            memcpy(x + (size_t)nb * W, ids + s0, W * sizeof(int32_t));
            memcpy(y + (size_t)nb * W, ids + s0 + 1, W * sizeof(int32_t));
            nb++;
        }
        gpt_forward(m, x, y, nb, (int)W);
        for (int b = 0; b < nb; b++)
            eval_accumulate(m->host_losses + (size_t)b * W, tok, y + (size_t)b * W, 1, (int)W,
                            from[b], out);
    }
    rc = 0;
fail:
    mg_free(x);
    mg_free(y);
    mg_free(from);
    return rc;
}
