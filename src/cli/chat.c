/* chat.c - `minigpt chat`: a conversation with a checkpoint. On a terminal
 * a REPL (libedit line editing and history, Ctrl-C stops an answer, Ctrl-D
 * leaves); otherwise each input line is a turn and only the answers go to
 * stdout. The conversation stays in the KV cache across turns; when the
 * context fills, the oldest turns are dropped and the rest re-prefilled.
 * Slash commands inspect the model, the run and the settings. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli/cli.h"
#include "explain/explain.h"
#include "infer/chat_template.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"
#include "util/sysinfo.h"

static const char help_text[] =
    "/tokens-demo \"text\"  how a text is tokenized (pre-tokens, merges, ids)\n"
    "/explain            the pipeline, with the numbers of the last answer\n"
    "/temp X  /tokens N  /topk K  /topp P  /seed S   change a sampling setting\n"
    "/stats              parameters per component, shape, tokens and speed so far\n"
    "/memory             measured bytes: weights, KV cache, scratch, heap, RSS\n"
    "/kernels            the backend and the kernels that run\n"
    "/checkpoint         the loaded file and its training record\n"
    "/reset              forget the conversation (and reseed)\n"
    "/help  /quit\n";

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    const ckpt_t *ck;
    const char *path;
    const char *tmpl; /* the chat template (chat_template.h), as the server uses it */
    cli_gen_opts_t o;
    long seed;
    mg_rng_t rng;
    kv_state_t *kv;
    int32_t *hist; /* the conversation's tokens, oldest first */
    int hist_n;
    int *turns; /* where each turn starts in hist */
    int n_turns;
    explain_t ex; /* always recording; printing only with --educational */
    int tty;
    gen_stats_t last;
    long total_new;
    double total_decode_s;
    int answered; /* at least one answer since start or /reset */
} chat_t;

static void on_text(void *ctx, const char *bytes, size_t n) {
    (void)ctx;
    fwrite(bytes, 1, n, stdout);
    fflush(stdout);
}

static void on_token(void *ctx, int id, const float *logits) {
    chat_t *c = ctx;
    explain_on_token(&c->ex, id, logits);
    if (id != bpe_eot_id(c->ck->tok) && c->hist_n < c->ck->model->cfg.ctx + 1)
        c->hist[c->hist_n++] = id;
}

/* Drops the oldest turns until `need` more tokens fit; the cache is then
 * rebuilt from what remains (positions change). Returns the turns dropped. */
static int make_room(chat_t *c, int need) {
    int ctx = c->ck->model->cfg.ctx, k = 0;
    while (k < c->n_turns && c->hist_n - c->turns[k] + need > ctx)
        k++;
    if (k == 0) return 0;
    int from = k < c->n_turns ? c->turns[k] : c->hist_n;
    memmove(c->hist, c->hist + from, (size_t)(c->hist_n - from) * sizeof *c->hist);
    c->hist_n -= from;
    for (int i = k; i < c->n_turns; i++)
        c->turns[i - k] = c->turns[i] - from;
    c->n_turns -= k;
    kv_reset(c->kv);
    return k;
}

