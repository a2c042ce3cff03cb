/* eval.c - `minigpt eval`: loss, perplexity and bits per byte of a
 * checkpoint over a whole text file (sliding window). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "io/checkpoint.h"
#include "train/eval.h"
#include "util/common.h"

static const char usage[] =
    "usage: minigpt eval --data FILE [options]\n"
    "  --checkpoint FILE  model (default models/best_model.safetensors, else mini_gpt)\n"
    "  --data FILE        text to score (required)\n"
    "  --ctx T            window length (default: the model's context)\n"
    "  --batch B          windows per forward pass (default 8)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    "  --incremental      score through the KV cache one token at a time, as\n"
    "                     generation runs (the same windows and scores)\n"
    "  --quantize q8      incremental, with int8 weights (see generate)\n"
    CLI_DEVICE_HELP
    "Every token but the first is scored once, with at least T/2 tokens of context.\n"
    "Bits per byte = total nats / total bytes / ln 2: comparable across vocabularies.\n";

int cli_eval(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
        {"ctx", required_argument, 0, 'T'},        {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 'j'},    {"help", no_argument, 0, 'h'},
        {"incremental", no_argument, 0, 'i'},      {"quantize", required_argument, 0, 'Q'},
        CLI_DEVICE_OPTIONS,                        {0, 0, 0, 0},
    };
    const char *path = NULL, *data = NULL;
    long ctx = 0, batch = 8, threads = 0;
    const char *device = NULL, *precision = NULL;
    int c, rc = CLI_ERR, incremental = 0, q8 = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'c': path = optarg; break;
        case 'd': data = optarg; break;
        case 'T': bad = cli_int("ctx", optarg, 2, 1 << 16, &ctx, err); break;
        case 'b': bad = cli_int("batch", optarg, 1, 4096, &batch, err); break;
        case 'j': bad = cli_int("threads", optarg, 1, 1024, &threads, err); break;
        case 'i': incremental = 1; break;
        case 'Q':
            if (strcmp(optarg, "q8") != 0 && strcmp(optarg, "none") != 0) {
                mg_fail(err, "eval: --quantize '%s' is not q8 or none", optarg);
                return CLI_USAGE;
            }
            q8 = optarg[0] == 'q';
            incremental |= q8;
            break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default:
            if ((bad = cli_device_flag(c, optarg, &device, &precision, err)) > 0) continue;
            if (bad == 0) return cli_bad_option("eval", c, argv, err);
        }
        if (bad) return CLI_USAGE;
    }
    if (optind < argc) {
        mg_fail(err, "eval: unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
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
           q8 ? "; one token at a time, int8 weights" : incremental ? "; one token at a time" : "");
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
