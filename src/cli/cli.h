/* cli.h - subcommands and the helpers they share. main() parses the
 * command line with the option table (args.h) and calls the subcommand
 * with the filled cli_args_t; it returns an exit code (CLI_OK, CLI_ERR,
 * CLI_USAGE) and leaves a one-line reason in err; main() prints it and
 * exits. */
#ifndef MG_CLI_H
#define MG_CLI_H

#include "cli/args.h"
#include "io/catalog.h"
#include "infer/generate.h"
#include "infer/kv.h"
#include "io/checkpoint.h"
#include "model/gpt.h"

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

int cli_train(const cli_args_t *a, char *err);
int cli_generate(const cli_args_t *a, char *err);
int cli_eval(const cli_args_t *a, char *err);
int cli_plot(const cli_args_t *a, char *err);
/* Draws LOG (train_log.jsonl) to out (NULL: loss_curve.svg beside LOG) and
 * prints a sparkline of the loss; -1 with err on failure. */
int cli_plot_log(const char *log, const char *out, char *err);
int cli_list(const cli_args_t *a, char *err);
int cli_load(const cli_args_t *a, char *err);
int cli_chat(const cli_args_t *a, char *err);
int cli_serve(const cli_args_t *a, char *err);
int cli_benchmark(const cli_args_t *a, char *err);
int cli_convert(const cli_args_t *a, char *err);
int cli_tokenize(const cli_args_t *a, char *err);
/* A token's piece for JSON output (`tokenize`, POST /tokenize): a string
 * when its bytes are UTF-8 on their own, else the list of its bytes. NULL
 * when out of memory. */
struct cJSON *cli_token_piece_json(const bpe_t *t, int id);

/* The checkpoint table of `list`, also the menu of `load --mode
 * interactive`: the entries rows[0..n) of c (all of them when rows is
 * NULL), numbered 1..n when numbered is set. */
void cli_catalog_table(const catalog_t *c, const int *rows, int n, int numbered);

/* The backend for --device/--precision/--threads (ops_select); says on
 * stderr which GPU it runs on when it picked one. NULL with err if the
 * device asked for is not usable. */
const ops_backend_t *cli_backend(const char *device, const char *precision, long threads,
                                 char *err);
/* The device for --device with --quantize (q8 set): int8 weights are the
 * CPU's, so "auto" (or NULL) means the CPU then; otherwise device itself. */
const char *cli_device_q8(const char *device, int q8);
/* Generation settings, shared by `generate` and `load` so that both take
 * the same flags with the same ranges and generate the same text. */
typedef struct {
    long max_tokens, top_k;
    long seed;    /* < 0: from the clock (printed in the stats line) */
    long threads; /* 0: all cores */
    double temperature, top_p;
    double repeat_penalty; /* 1: off */
    long repeat_last_n;
    const char *stop[GEN_MAX_STOPS]; /* --stop, up to 4 (NULL: unused) */
    const char *prompt_file;         /* generate --prompt-file (NULL: none) */
    int q8;                          /* --quantize q8: int8 weights for decoding (kv_quantize) */
    int show_tokens;
    int educational;                /* explain each step (src/explain) */
    int show_tensors;               /* with educational: activation stats after each sublayer */
    const char *device, *precision; /* --device, --precision (NULL: auto, the device's) */
} cli_gen_opts_t;
/* The generation settings of a parsed command line (generate, load,
 * chat, serve). */
void cli_gen_from_args(const cli_args_t *a, cli_gen_opts_t *o);
/* The KV cache for generating from ck as o asks (--quantize: int8
 * weights); kv_free releases it. NULL with err set. */
kv_state_t *cli_kv_create(const ckpt_t *ck, const cli_gen_opts_t *o, char *err);
/* Loads path on the backend that o's --device, --precision and --threads
 * ask for; the caller frees it with ckpt_free. NULL with err set. */
ckpt_t *cli_open_checkpoint(const char *path, const cli_gen_opts_t *o, char *err);
/* The chat session on a loaded checkpoint (also `load` without --prompt).
 * path is only shown by /checkpoint. */
int cli_chat_run(const ckpt_t *ck, const char *path, const cli_gen_opts_t *o, char *err);
/* Streams the prompt and its continuation to stdout (after the prompt's
 * tokens with show_tokens), then a stats line to stderr. */
int cli_run_generation(const ckpt_t *ck, const char *prompt, const cli_gen_opts_t *o, char *err);

/* Strict number parsing for flag values: the whole string must be a number
 * in [min, max]. Return 0, or -1 with "--flag: ..." in err (NULL: none);
 * bounds that are whole numbers print as integers. */
int cli_int(const char *flag, const char *s, long min, long max, long *out, char *err);
int cli_float(const char *flag, const char *s, double min, double max, double *out, char *err);
/* Applies --preset and the shape flags; the preset is applied first. */
typedef struct {
    const char *preset;
    long layers, heads, dim, ctx, vocab; /* 0: from the preset */
    /* the architecture options (--pos, --norm: NULL or the name; flags 0/1) */
    const char *pos, *norm, *qk_norm, *untie_head, *zero_init; /* NULL: the preset's */
    const char *mlp;                                           /* --mlp (NULL: gelu) */
} cli_shape_t;
/* The shape of a command's flags (train, benchmark). */
cli_shape_t cli_shape_of(const cli_args_t *a);
/* Sets cfg's architecture options from s (the flags given). */
void cli_shape_arch(const cli_shape_t *s, gpt_config_t *cfg);
/* Whether any architecture option was given (not left to the preset). */
int cli_arch_given(const cli_shape_t *s);
/* A preset's block on a backend without its kernels: when no architecture
 * option was given and ops lacks one the config needs, cfg becomes GPT-2's
 * block of the same shape and note (MG_ERR_LEN) says why; returns 1 then,
 * else 0 (options given are refused by gpt_create in one line instead). */
int cli_recipe_fit(const cli_shape_t *s, gpt_config_t *cfg, const ops_backend_t *ops, char *note);
int cli_shape(const cli_shape_t *s, gpt_config_t *cfg, char *err);
/* The checkpoint to use when none is given: best, else final model (never
 * NULL). The path lives in a static buffer that the next call overwrites:
 * do not free it; copy it to keep it. */
const char *cli_default_checkpoint(const char *dir);

#endif
