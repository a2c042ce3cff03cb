/* main.c - the minigpt command: dispatch to a subcommand, print its error,
 * exit with its code (0 ok, 1 runtime error, 2 usage error). The only
 * place that prints errors or exits. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ops/ops.h"
#include "util/common.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv, char *err);
    const char *help;
} commands[] = {
    {"train", cli_train, "train a GPT on a text file (tokenizer included)"},
    {"generate", cli_generate, "generate text from a checkpoint"},
    {"eval", cli_eval, "loss, perplexity and bits per byte of a checkpoint on a text"},
    {"plot", cli_plot, "draw a run's loss curve (SVG) from its train_log.jsonl"},
    {"list", cli_list, "list the checkpoints of a directory, best first"},
    {"load", cli_load, "choose and load a checkpoint (best, latest, search, menu)"},
    {"chat", cli_chat, "talk with a checkpoint (REPL on a terminal; --educational explains)"},
    {"serve", cli_serve, "serve a checkpoint over HTTP (the OpenAI completions API)"},
    {"tokenize", cli_tokenize, "a text's token ids and pieces (any length)"},
    {"benchmark", cli_benchmark, "training and generation speed, MFU, per-op times, memory (random weights)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: minigpt <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'minigpt <command> --help' lists a command's options.\n");
}

int main(int argc, char **argv) {
    char err[MG_ERR_LEN] = "";
    ops_cpu_select_kernels(argv);
    /* past a file-size limit, let write() fail with EFBIG (reported like a
     * full disk) instead of the default SIGXFSZ killing the process */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "minigpt: no command given (try 'minigpt --help')\n");
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1, err);
            if (rc != CLI_OK) fprintf(stderr, "minigpt: %s\n", err[0] ? err : "failed");
            return rc;
        }
    }
    fprintf(stderr, "minigpt: unknown command '%s' (try 'minigpt --help')\n", argv[1]);
    return CLI_USAGE;
}