static int turn(chat_t *c, const char *line, char *err) {
    int rc = -1, ctx = c->ck->model->cfg.ctx;
    FILE *edu = c->o.educational ? stdout : NULL;
    size_t n = 0;
    int32_t *ids = NULL;
    /* the turn through the chat template: the end of the last answer, the
     * user's message, the start of the answer */
    mg_buf_t tb = {0};
    if (c->hist_n > 0) chat_template_close(&tb, c->tmpl, "assistant");
    chat_template_open(&tb, c->tmpl, "user");
    mg_buf_put(&tb, line, strlen(line));
    chat_template_close(&tb, c->tmpl, "user");
    chat_template_open(&tb, c->tmpl, "assistant");
    char *text = tb.data;
    if (tb.oom || !text) {
        mg_free(text);
        return mg_fail(err, "out of memory");
    }
    if (edu) {
        if (explain_tokenize(stdout, c->ck->tok, text, strlen(text), &ids, &n, err) != 0) goto done;
    } else if (bpe_encode(c->ck->tok, text, strlen(text), &ids, &n, err) != 0)
        goto done;
    if ((int)n >= ctx) {
        fprintf(stderr, "that is %zu tokens; the context holds %d: say it shorter\n", n, ctx);
        rc = 0;
        goto done;
    }
    /* room for the new turn and some answer: up to half the context */
    int reserve = (int)MG_MIN(c->o.max_tokens, ctx / 2);
    if ((int)n + reserve > ctx) reserve = ctx - (int)n;
    int before = c->hist_n, dropped = make_room(c, (int)n + reserve);
    if (dropped && edu)
        printf("== context ==\ncontext window full (%d positions): dropped the %d oldest turn%s "
               "(%d tokens); re-prefilling the %d that remain\n",
               ctx, dropped, dropped > 1 ? "s" : "", before - c->hist_n, c->hist_n);
    c->turns[c->n_turns++] = c->hist_n;
    memcpy(c->hist + c->hist_n, ids, n * sizeof *ids);
    c->hist_n += (int)n;
    int from = c->kv->pos; /* tokens not yet in the cache start here */
    if (edu) explain_embeddings(stdout, c->kv, c->ck->tok, c->hist[from], from);
    explain_begin(&c->ex, c->hist + from, c->hist_n - from);
    c->ex.sample = (sample_opts_t){(float)c->o.temperature, (int)c->o.top_k, (float)c->o.top_p};
    gen_opts_t go = {.sample = c->ex.sample,
                     .max_tokens = (int)c->o.max_tokens,
                     .rng = &c->rng,
                     .on_text = edu ? NULL : on_text,
                     .on_token = on_token,
                     .ctx = c,
                     .cands = c->ex.last_cands,
                     .n_cands = EXPLAIN_NCANDS,
                     .interrupt = &interrupted,
                     .repeat_penalty = (float)c->o.repeat_penalty,
                     .repeat_last_n = (int)c->o.repeat_last_n,
                     .stop = {c->o.stop[0], c->o.stop[1], c->o.stop[2], c->o.stop[3]},
                     .penalty_history = c->hist,
                     .n_penalty_history = from};
    interrupted = 0;
    int first = c->hist_n - from;
    if (gen_run(c->kv, c->ck->tok, c->hist + from, first, &go, &c->last, err) != 0) goto done;
    if (c->ex.err[0]) {
        mg_fail(err, "educational mode: %s", c->ex.err);
        goto done;
    }
    if (edu) { /* the answer as a whole, after the per-token lines */
        char *ans = NULL;
        size_t alen;
        int start = c->hist_n - c->last.new_tokens;
        if (bpe_decode(c->ck->tok, c->hist + start, (size_t)c->last.new_tokens, &ans, &alen, err) !=
            0)
            goto done;
        printf("== answer ==\n%s", ans);
        mg_free(ans);
    }
    printf("\n");
    if (c->last.stop == GEN_STOP_INTERRUPTED && c->tty) printf("[stopped]\n");
    if (edu) explain_summary(stdout, &c->last);
    fflush(stdout);
    c->total_new += c->last.new_tokens;
    c->total_decode_s += c->last.decode_s;
    c->answered = 1;
    rc = 0;
done:
    mg_free(text);
    mg_free(ids);
    return rc;
}

static void cmd_stats(const chat_t *c) {
    const gpt_config_t *g = &c->ck->model->cfg;
    long long C = g->dim, V = g->vocab, T = g->ctx, L = g->layers;
    long long ln = g->norm == GPT_NORM_RMS ? C : 2 * C; /* RMSNorm: a gain, no bias */
    long long emb = V * C, pos = g->pos == GPT_POS_ROPE ? 0 : T * C,
              attn = ln + 3 * C * C + 3 * C + C * C + C,
              mlp = ln + 4 * C * C + 4 * C + 4 * C * C + C, lnf = ln,
              head = g->untie_head ? V * C : 0;
    long long total = emb + pos + L * (attn + mlp) + lnf + head;
    printf("parameters: %lld (checkpoint table: %zu)\n", total, gpt_param_count(g));
    if (head) {
        printf("  token embedding   %10lld  (%lld x %lld)\n", emb, V, C);
        printf("  output head       %10lld  (%lld x %lld, untied: lm_head.weight)\n", head, V, C);
    } else {
        printf("  token embedding   %10lld  (%lld x %lld, also the output head: tied)\n", emb, V,
               C);
    }
    if (pos)
        printf("  position embedding%10lld  (%lld x %lld)\n", pos, T, C);
    else
        printf("  position embedding%10d  (rotary: computed, not learned)\n", 0);
    printf("  attention         %10lld  (%lld per layer: ln1, qkv, proj)\n", L * attn, attn);
    printf("  MLP               %10lld  (%lld per layer: ln2, fc, proj)\n", L * mlp, mlp);
    printf("  final %-11s %10lld\n", g->norm == GPT_NORM_RMS ? "RMSNorm" : "LayerNorm", lnf);
    printf("shape: %d layers, %d heads of %d, dim %d, context %d, vocab %d\n", g->layers, g->heads,
           g->dim / g->heads, g->dim, g->ctx, g->vocab);
    printf(
        "session: %ld tokens generated, %.1f tok/s on average; %d of %d context positions in use\n",
        c->total_new, c->total_decode_s > 0 ? c->total_new / c->total_decode_s : 0.0, c->hist_n,
        g->ctx);
}

