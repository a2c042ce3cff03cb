/* args.h - the one option table of every command, and its parser (a C
 * rendition of llama.cpp's common/arg.cpp). Each option is one row of
 * cli_rows[] in args.c: its names, value name, help line, type and range,
 * the field of cli_args_t it fills, the commands that take it and its
 * default. main() parses the command line with cli_args_parse() and hands
 * the filled cli_args_t to the command; `--help` and `minigpt help
 * --markdown` (the README's flag tables) are printed from the same rows.
 *
 * Adding an option (the whole recipe):
 *   1. a field in cli_args_t below (long for CLI_T_INT, double for CLI_T_FLOAT,
 *      const char * for CLI_T_STR and CLI_T_CHOICE, int for CLI_T_FLAG);
 *   2. one row in cli_rows[] (args.c), e.g.
 *        {"overwrite", 0, NULL, CLI_T_FLAG, F(overwrite), C(CLI_TRAIN),
 *         .help = "replace the checkpoints already in --out"},
 *        {"parallel", "-np", "N", CLI_T_INT, F(parallel), C(CLI_SERVE), .min = 1,
 *         .max = 64, .def = "1", .help = "requests decoded at once"},
 *      (a CLI_T_CHOICE row lists its values in .choices, "a|b|c");
 *   3. read a->field in the command; `make readme-flags` refreshes README.md
 *      (tests/cli.sh fails until it is).
 * A new command: an enum value below (before CLI_N_CMDS), a row in
 * cli_commands[] (args.c) and its function in main.c. The same long name
 * may have several rows when its meaning differs between commands (--out
 * is a directory for train, a file for plot): their command sets must not
 * overlap (the unit test checks). One-letter aliases are only those
 * llama.cpp users type; a row without one leaves short = 0. */
#ifndef MG_CLI_ARGS_H
#define MG_CLI_ARGS_H

#include <stdio.h>

#include "infer/generate.h"

enum cli_cmd {
    CLI_TRAIN,
    CLI_GENERATE,
    CLI_EVAL,
    CLI_PLOT,
    CLI_LIST,
    CLI_LOAD,
    CLI_CHAT,
    CLI_SERVE,
    CLI_BENCHMARK,
    CLI_CONVERT,
    CLI_TOKENIZE,
    CLI_N_CMDS
};

typedef struct {
    const char *name;    /* "generate" */
    const char *summary; /* one line for `minigpt --help` */
    const char *usage;   /* "minigpt generate --prompt TEXT [options]" */
    const char *notes;   /* printed after the options (NULL: none) */
    int positionals;     /* operands it takes besides the options (plot: LOG) */
} cli_command_t;
extern const cli_command_t cli_commands[CLI_N_CMDS];

enum { CLI_T_FLAG, CLI_T_INT, CLI_T_FLOAT, CLI_T_STR, CLI_T_CHOICE, CLI_T_LIST };
enum { CLI_MAX_ROWS = 128, CLI_MAX_POSITIONALS = 4 };

/* Every command's options; a field stays at its row's default (0/NULL when
 * the row has none) unless given. The strings point into argv. */
