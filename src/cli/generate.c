/* generate.c - `minigpt generate`: load a checkpoint, stream a continuation
 * of the prompt to stdout, a stats line to stderr. The part after argument
 * parsing (cli_run_generation) is shared with `minigpt load --prompt`. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "explain/explain.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "util/common.h"

/* ctx: NULL streams to stdout; an explain run collects the text instead so
 * that it does not interleave with the per-token lines */
typedef struct {
    explain_t ex;
    mg_buf_t text;
} edu_t;

static void on_text(void *ctx, const char *bytes, size_t n) {
    edu_t *e = ctx;
    if (!e) {
        fwrite(bytes, 1, n, stdout);
        fflush(stdout);
        return;
    }
    mg_buf_put(&e->text, bytes, n);
}

static void on_token(void *ctx, int id, const float *logits) {
    edu_t *e = ctx;
    explain_on_token(&e->ex, id, logits);
}

static void show_tokens(const bpe_t *tok, const int32_t *ids, size_t n) {
    printf("prompt: %zu tokens\n", n);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *b = bpe_token_bytes(tok, ids[i], &len);
        printf("  %5d  \"", ids[i]);
        for (size_t k = 0; k < len; k++) {
            if (b[k] == '"' || b[k] == '\\')
                printf("\\%c", b[k]);
            else if (b[k] < 0x20)
                printf("\\x%02x", b[k]);
            else
                putchar(b[k]);
        }
        printf("\"\n");
    }
}

void cli_gen_from_args(const cli_args_t *a, cli_gen_opts_t *o) {
    *o = (cli_gen_opts_t){.max_tokens = a->max_tokens,
                          .top_k = a->top_k,
                          .seed = a->seed,
                          .threads = a->threads,
                          .temperature = a->temperature,
                          .top_p = a->top_p,
                          .repeat_penalty = a->repeat_penalty,
                          .repeat_last_n = a->repeat_last_n,
                          .prompt_file = a->prompt_file,
                          .q8 = a->quantize && strcmp(a->quantize, "q8") == 0,
                          .show_tokens = a->show_tokens,
                          .educational = a->educational,
                          .show_tensors = a->show_tensors,
                          .device = a->device,
                          .precision = a->precision};
    for (int k = 0; k < GEN_MAX_STOPS; k++)
        o->stop[k] = a->stop[k];
}

kv_state_t *cli_kv_create(const ckpt_t *ck, const cli_gen_opts_t *o, char *err) {
    kv_state_t *kv = kv_create(ck->model, err);
    if (kv && o->q8 && kv_quantize(kv, err) != 0) {
        kv_free(kv);
        return NULL;
    }
    return kv;
}

ckpt_t *cli_open_checkpoint(const char *path, const cli_gen_opts_t *o, char *err) {
    const ops_backend_t *ops =
        cli_backend(cli_device_q8(o->device, o->q8), o->precision, o->threads, err);
    return ops ? ckpt_load(path, ops, err) : NULL;
}

