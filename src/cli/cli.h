/* cli.h - subcommands and the option-parsing helpers they share.
 * A subcommand returns an exit code (CLI_OK, CLI_ERR, CLI_USAGE) and leaves
 * a one-line reason in err; main() prints it and exits. */
#ifndef MG_CLI_H
#define MG_CLI_H

#include <getopt.h>

#include "model/gpt.h"

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

int cli_train(int argc, char **argv, char *err);
int cli_generate(int argc, char **argv, char *err);

/* Strict number parsing for flag values: the whole string must be a number
 * in [min, max]. Return 0, or -1 with "--flag: ..." in err. */
int cli_int(const char *flag, const char *s, long min, long max, long *out, char *err);
int cli_float(const char *flag, const char *s, double min, double max, double *out, char *err);
/* The message for getopt_long's '?' and ':' returns (opterr must be 0 and
 * optstring start with ':'). Returns CLI_USAGE. */
int cli_bad_option(const char *cmd, int c, char **argv, char *err);
/* Applies --preset and the shape flags; the preset is applied first. */
typedef struct {
    const char *preset;
    long layers, heads, dim, ctx, vocab; /* 0: from the preset */
} cli_shape_t;
int cli_shape(const cli_shape_t *s, gpt_config_t *cfg, char *err);
/* The checkpoint to use when none is given: best, else final model. */
const char *cli_default_checkpoint(const char *dir);

#endif