typedef struct {
    /* files and directories */
    const char *checkpoint, *dir, *data, *out, *resume, *init_from, *save_tokens;
    /* generation (generate, load, chat, serve) */
    const char *prompt, *prompt_file;
    long max_tokens, top_k, seed, repeat_last_n; /* seed < 0: from the clock */
    double temperature, top_p, repeat_penalty;
    const char *stop[GEN_MAX_STOPS]; /* CLI_T_LIST: repeated --stop, in order */
    int show_tokens, educational, show_tensors;
    /* hardware */
    long threads; /* 0: all cores */
    const char *device, *precision, *quantize;
    /* model shape (train, benchmark); 0: the preset's */
    const char *preset;
    long layers, heads, dim, ctx, vocab;
    /* architecture options (train, benchmark; model/gpt.h); NULL/0: the GPT-2 block */
    const char *pos, *norm, *qk_norm, *untie_head, *zero_init; /* NULL: the preset's */
    const char *mlp; /* --mlp gelu|relu2|swiglu (NULL: gelu, or the checkpoint's) */
    /* train */
    int overwrite;
    long dashboard; /* the dashboard's port; -1: none */
    long steps, epochs, batch, grad_accum, warmup, eval_every, eval_batches, save_every, keep,
        log_every, zero;
    double minutes, lr, weight_decay, muon_lr, muon_momentum;
    const char *optimizer;
    /* convert */
    const char *from_hf, *to_hf, *to_gguf, *gguf_type;
    /* eval */
    int incremental;
    /* list, load */
    int json, show_metadata;
    const char *mode, *filter, *search;
    double filter_max_loss; /* NaN: off */
    long filter_min_step;   /* < 0: off */
    /* serve */
    const char *host, *api_key, *runs;
    long port, parallel, queue, max_conn, per_client, header_timeout, body_timeout, max_body,
        shutdown_timeout;
    /* tokenize */
    const char *tokenizer, *file;
    int ids, special;
    /* benchmark */
    long seq, iterations;
    int detailed, show_memory, no_fusion;
    /* not options */
    const char *positional[CLI_MAX_POSITIONALS];
    int n_positional;
    int help;                          /* -h, --help */
    int cmd;                           /* the enum cli_cmd parsed for */
    unsigned char given[CLI_MAX_ROWS]; /* per row of cli_rows[]: given on the command line */
    const char *typed[CLI_MAX_ROWS]; /* per row: the value as typed (messages), NULL if not given */
} cli_args_t;

/* row.group bits */
enum { CLI_GROUP_GEN = 1 }; /* a generation setting: `load` needs --prompt for it */

typedef struct {
    const char *name;     /* long name, without "--" */
    const char *alias;    /* another spelling, "-n" or "--temp" (NULL: none) */
    const char *value;    /* value name in help ("N"; NULL for CLI_T_FLAG) */
    int type;             /* CLI_T_FLAG, ... */
    size_t offset;        /* offsetof(cli_args_t, field) */
    unsigned cmds;        /* bit (1u << enum cli_cmd) per command that takes it */
    double min, max;      /* CLI_T_INT, CLI_T_FLOAT: the accepted range */
    const char *choices;  /* CLI_T_CHOICE: "auto|cpu|cuda" */
    const char *def;      /* the default, parsed like a typed value (NULL: 0/NULL) */
    const char *def_doc;  /* the default in words when def alone would mislead */
    const char *help;     /* what it does, one sentence (wrapped when printed) */
    int group;            /* CLI_GROUP_* bits */
    const char *implicit; /* the value when given without one ("--dashboard" alone): the value
                           * is then optional, "--x=V" or a next word that starts with a digit
                           * (NULL: a value is required) */
} cli_row_t;
extern const cli_row_t cli_rows[];
extern const int cli_n_rows;

/* Fills a from the command line of command cmd (argv[0] is the command's
 * name) after setting every row's default. Returns 0 (a->help set when -h
 * or --help was given: print the help, exit 0), or -1 with one line in err
 * for an unknown or misplaced option, a missing or bad value, or an
 * operand the command does not take: exit 2 (CLI_USAGE). */
int cli_args_parse(int cmd, int argc, char **argv, cli_args_t *a, char *err);
/* Whether the option stored in field (&a->seed, ...) was given. */
int cli_args_given(const cli_args_t *a, const void *field);
/* Whether any option of the group bits was given. */
int cli_args_group_given(const cli_args_t *a, int group);
/* The value as typed for field (for messages; "" when not given). */
const char *cli_args_typed(const cli_args_t *a, const void *field);
/* `minigpt CMD --help`: the usage line, a line per option, the notes. */
void cli_args_help(FILE *f, int cmd);
/* The options of cmd as a Markdown table (the README's). */
void cli_args_markdown(FILE *f, int cmd);
/* The command's index by name, -1 if none. */
int cli_command_find(const char *name);

#endif