int cli_run_generation(const ckpt_t *ck, const char *prompt, const cli_gen_opts_t *o, char *err) {
    int rc = -1;
    kv_state_t *kv = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    edu_t *edu = NULL;
    long seed = o->seed >= 0 ? o->seed : (long)time(NULL);
    if (o->educational) {
        edu = mg_calloc(1, sizeof *edu);
        if (!edu) {
            mg_fail(err, "out of memory");
            goto done;
        }
        if (explain_tokenize(stdout, ck->tok, prompt, strlen(prompt), &ids, &n, err) != 0)
            goto done;
    } else if (bpe_encode(ck->tok, prompt, strlen(prompt), &ids, &n, err) != 0)
        goto done;
    if (n > (size_t)ck->model->cfg.ctx) {
        mg_fail(err, "generate: the prompt is %zu tokens long but the model's context is %d", n,
                ck->model->cfg.ctx);
        goto done;
    }
    kv = cli_kv_create(ck, o, err);
    if (!kv) goto done;
    if (o->show_tokens) show_tokens(ck->tok, ids, n);
    mg_rng_t rng;
    mg_rng_seed(&rng, (uint64_t)seed);
    gen_opts_t go = {.sample = {(float)o->temperature, (int)o->top_k, (float)o->top_p},
                     .max_tokens = (int)o->max_tokens,
                     .rng = &rng,
                     .on_text = on_text,
                     .repeat_penalty = (float)o->repeat_penalty,
                     .repeat_last_n = (int)o->repeat_last_n,
                     .stop = {o->stop[0], o->stop[1], o->stop[2], o->stop[3]}};
    gen_stats_t st;
    if (edu) {
        if (explain_init(&edu->ex, kv, ck->tok, stdout, isatty(STDOUT_FILENO), o->show_tensors,
                         err) != 0)
            goto done;
        edu->ex.sample = go.sample;
        explain_embeddings(stdout, kv, ck->tok, ids[0], 0);
        explain_begin(&edu->ex, ids, (int)n);
        go.ctx = edu;
        go.on_token = on_token;
        go.cands = edu->ex.last_cands;
        go.n_cands = EXPLAIN_NCANDS;
    } else
        fputs(prompt, stdout);
    if (gen_run(kv, ck->tok, ids, (int)n, &go, &st, err) != 0) goto done;
    if (edu) {
        if (edu->ex.err[0] || edu->text.oom) {
            mg_fail(err, "educational mode: %s", edu->ex.err[0] ? edu->ex.err : "out of memory");
            goto done;
        }
        printf("== text ==\n%s%s", prompt, edu->text.data ? edu->text.data : "");
    }
    printf("\n");
    if (edu) explain_summary(stdout, &st);
    fflush(stdout);
    fprintf(stderr,
            "[%d prompt tokens in %.3f s, %d new tokens in %.3f s: %.1f tok/s; stopped: %s; "
            "seed %ld%s]\n",
            st.prompt_tokens, st.prefill_s, st.new_tokens, st.decode_s,
            st.decode_s > 0 ? st.new_tokens / st.decode_s : 0.0, gen_stop_name(st.stop), seed,
            o->q8 ? "; int8 weights" : "");
    rc = 0;
done:
    if (edu) {
        explain_free(&edu->ex);
        mg_free(edu->text.data);
        mg_free(edu);
    }
    mg_free(ids);
    kv_free(kv);
    return rc;
}

int cli_generate(const cli_args_t *a, char *err) {
    const char *path = a->checkpoint, *prompt = a->prompt;
    char *file_text = NULL;
    cli_gen_opts_t go;
    int rc;
    cli_gen_from_args(a, &go);
    if (go.prompt_file && prompt) {
        mg_fail(err, "generate: give --prompt or --prompt-file, not both");
        return CLI_USAGE;
    }
    if (go.prompt_file) {
        size_t len;
        if (!(file_text = mg_read_file(go.prompt_file, &len, err))) return CLI_ERR;
        if (strlen(file_text) != len || len == 0) {
            mg_fail(err, "generate: the prompt file '%s' is %s", go.prompt_file,
                    len ? "binary (it holds a NUL byte)" : "empty");
            mg_free(file_text);
            return CLI_ERR;
        }
        prompt = file_text;
    }
    if (!prompt || !*prompt) {
        mg_fail(err, "generate: --prompt TEXT is required (see 'minigpt generate --help')");
        return CLI_USAGE;
    }
    if (!path) path = cli_default_checkpoint("models");
    ckpt_t *ck = cli_open_checkpoint(path, &go, err);
    rc = ck && cli_run_generation(ck, prompt, &go, err) == 0 ? CLI_OK : CLI_ERR;
    ckpt_free(ck);
    mg_free(file_text);
    return rc;
}
