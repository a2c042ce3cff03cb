/* eval.c - `minigpt eval`: loss, perplexity and bits per byte of a
 * checkpoint over a whole text file (sliding window). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "io/checkpoint.h"
#include "train/eval.h"
#include "util/common.h"

int cli_eval(const cli_args_t *a, char *err) {
    const char *path = a->checkpoint, *data = a->data;
    long ctx = a->ctx, batch = a->batch, threads = a->threads;
    const char *device = a->device, *precision = a->precision;
    int q8 = strcmp(a->quantize, "q8") == 0, incremental = a->incremental || q8;
    int rc = CLI_ERR;
    if (!data) {
        mg_fail(err, "eval: --data FILE is required (see 'minigpt eval --help')");
        return CLI_USAGE;
    }
    if (!path) path = cli_default_checkpoint("models");
    ckpt_t *ck = NULL;
    kv_state_t *kv = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len, n;
    if (!(text = mg_read_file(data, &len, err))) goto done;
    const ops_backend_t *ops = cli_backend(cli_device_q8(device, q8), precision, threads, err);
    if (!ops || !(ck = ckpt_load(path, ops, err))) goto done;
    int T = ctx ? (int)ctx : ck->model->cfg.ctx;
    if (T > ck->model->cfg.ctx) {
        mg_fail(err, "eval: --ctx %d exceeds the model's context %d", T, ck->model->cfg.ctx);
        rc = CLI_USAGE;
        goto done;
    }
    double t0 = mg_now();
    if (bpe_encode(ck->tok, text, len, &ids, &n, err)) goto done;
    if (n < 2) {
        mg_fail(err, "eval: '%s' has %zu tokens; at least 2 are needed", data, n);
        goto done;
    }
    eval_sum_t s;
    if (incremental) {
        if (!(kv = kv_create(ck->model, err)) || (q8 && kv_quantize(kv, err)) ||
            eval_tokens_incremental(kv, ck->tok, ids, n, T, &s, err))
            goto done;
    } else if (gpt_alloc_activations(ck->model, (int)batch, T, err) ||
               eval_tokens(ck->model, ck->tok, ids, n, (int)batch, T, &s, err))
        goto done;
    double secs = mg_now() - t0;
    printf("eval: %s on %s (window %d, stride %d%s)\n", path, data, T, T / 2 > 0 ? T / 2 : 1,
           q8            ? "; one token at a time, int8 weights"
           : incremental ? "; one token at a time"
                         : "");
    printf("scored %lld tokens, %lld bytes (of %zu tokens, %zu bytes) in %.1f s\n", s.tokens,
           s.bytes, n, len, secs);
    printf("loss %.4f nats/token, perplexity %.2f, %.4f bits per byte\n", eval_loss(&s),
           eval_perplexity(&s), eval_bpb(&s));
    rc = CLI_OK;
done:
    mg_free(text);
    mg_free(ids);
    kv_free(kv);
    ckpt_free(ck);
    return rc;
}