static void cmd_memory(const chat_t *c) {
    const gpt_model_t *m = c->ck->model;
    const gpt_config_t *g = &m->cfg;
    size_t w = m->num_floats * sizeof(float);
    size_t kvb = 2 * (size_t)g->layers * g->ctx * g->dim * sizeof(float);
    printf("weights        %12zu bytes (%zu floats in one backend buffer)\n", w, m->num_floats);
    printf("KV cache       %12zu bytes (keys + values: %d layers x %d positions x %d)\n", kvb,
           g->layers, g->ctx, g->dim);
    printf("scratch        %12zu bytes (activations of one feed, logits, token ids)\n",
           c->kv->block_bytes - kvb);
    printf("heap (counted) %12zu bytes now, %zu at peak (mg_malloc: everything above and more)\n",
           mg_mem_current(), mg_mem_peak());
    printf("process RSS    %12zu bytes now, %zu at peak (includes the mapped checkpoint and "
           "libraries)\n",
           mg_rss_now(), MG_MAX(mg_rss_now(), mg_rss_peak())); /* two sources, round differently */
}

static void cmd_kernels(const chat_t *c) {
    printf("backend: %s, %s", c->ck->model->ops->name, c->ck->model->ops->describe());
    if (strcmp(c->ck->model->ops->name, "cpu") == 0) printf("; BLAS: %s", ops_cpu_blas_info());
    printf("\n");
    printf("what runs for each token (src/infer/kv.c over src/ops/ops.h):\n"
           "  embeddings      embed_forward: token row + position row (a copy loop)\n"
           "  LayerNorm       layernorm_forward: a loop per row (cpu_layernorm.c)\n"
           "  qkv, proj, MLP  matmul_forward: BLAS cblas_sgemv for one token, cblas_sgemm for a\n"
           "                  prompt (cpu_matmul.c)\n"
           "  attention       attention_cached: plain loops per head over the KV cache, a\n"
           "                  two-pass softmax (max, then exp and sum); no fused/flash kernel,\n"
           "                  online softmax is not used (cpu_attention.c)\n"
           "  GELU, residual  gelu_forward, add: element loops (cpu_pointwise.c)\n"
           "  logits          matmul_forward with the token table (tied head), last row only\n"
           "  sampling        on the host (src/infer/sample.c)\n"
           "fused kernels in use: none\n");
    const gpt_config_t *g = &c->ck->model->cfg; /* the architecture options' kernels */
    if (g->norm == GPT_NORM_RMS)
        printf("this model: RMSNorm instead of LayerNorm: rmsnorm_forward (cpu_rmsnorm.c)\n");
    if (g->pos == GPT_POS_ROPE || g->qk_norm)
        printf("this model: %s%s%s on q and k before attention: qk_forward (cpu_rope.c)\n",
               g->qk_norm ? "qk-norm" : "", g->qk_norm && g->pos == GPT_POS_ROPE ? " and " : "",
               g->pos == GPT_POS_ROPE ? "rotary positions (no position row)" : "");
    if (g->untie_head) printf("this model: logits from its own lm_head.weight (untied)\n");
}

