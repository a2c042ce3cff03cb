/* test_util.c - the UTF-8 helpers: validation, character lengths and the
 * boundaries of streamed text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/utf8.h"

static void test_utf8(void **state) {
    (void)state;
    const unsigned char *s = (const unsigned char *)"a\xc3\xa7\xc3"; /* "aç" + half of "ã" */
    assert_int_equal(utf8_complete_prefix(s, 4), 3);
    assert_int_equal(utf8_complete_prefix(s, 3), 3);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"\xe2\x82", 2), 0);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(utf8_complete_prefix((const unsigned char *)"x\xff", 2), 2); /* never valid */
    assert_true(utf8_valid((const unsigned char *)"a\xc3\xa7\xe2\x82\xac", 6));
    assert_false(utf8_valid((const unsigned char *)"\xc0\xaf", 2)); /* overlong */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
