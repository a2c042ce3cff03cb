/* generate.c - `minigpt generate`: load a checkpoint, stream a continuation
 * of the prompt to stdout, a stats line to stderr. The part after argument
 * parsing (cli_run_generation) is shared with `minigpt load --prompt`. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "util/common.h"

static const char usage[] =
    "usage: minigpt generate --prompt TEXT [options]\n"
    "  --checkpoint FILE  model to load (default models/best_model.safetensors,\n"
    "                     else models/mini_gpt.safetensors)\n"
    "  --max-tokens N     tokens to generate (default 200)\n"
    "  --temperature T    0 is greedy (default 0.8)\n"
    "  --top-k K          keep the K most likely tokens (default 0: off)\n"
    "  --top-p P          keep the smallest set with probability >= P (default 0.95)\n"
    "  --seed S           sampling seed (default: from the clock; printed)\n"
    "  --show-tokens      print the prompt's tokens and ids first\n"
    "  --threads N        CPU threads (default: all cores)\n";

static void on_text(void *ctx, const char *bytes, size_t n) {
    (void)ctx;
    fwrite(bytes, 1, n, stdout);
    fflush(stdout);
}

static void show_tokens(const bpe_t *tok, const int32_t *ids, size_t n) {
    printf("prompt: %zu tokens\n", n);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *b = bpe_token_bytes(tok, ids[i], &len);
        printf("  %5d  \"", ids[i]);
        for (size_t k = 0; k < len; k++) {
            if (b[k] == '"' || b[k] == '\\') printf("\\%c", b[k]);
            else if (b[k] < 0x20) printf("\\x%02x", b[k]);
            else putchar(b[k]);
        }
        printf("\"\n");
    }
}

void cli_gen_defaults(cli_gen_opts_t *o) {
    *o = (cli_gen_opts_t){.max_tokens = 200, .top_k = 0, .seed = -1, .threads = 0,
                          .temperature = 0.8, .top_p = 0.95};
}

int cli_gen_flag(int c, const char *arg, cli_gen_opts_t *o, char *err) {
    switch (c) {
    case 'n': return cli_int("max-tokens", arg, 1, 1 << 24, &o->max_tokens, err) ? -1 : 1;
    case 't': return cli_float("temperature", arg, 0, 100, &o->temperature, err) ? -1 : 1;
    case 'k': return cli_int("top-k", arg, 0, 1 << 24, &o->top_k, err) ? -1 : 1;
    case 'P': return cli_float("top-p", arg, 1e-6, 1, &o->top_p, err) ? -1 : 1;
    case 's': return cli_int("seed", arg, 0, 1L << 62, &o->seed, err) ? -1 : 1;
    case 'v': o->show_tokens = 1; return 1;
    case 'j': return cli_int("threads", arg, 1, 1024, &o->threads, err) ? -1 : 1;
    default: return 0;
    }
}

int cli_run_generation(const ckpt_t *ck, const char *prompt, const cli_gen_opts_t *o, char *err) {
    int rc = -1;
    kv_state_t *kv = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    long seed = o->seed >= 0 ? o->seed : (long)time(NULL);
    ops_cpu_set_threads((int)o->threads);
    if (bpe_encode(ck->tok, prompt, strlen(prompt), &ids, &n, err) != 0) goto done;
    if (n > (size_t)ck->model->cfg.ctx) {
        mg_fail(err, "generate: the prompt is %zu tokens long but the model's context is %d", n,
                ck->model->cfg.ctx);
        goto done;
    }
    kv = kv_create(ck->model, err);
    if (!kv) goto done;
    if (o->show_tokens) show_tokens(ck->tok, ids, n);
    mg_rng_t rng;
    mg_rng_seed(&rng, (uint64_t)seed);
    gen_opts_t go = {.sample = {(float)o->temperature, (int)o->top_k, (float)o->top_p},
                     .max_tokens = (int)o->max_tokens, .rng = &rng, .on_text = on_text};
    gen_stats_t st;
    fputs(prompt, stdout);
    if (gen_run(kv, ck->tok, ids, (int)n, &go, &st, err) != 0) goto done;
    printf("\n");
    fflush(stdout);
    fprintf(stderr,
            "[%d prompt tokens in %.3f s, %d new tokens in %.3f s: %.1f tok/s; stopped: %s; "
            "seed %ld]\n",
            st.prompt_tokens, st.prefill_s, st.new_tokens, st.decode_s,
            st.decode_s > 0 ? st.new_tokens / st.decode_s : 0.0, gen_stop_name(st.stop), seed);
    rc = 0;
done:
    mg_free(ids);
    kv_free(kv);
    return rc;
}

int cli_generate(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'},
        {"prompt", required_argument, 0, 'p'},
        CLI_GEN_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = NULL, *prompt = NULL;
    cli_gen_opts_t go;
    cli_gen_defaults(&go);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = cli_gen_flag(c, optarg, &go, err);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'c': path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_bad_option("generate", c, argv, err);
        }
    }
    if (optind < argc) {
        mg_fail(err, "generate: unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if (!prompt || !*prompt) {
        mg_fail(err, "generate: --prompt TEXT is required (see 'minigpt generate --help')");
        return CLI_USAGE;
    }
    if (!path) path = cli_default_checkpoint("models");
    /* threads first, as before the split: loading runs on the backend too */
    ops_cpu_set_threads((int)go.threads);
    ckpt_t *ck = ckpt_load(path, ops_cpu(), err);
    if (!ck) return CLI_ERR;
    int rc = cli_run_generation(ck, prompt, &go, err) == 0 ? CLI_OK : CLI_ERR;
    ckpt_free(ck);
    return rc;
}