static void cmd_checkpoint(const chat_t *c) {
    const ckpt_meta_t *m = &c->ck->meta;
    const gpt_config_t *g = &c->ck->model->cfg;
    printf("file:       %s\n", c->path);
    printf("shape:      %d layers, %d heads, dim %d, context %d, vocab %d (%zu parameters)\n",
           g->layers, g->heads, g->dim, g->ctx, g->vocab, gpt_param_count(g));
    printf("step:       %ld (epoch %d), %lld tokens seen\n", m->step, m->epoch, m->tokens_seen);
    printf("train loss: ");
    if (isfinite(m->train_loss))
        printf("%.4f\n", m->train_loss);
    else
        printf("-\n");
    printf("val loss:   ");
    if (isfinite(m->val_loss))
        printf("%.4f\n", m->val_loss);
    else
        printf("-\n");
    printf("created:    %s\n", c->ck->created);
}

static void reset(chat_t *c) {
    kv_reset(c->kv);
    c->hist_n = 0;
    c->n_turns = 0;
    c->answered = 0;
    mg_rng_seed(&c->rng, (uint64_t)c->seed);
}

/* A slash command. Returns 1 to quit, 0 to go on, -1 on a fatal error. */
static int command(chat_t *c, char *line, char *err) {
    char *arg = line;
    while (*arg && !isspace((unsigned char)*arg))
        arg++;
    if (*arg) *arg++ = 0;
    while (isspace((unsigned char)*arg))
        arg++;
    const char *cmd = line + 1;
    char why[MG_ERR_LEN];
    int bad = 0;
    if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) return 1;
    if (strcmp(cmd, "help") == 0)
        fputs(help_text, stdout);
    else if (strcmp(cmd, "stats") == 0)
        cmd_stats(c);
    else if (strcmp(cmd, "memory") == 0)
        cmd_memory(c);
    else if (strcmp(cmd, "kernels") == 0)
        cmd_kernels(c);
    else if (strcmp(cmd, "checkpoint") == 0)
        cmd_checkpoint(c);
    else if (strcmp(cmd, "reset") == 0) {
        reset(c);
        printf("conversation cleared (seed %ld)\n", c->seed);
    } else if (strcmp(cmd, "explain") == 0) {
        if (!c->answered)
            printf("nothing generated yet: type a prompt first\n");
        else
            explain_walkthrough(stdout, &c->ex, c->kv, &c->last);
    } else if (strcmp(cmd, "tokens-demo") == 0) {
        size_t n = strlen(arg), cnt;
        if (n >= 2 && arg[0] == '"' && arg[n - 1] == '"') {
            arg[n - 1] = 0;
            arg++;
        }
        int32_t *ids = NULL;
        if (!*arg) {
            fprintf(stderr, "usage: /tokens-demo \"some text\"\n");
            return 0;
        }
        int r = explain_tokenize(stdout, c->ck->tok, arg, strlen(arg), &ids, &cnt, err);
        mg_free(ids);
        if (r != 0) return -1;
    } else if (strcmp(cmd, "temp") == 0)
        bad = cli_float("temp", arg, 0, 100, &c->o.temperature, why);
    else if (strcmp(cmd, "tokens") == 0)
        bad = cli_int("tokens", arg, 1, 1 << 24, &c->o.max_tokens, why);
    else if (strcmp(cmd, "topk") == 0)
        bad = cli_int("topk", arg, 0, 1 << 24, &c->o.top_k, why);
    else if (strcmp(cmd, "topp") == 0)
        bad = cli_float("topp", arg, 1e-6, 1, &c->o.top_p, why);
    else if (strcmp(cmd, "seed") == 0) {
        bad = cli_int("seed", arg, 0, 1L << 62, &c->seed, why);
        if (!bad) mg_rng_seed(&c->rng, (uint64_t)c->seed);
    } else {
        fprintf(stderr, "unknown command '/%s' (type /help for the list)\n", cmd);
        return 0;
    }
    if (bad) /* cli_* say "--flag: ..."; here the setting is a command */
        fprintf(stderr, "/%s\n", why[0] == '-' && why[1] == '-' ? why + 2 : why);
    else if (!strcmp(cmd, "temp") || !strcmp(cmd, "tokens") || !strcmp(cmd, "topk") ||
             !strcmp(cmd, "topp") || !strcmp(cmd, "seed"))
        printf("temperature %g, top-k %ld, top-p %g, max tokens %ld, seed %ld\n", c->o.temperature,
               c->o.top_k, c->o.top_p, c->o.max_tokens, c->seed);
    fflush(stdout);
    return 0;
}

/* One line of input: NULL at the end, or out of memory (*oom set). On a
 * terminal through libedit. */
