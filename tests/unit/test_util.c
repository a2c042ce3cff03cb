/* test_util.c - util/: opening a user's file without blocking (FIFOs,
 * devices and directories refused in one line), the escaping of control
 * characters for the terminal, the UTF-8 helpers (validation, character
 * lengths, the boundaries of streamed text), a path's folder and the
 * atomic writer written in pieces (util/atomic.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/atomic.h"
#include "util/common.h"
#include "util/utf8.h"

static char dir[64];

static void test_open_regular(void **state) {
    (void)state;
    char err[MG_ERR_LEN], path[128];
    size_t size = 0;
    snprintf(path, sizeof path, "%s/file.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("olá mundo", f);
    fclose(f);
    int fd = mg_open_regular(path, &size, err);
    assert_true(fd >= 0);
    assert_int_equal(size, strlen("olá mundo"));
    close(fd);
    char *text = mg_read_file(path, &size, err);
    assert_string_equal(text, "olá mundo");
    mg_free(text);

    /* a FIFO with no writer: refused at once (without O_NONBLOCK, open()
     * would wait for a writer and this test would hang) */
    snprintf(path, sizeof path, "%s/pipe", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(mg_open_regular(path, &size, err), -1);
    assert_non_null(strstr(err, "a FIFO, not a regular file"));
    assert_null(mg_read_file(path, &size, err));
    assert_null(mg_fopen_regular(path, err));
    assert_null(strchr(err, '\n'));

    assert_int_equal(mg_open_regular(dir, &size, err), -1);
    assert_non_null(strstr(err, "Is a directory"));
    assert_int_equal(mg_open_regular("/dev/null", &size, err), -1);
    assert_non_null(strstr(err, "a character device"));
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(mg_open_regular(path, &size, err), -1);
    assert_non_null(strstr(err, "No such file"));
}

static void test_printable(void **state) {
    (void)state;
    char out[64];
    assert_string_equal(mg_printable("plain é.safetensors", out, sizeof out),
                        "plain é.safetensors");
    assert_string_equal(mg_printable("a\x1b[31mb\nc\x7f", out, sizeof out),
                        "a\\x1b[31mb\\x0ac\\x7f");
    /* U+009B, the one-byte CSI of 8-bit terminals, encoded in UTF-8 */
    assert_string_equal(mg_printable("x\xc2\x9b"
                                     "2J",
                                     out, sizeof out),
                        "x\\xc2\\x9b2J");
    /* cut short, never past the buffer, never half an escape */
    char small[6];
    assert_string_equal(mg_printable("ab\ncd", small, sizeof small), "ab");
    assert_string_equal(mg_printable("", small, sizeof small), "");
}

static void test_utf8(void **state) {
    (void)state;
    const unsigned char *s = (const unsigned char *)"a\xc3\xa7\xc3"; /* "aç" + half of "ã" */
    assert_int_equal(utf8_complete_prefix(s, 4), 3);
    assert_int_equal(utf8_complete_prefix(s, 3), 3);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"\xe2\x82", 2), 0);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"x\xff", 2), 2); /* never valid */
    assert_true(utf8_valid((const unsigned char *)"a\xc3\xa7\xe2\x82\xac", 6));
    assert_false(utf8_valid((const unsigned char *)"\xc0\xaf", 2));     /* overlong */
    assert_false(utf8_valid((const unsigned char *)"\xed\xa0\x80", 3)); /* surrogate */
    unsigned char out[32];
    size_t n = utf8_repair((const unsigned char *)"a\xc3z\xff", 4, out);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "a\xef\xbf\xbdz\xef\xbf\xbd", 8);
    /* utf8_seq: the checkpoint header's rules (overlongs, surrogates, past U+10FFFF) */
    assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98", 3), 0); /* cut short */
    assert_int_equal(utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
    assert_int_equal(utf8_seq((const unsigned char *)"\xe0\x9f\xbf", 3), 0);
    assert_int_equal(utf8_seq((const unsigned char *)"\xbf", 1), 0);
    /* utf8_char_len: lengths in valid text, and a stray byte still advances */
    assert_int_equal(utf8_char_len('a'), 1);
    assert_int_equal(utf8_char_len(0xc3), 2);
    assert_int_equal(utf8_char_len(0xe2), 3);
    assert_int_equal(utf8_char_len(0xf0), 4);
    assert_int_equal(utf8_char_len(0x80), 1);
}

static void test_parent_dir(void **state) {
    (void)state;
    char b[64];
    assert_string_equal(mg_parent_dir("x.safetensors", b, sizeof b), ".");
    assert_string_equal(mg_parent_dir("/x", b, sizeof b), "/");
    assert_string_equal(mg_parent_dir("/a/b/c.json", b, sizeof b), "/a/b");
    assert_string_equal(mg_parent_dir("runs/a/", b, sizeof b), "runs/a");
}

/* how many "*.tmp.*" entries dir holds */
static int temps(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -c '\\.tmp\\.' >/dev/null", dir);
    return system(cmd) == 0;
}

static void test_atomic_file(void **state) {
    (void)state;
    char path[128], err[MG_ERR_LEN], *got;
    size_t len;
    snprintf(path, sizeof path, "%s/out.bin", dir);
    mg_atomic_file_t f = {0};
    mg_atomic_abort(&f); /* a zeroed writer: nothing to drop, fd 0 left alone */
    assert_int_equal(mg_write_atomic(path, "old", 3, err), 0);
    /* pieces, then the commit: the new content, no temp file */
    assert_int_equal(mg_atomic_open(&f, path, err), 0);
    mg_atomic_write(&f, "ab", 2);
    mg_atomic_write(&f, "", 0);
    mg_atomic_write(&f, "cd", 2);
    assert_true(temps());
    assert_int_equal(mg_atomic_close(&f, err), 0);
    assert_non_null(got = mg_read_file(path, &len, err));
    assert_int_equal(len, 4);
    assert_memory_equal(got, "abcd", 4);
    mg_free(got);
    assert_false(temps());
    /* an abort, and a failed write: the old file stays, no temp file */
    assert_int_equal(mg_atomic_open(&f, path, err), 0);
    mg_atomic_write(&f, "zz", 2);
    mg_atomic_abort(&f);
    mg_atomic_abort(&f);
    assert_int_equal(mg_atomic_open(&f, path, err), 0);
    mg_atomic_write(&f, "zz", 2);
    f.failed = ENOSPC; /* as a full disk leaves it */
    assert_int_equal(mg_atomic_close(&f, err), -1);
    assert_non_null(strstr(err, "write to"));
    assert_non_null(got = mg_read_file(path, &len, err));
    assert_int_equal(len, 4);
    mg_free(got);
    assert_false(temps());
    /* a missing folder: one line, nothing created */
    snprintf(path, sizeof path, "%s/nope/out.bin", dir);
    assert_int_equal(mg_atomic_open(&f, path, err), -1);
    assert_non_null(strstr(err, "cannot create"));
    mg_atomic_abort(&f);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mgutilXXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_regular), cmocka_unit_test(test_printable),
        cmocka_unit_test(test_utf8),         cmocka_unit_test(test_parent_dir),
        cmocka_unit_test(test_atomic_file),
    };
    int rc = cmocka_run_group_tests_name("util", tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
