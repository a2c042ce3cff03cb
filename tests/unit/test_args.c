/* test_args.c - the option table (src/cli/args.c): its rows are consistent
 * (one meaning per name and command, defaults that parse, a help line each)
 * and the one parser takes values, aliases and refusals as documented. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

static int same_name(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* no name or alias has two rows for one command; every row is documented */
static void test_rows_consistent(void **state) {
    (void)state;
    for (int i = 0; i < cli_n_rows; i++) {
        const cli_row_t *r = &cli_rows[i];
        assert_non_null(r->help);
        assert_true(r->cmds != 0);
        if (r->type == CLI_T_CHOICE)
            assert_non_null(r->choices);
        else if (r->type != CLI_T_FLAG)
            assert_non_null(r->value);
        for (int j = 0; j < i; j++) {
            const cli_row_t *q = &cli_rows[j];
            int clash = same_name(r->name, q->name) || same_name(r->alias, q->alias) ||
                        same_name(r->alias, q->name) || same_name(r->name, q->alias);
            if (clash && (r->cmds & q->cmds))
                fail_msg("rows %d and %d: '%s' twice for one command", j, i, r->name);
        }
    }
}

static int parse(int cmd, const char *const *args, int n, cli_args_t *a, char *err) {
    char *argv[32] = {(char *)cli_commands[cmd].name};
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    return cli_args_parse(cmd, n + 1, argv, a, err);
}

/* the defaults of every command parse, and land in their fields */
static void test_defaults(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    cli_args_t a;
    for (int c = 0; c < CLI_N_CMDS; c++)
        assert_int_equal(parse(c, NULL, 0, &a, err), 0);
    assert_int_equal(parse(CLI_GENERATE, NULL, 0, &a, err), 0);
    assert_int_equal(a.max_tokens, 200);
    assert_int_equal(a.seed, -1);
    assert_true(a.temperature == 0.8 && a.top_p == 0.95);
    assert_string_equal(a.device, "auto");
    assert_int_equal(parse(CLI_SERVE, NULL, 0, &a, err), 0);
    assert_int_equal(a.port, 8080);
    assert_false(cli_args_given(&a, &a.port));
}

static void test_values_and_aliases(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    cli_args_t a;
    const char *gen[] = {"-m", "x.safetensors",    "-p",       "O Brasil",   "-n", "0",
                         "-s", "9007199254740991", "--temp=0", "-t",         "2",  "--stop",
                         "a",  "--stop",           "b",        "--quantize", "q8"};
    assert_int_equal(parse(CLI_GENERATE, gen, 17, &a, err), 0);
    assert_string_equal(a.checkpoint, "x.safetensors");
    assert_string_equal(a.prompt, "O Brasil");
    assert_int_equal(a.max_tokens, 0);
    assert_int_equal(a.seed, 9007199254740991L);
    assert_true(a.temperature == 0);
    assert_int_equal(a.threads, 2);
    assert_string_equal(a.stop[0], "a");
    assert_string_equal(a.stop[1], "b");
    assert_null(a.stop[2]);
    assert_true(cli_args_given(&a, &a.seed) && cli_args_group_given(&a, CLI_GROUP_GEN));
    const char *ev[] = {"-c", "32", "--data", "t.txt", "--", "-x"};
    assert_int_equal(parse(CLI_EVAL, ev, 4, &a, err), 0);
    assert_int_equal(a.ctx, 32);
    const char *pl[] = {"--", "-log.jsonl"}; /* after --, an operand even with a dash */
    assert_int_equal(parse(CLI_PLOT, pl, 2, &a, err), 0);
    assert_int_equal(a.n_positional, 1);
    assert_string_equal(a.positional[0], "-log.jsonl");
    const char *neg[] = {"--repeat-penalty", "-1"}; /* a value may start with '-' */
    assert_int_equal(parse(CLI_GENERATE, neg, 2, &a, err), -1);
    assert_non_null(strstr(err, "--repeat-penalty: -1 is out of range [0.01, 100]"));
}