static char *read_line(const chat_t *c, char **buf, size_t *cap, int *oom) {
    if (c->tty) {
        char *l;
        for (;;) {
            interrupted = 0;
            l = readline("you> ");
            if (l || !interrupted) break;
            printf("\n"); /* Ctrl-C at the prompt: a fresh line, as in a shell */
        }
        if (!l) return NULL;
        if (*l) add_history(l);
        /* libedit's buffer comes from malloc: copy it into ours */
        size_t n = strlen(l) + 1;
        if (n > *cap) {
            char *b = mg_realloc(*buf, n);
            if (!b) {
                free(l);
                *oom = 1;
                return NULL;
            }
            *buf = b;
            *cap = n;
        }
        memcpy(*buf, l, n);
        free(l);
        return *buf;
    }
    size_t n = 0;
    for (;;) {
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            char *b = mg_realloc(*buf, nc);
            if (!b) {
                *oom = 1;
                return NULL;
            }
            *buf = b;
            *cap = nc;
        }
        int ch = getchar();
        if (ch == EOF) {
            if (n == 0) return NULL;
            break;
        }
        if (ch == '\n') break;
        (*buf)[n++] = (char)ch;
    }
    (*buf)[n] = 0;
    return *buf;
}

int cli_chat_run(const ckpt_t *ck, const char *path, const cli_gen_opts_t *o, char *err) {
    int rc = -1, ctx = ck->model->cfg.ctx;
    chat_t c = {
        .ck = ck, .path = path, .o = *o, .tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)};
    char *buf = NULL;
    size_t cap = 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    int handler = 0;
    if (!(c.tmpl = chat_template_of(ck, err))) return -1;
    c.seed = o->seed >= 0 ? o->seed : (long)time(NULL);
    mg_rng_seed(&c.rng, (uint64_t)c.seed);
    c.kv = cli_kv_create(ck, o, err);
    if (!c.kv) goto done;
    c.hist = mg_malloc((size_t)(ctx + 2) * sizeof *c.hist);
    c.turns = mg_malloc((size_t)(ctx + 2) * sizeof *c.turns);
    if (!c.hist || !c.turns) {
        mg_fail(err, "out of memory");
        goto done;
    }
    if (explain_init(&c.ex, c.kv, ck->tok, o->educational ? stdout : NULL, isatty(STDOUT_FILENO),
                     o->show_tensors, err) != 0)
        goto done;
    if (c.tty) {
        sigemptyset(&sa.sa_mask); /* no SA_RESTART: Ctrl-C only sets the flag */
        sigaction(SIGINT, &sa, &old);
        handler = 1;
        printf("minigpt chat: %s (%d layers, dim %d, context %d). /help for commands, "
               "Ctrl-C stops an answer, Ctrl-D leaves.\n",
               path, ck->model->cfg.layers, ck->model->cfg.dim, ctx);
    }
    char *line;
    int oom = 0;
    while ((line = read_line(&c, &buf, &cap, &oom)) != NULL) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || isspace((unsigned char)line[n - 1])))
            line[--n] = 0;
        while (isspace((unsigned char)*line))
            line++;
        if (!*line) continue;
        if (line[0] == '/') {
            int r = command(&c, line, err);
            if (r < 0) goto done;
            if (r > 0) break;
            continue;
        }
        if (turn(&c, line, err) != 0) goto done;
    }
    if (oom) {
        mg_fail(err, "out of memory reading a line of input");
        goto done;
    }
    if (!c.tty && ferror(stdin)) { /* stdin a directory, say: not the end of a conversation */
        mg_fail(err, "cannot read the input: %s", strerror(errno));
        goto done;
    }
    if (c.tty) printf("\n");
    rc = 0;
done:
    if (handler) sigaction(SIGINT, &old, NULL);
    explain_free(&c.ex);
    mg_free(buf);
    mg_free(c.hist);
    mg_free(c.turns);
    kv_free(c.kv);
    return rc;
}

int cli_chat(const cli_args_t *a, char *err) {
    const char *path = a->checkpoint;
    cli_gen_opts_t go;
    int rc;
    cli_gen_from_args(a, &go);
    if (!path) path = cli_default_checkpoint("models");
    ckpt_t *ck = cli_open_checkpoint(path, &go, err);
    if (!ck) return CLI_ERR;
    rc = cli_chat_run(ck, path, &go, err) == 0 ? CLI_OK : CLI_ERR;
    ckpt_free(ck);
    return rc;
}
