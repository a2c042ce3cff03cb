/* test_curve.c - the training log's loss curve: parsing, SVG, sparkline. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "train/curve.h"
#include "util/common.h"

static char dir[64];

static const char *write_file(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_load_svg_sparkline(void **state) {
    (void)state;
    char err[MG_ERR_LEN], log[64 * 8 * 120] = "";
    for (int s = 1; s <= 64; s++) {
        char line[160];
        snprintf(line, sizeof line,
                 "{\"step\":%d,\"tokens\":%d,\"train_loss\":%.3f,\"lr\":0.001%s}\n", s, s * 1000,
                 8.0 - s * 0.05, s % 16 == 0 ? ",\"val_loss\":5.5,\"val_bpb\":2.25" : "");
        strcat(log, line);
    }
    const char *path = write_file("log.jsonl", log);
    curve_t c;
    assert_int_equal(curve_load(path, &c, err), 0);
    assert_int_equal(c.n_train, 64);
    assert_int_equal(c.n_val, 4);
    assert_float_equal(c.train[63].tokens, 64000, 1e-9);
    assert_float_equal(c.val[0].loss, 5.5, 1e-9);
    assert_float_equal(c.last_bpb, 2.25, 1e-9);
    char svg[128];
    snprintf(svg, sizeof svg, "%s/c.svg", dir);
    assert_int_equal(curve_svg(&c, "title", svg, err), 0);
    size_t len;
    char *text = mg_read_file(svg, &len, err);
    assert_non_null(text);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "tokens seen (thousands)"));
    assert_non_null(strstr(text, "validation loss"));
    assert_non_null(strstr(text, "2.250 bits/byte"));
    /* two polylines: train (64 points) and validation (4 points) */
    char *p1 = strstr(text, "<polyline"), *p2 = p1 ? strstr(p1 + 1, "<polyline") : NULL;
    assert_non_null(p2);
    mg_free(text);
    char spark[3 * 8 + 1];
    curve_sparkline(&c, 8, spark);
    /* a falling loss: first cell highest, last lowest */
    assert_int_equal(strlen(spark), 24);
    assert_memory_equal(spark, "█", 3);
    assert_memory_equal(spark + 21, "▁", 3);
    curve_free(&c);
}

static void test_bad_logs(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    curve_t c;
    assert_int_equal(curve_load(write_file("bad1", "not json\n"), &c, err), -1);
    assert_non_null(strstr(err, ":1:"));
    assert_int_equal(
        curve_load(write_file("bad2", "{\"step\":1,\"tokens\":5,\"train_loss\":1}\n[1]\n"), &c,
                   err),
        -1);
    assert_non_null(strstr(err, ":2:"));
    assert_int_equal(
        curve_load(write_file("bad3", "{\"tokens\":5,\"train_loss\":1e999}\n"), &c, err), -1);
    assert_non_null(strstr(err, "not a finite number"));
    assert_int_equal(curve_load(write_file("empty", ""), &c, err), -1);
    assert_int_equal(curve_load("/nonexistent/log", &c, err), -1);
    assert_int_equal(mg_mem_current(), 0);
}

/* Flat curves, small and huge: a few ticks, finite coordinates, and an
 * end (a span too small for the values' magnitude once looped forever). */
static void test_flat_curves(void **state) {
    (void)state;
    char err[MG_ERR_LEN], svg[128];
    const char *logs[] = {
        "{\"tokens\":1,\"train_loss\":5}\n{\"tokens\":2,\"train_loss\":5}\n",
        "{\"tokens\":1,\"train_loss\":1e17}\n{\"tokens\":2,\"train_loss\":1e17}\n",
        "{\"tokens\":0,\"train_loss\":0}\n"};
    for (int i = 0; i < 3; i++) {
        curve_t c;
        assert_int_equal(curve_load(write_file("flat", logs[i]), &c, err), 0);
        snprintf(svg, sizeof svg, "%s/flat.svg", dir);
        assert_int_equal(curve_svg(&c, "title", svg, err), 0);
        size_t len;
        char *text = mg_read_file(svg, &len, err);
        assert_non_null(text);
        assert_true(len < 8000);
        assert_null(strstr(text, "nan"));
        assert_null(strstr(text, "inf"));
        char spark[3 * 8 + 1];
        curve_sparkline(&c, 8, spark);
        assert_memory_equal(spark, "▁", 3);
        mg_free(text);
        curve_free(&c);
    }
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mgcurveXXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_svg_sparkline),
        cmocka_unit_test(test_bad_logs),
        cmocka_unit_test(test_flat_curves),
    };
    int rc = cmocka_run_group_tests_name("curve", tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
