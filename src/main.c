/* main.c - the minigpt command: parse the command line with the option
 * table (cli/args.h), run the subcommand, print its error, exit with its
 * code (0 ok, 1 runtime error, 2 usage error). The only place that prints
 * errors or exits. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "train/dist.h"
#include "util/common.h"
#include "version.h" /* MG_VERSION, MG_COMMIT, MG_BACKENDS: written by the Makefile */

static int (*const run[CLI_N_CMDS])(const cli_args_t *a, char *err) = {
    [CLI_TRAIN] = cli_train,     [CLI_GENERATE] = cli_generate, [CLI_EVAL] = cli_eval,
    [CLI_PLOT] = cli_plot,       [CLI_LIST] = cli_list,         [CLI_LOAD] = cli_load,
    [CLI_CHAT] = cli_chat,       [CLI_SERVE] = cli_serve,       [CLI_BENCHMARK] = cli_benchmark,
    [CLI_CONVERT] = cli_convert, [CLI_TOKENIZE] = cli_tokenize,
};

static void usage(FILE *f) {
    fprintf(f, "usage: minigpt <command> [options]\n\ncommands:\n");
    for (int i = 0; i < CLI_N_CMDS; i++)
        fprintf(f, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(
        f, "\n'minigpt <command> --help' (or 'minigpt help <command>') lists a command's options;\n"
           "'minigpt help --markdown [command]' prints them as the README's tables;\n"
           "'minigpt --version' prints the version, commit and backends.\n");
}

/* minigpt help [--markdown] [COMMAND] */
static int help(int argc, char **argv, char *err) {
    int markdown = 0, cmd = -1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--markdown") == 0)
            markdown = 1;
        else if (cmd < 0 && (cmd = cli_command_find(argv[i])) >= 0)
            continue;
        else
            return mg_fail(err, "help: unexpected argument '%s' (try 'minigpt --help')", argv[i]);
    }
    if (!markdown) {
        if (cmd < 0)
            usage(stdout);
        else
            cli_args_help(stdout, cmd);
        return 0;
    }
    for (int i = 0; i < CLI_N_CMDS; i++) {
        if (cmd >= 0 && i != cmd) continue;
        if (cmd < 0) printf("%s### `minigpt %s`\n\n", i ? "\n" : "", cli_commands[i].name);
        cli_args_markdown(stdout, i);
    }
    return 0;
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
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("minigpt %s (commit %s; backends: %s)\n", MG_VERSION, MG_COMMIT, MG_BACKENDS);
        return CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (help(argc, argv, err) == 0) return CLI_OK;
        fprintf(stderr, "minigpt: %s\n", err);
        return CLI_USAGE;
    }
    int cmd = cli_command_find(argv[1]);
    if (cmd < 0) {
        fprintf(stderr, "minigpt: unknown command '%s' (try 'minigpt --help')\n", argv[1]);
        return CLI_USAGE;
    }
    cli_args_t a;
    if (cli_args_parse(cmd, argc - 1, argv + 1, &a, err) != 0) {
        fprintf(stderr, "minigpt: %s\n", err);
        return CLI_USAGE;
    }
    if (a.help) {
        cli_args_help(stdout, cmd);
        return CLI_OK;
    }
    int rc = run[cmd](&a, err);
    /* under mpirun, an error every rank shares is printed by rank 0 only */
    if (rc != CLI_OK && !dist_quiet()) fprintf(stderr, "minigpt: %s\n", err[0] ? err : "failed");
    return rc;
}