static void test_refusals(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    cli_args_t a;
    struct {
        int cmd;
        const char *args[6];
        int n;
        const char *says;
    } cases[] = {
        {CLI_TRAIN, {"--bogus"}, 1, "train: unknown option '--bogus' (see 'minigpt train --help')"},
        {CLI_CHAT,
         {"--show-tokens"},
         1,
         "chat: unknown option '--show-tokens' (an option of generate, load;"},
        {CLI_TRAIN, {"--temp", "1"}, 2, "train: unknown option '--temp' (an option of"},
        {CLI_CHAT, {"-n", "0"}, 2, "--max-tokens: 0 is out of range [1, 16777216]"},
        {CLI_GENERATE,
         {"-n", "20000000"},
         2,
         "--max-tokens: 20000000 is out of range [0, 16777216]"},
        {CLI_GENERATE, {"--temperature", "200"}, 2, "--temperature: 200 is out of range [0, 100]"},
        {CLI_GENERATE, {"--seed", "9007199254740992"}, 2, "is out of range [0, 9007199254740991]"},
        {CLI_GENERATE, {"--max-tokens"}, 1, "generate: option '--max-tokens' needs a value"},
        {CLI_LIST, {"--json=1"}, 1, "list: option '--json' takes no value"},
        {CLI_LIST, {"models"}, 1, "list: unexpected argument 'models'"},
        {CLI_PLOT, {"a", "b"}, 2, "plot: unexpected argument 'b'"},
        {CLI_BENCHMARK, {"--device", "gpu"}, 2, "--device: 'gpu' is not one of auto, cpu, cuda"},
        {CLI_EVAL, {"--quantize", "q4"}, 2, "--quantize: 'q4' is not one of q8, none"},
        {CLI_GENERATE, {"--stop", ""}, 2, "--stop: the string is empty"},
        {CLI_GENERATE, {"--top-k", "1.5"}, 2, "--top-k: '1.5' is not an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        assert_int_equal(parse(cases[i].cmd, cases[i].args, cases[i].n, &a, err), -1);
        if (!strstr(err, cases[i].says))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].says);
    }
    const char *five[] = {"--stop", "a",      "--stop", "b",      "--stop",
                          "c",      "--stop", "d",      "--stop", "e"};
    assert_int_equal(parse(CLI_GENERATE, five, 10, &a, err), -1);
    assert_non_null(strstr(err, "--stop: at most 4 strings"));
    const char *help[] = {"--bogus-after", "-h"};
    assert_int_equal(parse(CLI_LOAD, help + 1, 1, &a, err), 0);
    assert_true(a.help);
    assert_int_equal(parse(CLI_LOAD, help, 2, &a, err), -1); /* the first problem is the one told */
}

/* the architecture options: left to the preset (tiny's recipe, GPT-2's
 * block for micro), an optional on|off, and a backend without the recipe's
 * kernels falling back to GPT-2's block only when none was given */
static void test_recipe(void **state) {
    (void)state;
    char err[MG_ERR_LEN], note[MG_ERR_LEN];
    cli_args_t a;
    gpt_config_t cfg;
    const char *none[] = {"--preset", "tiny"};
    assert_int_equal(parse(CLI_TRAIN, none, 2, &a, err), 0);
    cli_shape_t s = cli_shape_of(&a);
    assert_false(cli_arch_given(&s));
    assert_int_equal(cli_shape(&s, &cfg, err), 0);
    assert_true(cfg.pos == GPT_POS_ROPE && cfg.norm == GPT_NORM_RMS && cfg.qk_norm &&
                cfg.mlp == GPT_MLP_RELU2 && cfg.untie_head && !cfg.zero_init);
    const ops_backend_t *cpu = ops_cpu();
    assert_int_equal(cli_recipe_fit(&s, &cfg, cpu, note), 0); /* the CPU has every kernel */
    ops_backend_t bare = *cpu;
    bare.name = "bare";
    bare.qk_forward = NULL;
    assert_int_equal(cli_recipe_fit(&s, &cfg, &bare, note), 1);
    assert_true(cfg.pos == GPT_POS_LEARNED && cfg.norm == GPT_NORM_LAYER && !cfg.qk_norm &&
                cfg.mlp == GPT_MLP_GELU && !cfg.untie_head && !cfg.zero_init);
    assert_true(cfg.dim == 128 && cfg.vocab == 8192 && cfg.layers == 2 && cfg.ctx == 256);
    assert_non_null(strstr(note, "the bare backend has no rotary position embeddings"));
    /* an option given: no fallback (gpt_create refuses it in one line) */
    const char *given[] = {"--preset", "tiny", "--qk-norm", "off", "--untie-head", "--mlp", "gelu"};
    assert_int_equal(parse(CLI_TRAIN, given, 7, &a, err), 0);
    assert_string_equal(a.qk_norm, "off");
    assert_string_equal(a.untie_head, "on");
    s = cli_shape_of(&a);
    assert_int_equal(cli_shape(&s, &cfg, err), 0);
    assert_true(!cfg.qk_norm && cfg.untie_head && cfg.mlp == GPT_MLP_GELU &&
                cfg.pos == GPT_POS_ROPE);
    assert_int_equal(cli_recipe_fit(&s, &cfg, &bare, note), 0);
    assert_int_equal(cfg.pos, GPT_POS_ROPE);
    const char *micro[] = {"--preset", "micro"};
    assert_int_equal(parse(CLI_TRAIN, micro, 2, &a, err), 0);
    s = cli_shape_of(&a);
    assert_int_equal(cli_shape(&s, &cfg, err), 0);
    assert_true(cfg.pos == GPT_POS_LEARNED && !cfg.qk_norm && cfg.mlp == GPT_MLP_GELU);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_consistent),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_and_aliases),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_recipe),
    };
    return cmocka_run_group_tests_name("args", tests, NULL, NULL);
}
