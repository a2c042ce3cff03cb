/* test_tokenizer.c - unit tests of the byte-level BPE tokenizer: GPT-2
 * pre-tokenization, hand-checked merges, encoding against a naive reference
 * of the Hugging Face rule, round trips, determinism, tokenizer.json
 * (round trip and hostile input) and serial vs parallel encoding.
 * Run from the repository root (reads data/corpus_pt_br.txt). */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tokenizer/bpe.h"
#include "tokenizer/pretok.h"
#include "util/common.h"

#define CORPUS "data/corpus_pt_br.txt"
#define ID(c) (BPE_BYTE0 + (unsigned char)(c))

/* Shared by the tests: the corpus and a tokenizer trained on its start. */
typedef struct {
    char *corpus;
    size_t corpus_len;
    size_t small_len; /* the prefix the small tokenizer was trained on */
    bpe_t *small;     /* 1000 merges on 300 kB */
    size_t mem_base;  /* counted bytes live after setup */
} fixture_t;

static fixture_t fx;

static int group_setup(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    fx.corpus = mg_read_file(CORPUS, &fx.corpus_len, err);
    if (!fx.corpus) {
        fprintf(stderr, "test_tokenizer: %s (run from the repository root)\n", err);
        return -1;
    }
    fx.small_len = MG_MIN(fx.corpus_len, (size_t)300000);
    fx.small = bpe_train(fx.corpus, fx.small_len, BPE_FIRST_MERGE + 1000, err);
    if (!fx.small) {
        fprintf(stderr, "test_tokenizer: %s\n", err);
        return -1;
    }
    fx.mem_base = mg_mem_current();
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    bpe_free(fx.small);
    mg_free(fx.corpus);
    return 0;
}

/* ---- helpers ---- */

typedef struct {
    char buf[4096];
    size_t len;
    int count;
} joined_t;

static int join_piece(void *ctx, const char *s, size_t n) {
    joined_t *j = ctx;
    if (j->count++) j->buf[j->len++] = '|';
    assert_true(j->len + n + 1 < sizeof j->buf);
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
    return 0;
}

/* The pre-tokens of s joined with '|'. */
static const char *split(const pretok_t *p, const char *s, size_t n, joined_t *j) {
    char err[MG_ERR_LEN] = "";
    memset(j, 0, sizeof *j);
    assert_int_equal(pretok_split(p, s, n, join_piece, j, err), 0);
    return j->buf;
}

static void encode_ok(const bpe_t *t, const char *s, size_t n, int32_t **ids, size_t *k) {
    char err[MG_ERR_LEN] = "";
    int rc = bpe_encode(t, s, n, ids, k, err);
    if (rc != 0) fail_msg("bpe_encode: %s", err);
}

static void assert_ids(const bpe_t *t, const char *s, const int32_t *want, size_t nwant) {
    int32_t *ids;
    size_t n;
    encode_ok(t, s, strlen(s), &ids, &n);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    mg_free(ids);
}

static void assert_merge(const bpe_t *t, int id, int left, int right) {
    int l, r;
    bpe_merge_pair(t, id, &l, &r);
    assert_int_equal(l, left);
    assert_int_equal(r, right);
}

static void assert_roundtrip(const bpe_t *t, const char *s, size_t n) {
    int32_t *ids;
    size_t k;
    char err[MG_ERR_LEN] = "", *back;
    size_t blen;
    encode_ok(t, s, n, &ids, &k);
    assert_true(k <= n);
    for (size_t i = 0; i < k; i++) {
        assert_true(ids[i] >= BPE_BYTE0);
        assert_true(ids[i] < bpe_vocab_size(t));
    }
    assert_int_equal(bpe_decode(t, ids, k, &back, &blen, err), 0);
    assert_int_equal(blen, n);
    assert_memory_equal(back, s, n);
    assert_int_equal(back[n], '\0');
    mg_free(back);
    mg_free(ids);
}

/* ---- pre-tokenization ---- */

static void test_pretok_gpt2_rules(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    pretok_t *p = pretok_new(err);
    assert_non_null(p);
    static const char *const cases[][2] = {
        {"ação", "ação"},
        {" ação", " ação"},
        {"a ação", "a| ação"},
        {"Olá, mundo!", "Olá|,| mundo|!"},
        {"abc123", "abc|123"},
        {" 2024 anos", " 2024| anos"},
        {"3.14", "3|.|14"},
        {"don't", "don|'t"},
        {"we'll I'm they've she'd", "we|'ll| I|'m| they|'ve| she|'d"},
        {"it's", "it|'s"},
        {"a  b", "a| | b"},
        {"a   b", "a|  | b"},
        {"a\n\nb", "a|\n|\n|b"},
        {"x\n  y", "x|\n | y"},
        {"fim   ", "fim|   "},
        {"   ", "   "},
        {"\t\tx", "\t|\t|x"},
        {"...!!", "...!!"},
        {" ?!", " ?!"},
        {"—Não", "—|Não"},
        {"R$ 10,00", "R|$| 10|,|00"},
        {"日本語 テスト", "日本語| テスト"},
        {"x²", "x|²"},
        {"a\xc2\xa0"
         "b",
         "a|\xc2\xa0|b"}, /* NBSP is whitespace */
    };
    joined_t j;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = split(p, cases[i][0], strlen(cases[i][0]), &j);
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("split(\"%s\") = \"%s\", want \"%s\"", cases[i][0], got, cases[i][1]);
    }
    pretok_free(p);
}

static void test_pretok_invalid_utf8(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    pretok_t *p = pretok_new(err);
    assert_non_null(p);
    joined_t j;
    assert_string_equal(split(p,
                              "a\xff"
                              "b",
                              3, &j),
                        "a|\xff|b");
    assert_string_equal(split(p, "\xff\xfe", 2, &j), "\xff|\xfe");
    assert_string_equal(split(p, "a\xc3", 2, &j), "a|\xc3"); /* truncated ã */
    assert_string_equal(split(p, "\xc3\xa3o\xa3", 4, &j), "\xc3\xa3o|\xa3");
    /* An embedded NUL is a character like any other (a control, so punctuation-like). */
    split(p, "a\0b", 3, &j);
    assert_int_equal(j.len, 5);
    assert_memory_equal(j.buf, "a|\0|b", 5);
    /* Surrogate encodings and overlongs are invalid: byte by byte. */
    assert_string_equal(split(p, "\xed\xa0\x80", 3, &j), "\xed|\xa0|\x80");
    assert_string_equal(split(p, "\xc0\xaf", 2, &j), "\xc0|\xaf");
    pretok_free(p);
}

/* Cutting at pretok_cut positions must not change the pieces. */
static void test_pretok_cut_is_safe(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    pretok_t *p = pretok_new(err);
    assert_non_null(p);
    static const char *const atoms[] = {"a", "b",  " ",  "  ",   "\n",   "\n\n", ".",   "ã",
                                        "1", "'s", "\t", "\xff", "\xc3", " x",   "!\n", "z\n"};
    mg_rng_t rng;
    mg_rng_seed(&rng, 7);
    for (int trial = 0; trial < 300; trial++) {
        char text[1024];
        size_t n = 0;
        while (n < 900) {
            const char *a = atoms[mg_rng_below(&rng, sizeof atoms / sizeof atoms[0])];
            memcpy(text + n, a, strlen(a));
            n += strlen(a);
        }
        joined_t whole, part;
        split(p, text, n, &whole);
        size_t *b;
        size_t nc = pretok_chunks(text, n, 1 + mg_rng_below(&rng, 60), &b);
        assert_true(nc >= 1);
        assert_int_equal(b[0], 0);
        assert_int_equal(b[nc], n);
        char cat[4096];
        size_t clen = 0;
        for (size_t c = 0; c < nc; c++) {
            assert_true(b[c] < b[c + 1]);
            split(p, text + b[c], b[c + 1] - b[c], &part);
            if (c) cat[clen++] = '|';
            memcpy(cat + clen, part.buf, part.len);
            clen += part.len;
        }
        assert_int_equal(clen, whole.len);
        assert_memory_equal(cat, whole.buf, clen);
        mg_free(b);
    }
    pretok_free(p);
}

typedef struct {
    size_t *len;
    size_t n, cap;
} lengths_t;

static int add_length(void *ctx, const char *s, size_t n) {
    (void)s;
    lengths_t *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->len = mg_realloc(l->len, l->cap * sizeof *l->len);
        assert_non_null(l->len);
    }
    l->len[l->n++] = n;
    return 0;
}

/* The interpreter fallback (used when JIT is unavailable) matches through a
 * bounded window; with tiny windows, under both engines, the pieces must be
 * exactly those of the default JIT split. */
static void test_pretok_engines_agree(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    pretok_t *ref = pretok_new(err);
    pretok_t *alt[] = {pretok_new_ex(0, 0, err), pretok_new_ex(0, 40, err),
                       pretok_new_ex(1, 33, err), pretok_new_ex(1, 1, err)};
    assert_non_null(ref);
    static const char *const atoms[] = {"a",    "bb",  " ",  "   ", "\n", ".",  "ã",
                                        "12",   "'ll", "'s", "'",   "l",  "\t", "\xff",
                                        "\xc3", " x",  "!!", "—",   "\0"};
    mg_rng_t rng;
    mg_rng_seed(&rng, 11);
    char *text = mg_malloc(200000);
    assert_non_null(text);
    for (int trial = 0; trial < 41; trial++) {
        size_t n = 0;
        if (trial == 40) { /* a slice of real text */
            n = MG_MIN((size_t)200000, fx.corpus_len);
            memcpy(text, fx.corpus, n);
        } else {
            size_t want = 1 + mg_rng_below(&rng, 3000);
            while (n < want) {
                const char *a = atoms[mg_rng_below(&rng, sizeof atoms / sizeof atoms[0])];
                size_t al = a[0] ? strlen(a) : 1;
                size_t rep = mg_rng_below(&rng, 8) == 0 ? 1 + mg_rng_below(&rng, 80) : 1;
                for (size_t r = 0; r < rep && n + al <= 190000; r++, n += al)
                    memcpy(text + n, a, al);
            }
        }
        lengths_t want = {0};
        assert_int_equal(pretok_split(ref, text, n, add_length, &want, err), 0);
        for (size_t k = 0; k < sizeof alt / sizeof alt[0]; k++) {
            assert_non_null(alt[k]);
            lengths_t got = {0};
            assert_int_equal(pretok_split(alt[k], text, n, add_length, &got, err), 0);
            if (got.n != want.n || memcmp(got.len, want.len, got.n * sizeof *got.len) != 0)
                fail_msg("trial %d: splitter %zu disagrees (%zu vs %zu pieces)", trial, k, got.n,
                         want.n);
            mg_free(got.len);
        }
        mg_free(want.len);
    }
    mg_free(text);
    for (size_t k = 0; k < sizeof alt / sizeof alt[0]; k++)
        pretok_free(alt[k]);
    pretok_free(ref);
}

/* ---- training on hand-checked corpora ---- */

/* "aaab aab ab xyz": pre-tokens "aaab", " aab", " ab", " xyz". Pair counts:
 * (a,a) 3, (a,b) 3, (' ',a) 2, the " xyz" pairs 1. Tie at 3 -> smaller ids:
 * (a,a) = 260. Then "aaab" is aa|a|b, " aab" is ' '|aa|b, " ab" is ' '|a|b:
 * (a,b) 2 is the only pair seen twice -> 261. After that every pair occurs
 * once: training stops at vocab 262 although 300 was asked. */
static void test_train_hand_aaab(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *text = "aaab aab ab xyz";
    bpe_t *t = bpe_train(text, strlen(text), 300, err);
    assert_non_null(t);
    assert_int_equal(bpe_num_merges(t), 2);
    assert_int_equal(bpe_vocab_size(t), 262);
    assert_merge(t, 260, ID('a'), ID('a'));
    assert_merge(t, 261, ID('a'), ID('b'));
    size_t len;
    const unsigned char *s = bpe_token_bytes(t, 261, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(s, "ab", 2);
    assert_ids(t, "aaab", (int32_t[]){260, 261}, 2);
    assert_ids(t, " aab", (int32_t[]){ID(' '), 260, ID('b')}, 3);
    assert_ids(t, "aaaa", (int32_t[]){260, 260}, 2);
    assert_ids(t, "aaa", (int32_t[]){260, ID('a')}, 2); /* leftmost first */
    assert_ids(t, " xyz", (int32_t[]){ID(' '), ID('x'), ID('y'), ID('z')}, 4);
    bpe_free(t);
}

/* "ab ab ab cd cd": "ab" x1, " ab" x2, " cd" x2. (a,b) 3 -> 260. Then
 * (' ',ab) 2, (' ',c) 2, (c,d) 2 tie: smallest ids (36,103) = " c" -> 261;
 * then (36,260) " ab" -> 262 beats (261,104) " cd" -> 263. */
static void test_train_hand_ties(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *text = "ab ab ab cd cd";
    bpe_t *t = bpe_train(text, strlen(text), 1000, err);
    assert_non_null(t);
    assert_int_equal(bpe_vocab_size(t), 264);
    assert_merge(t, 260, ID('a'), ID('b'));
    assert_merge(t, 261, ID(' '), ID('c'));
    assert_merge(t, 262, ID(' '), 260);
    assert_merge(t, 263, 261, ID('d'));
    assert_ids(t, " cd ab", (int32_t[]){263, 262}, 2);
    /* " cab": (a,b) has the lowest rank so it merges first even though
     * (' ',c) is further left; then " c" + "ab" has no merge. */
    assert_ids(t, " cab", (int32_t[]){261, 260}, 2);
    assert_ids(t, "abcd", (int32_t[]){260, ID('c'), ID('d')}, 3);
    bpe_free(t);
}

static void test_train_arguments(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    assert_null(bpe_train("abc", 3, 259, err));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_null(bpe_train("abc", 3, (1 << 20) + 1, err));
    assert_true(err[0] != '\0');
    bpe_t *t = bpe_train("", 0, 5000, err);
    assert_non_null(t);
    assert_int_equal(bpe_vocab_size(t), 260);
    int32_t *ids;
    size_t n;
    encode_ok(t, "", 0, &ids, &n);
    assert_int_equal(n, 0);
    mg_free(ids);
    assert_roundtrip(t, "sem merges: bytes só", strlen("sem merges: bytes só"));
    int l, r;
    bpe_merge_pair(t, 260, &l, &r);
    assert_int_equal(l, -1);
    assert_int_equal(r, -1);
    bpe_free(t);
}

static void test_train_deterministic(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    size_t n = MG_MIN(fx.corpus_len, (size_t)500000);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    bpe_t *a = bpe_train(fx.corpus, n, 1260, err);
#ifdef _OPENMP
    omp_set_num_threads(MG_MAX(threads, 3)); /* more threads than cores is fine */
#endif
    bpe_t *b = bpe_train(fx.corpus, n, 1260, err);
    bpe_t *c = bpe_train(fx.corpus, n, 1260, err);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(bpe_vocab_size(a), 1260);
    assert_int_equal(bpe_vocab_size(b), 1260);
    for (int id = BPE_FIRST_MERGE; id < 1260; id++) {
        int la, ra, lb, rb, lc, rc;
        bpe_merge_pair(a, id, &la, &ra);
        bpe_merge_pair(b, id, &lb, &rb);
        bpe_merge_pair(c, id, &lc, &rc);
        assert_int_equal(la, lb);
        assert_int_equal(ra, rb);
        assert_int_equal(la, lc);
        assert_int_equal(ra, rc);
        assert_true(la >= BPE_BYTE0 && la < id && ra >= BPE_BYTE0 && ra < id);
    }
    /* Portuguese text: the first merge is a space-prefixed letter pair or a
     * common letter pair, never something with a special id. */
    size_t len;
    const unsigned char *s = bpe_token_bytes(a, BPE_FIRST_MERGE, &len);
    assert_int_equal(len, 2);
    assert_non_null(s);
    bpe_free(a);
    bpe_free(b);
    bpe_free(c);
}

/* ---- encoding ---- */

/* Naive reference of the Hugging Face rule: in each pre-token, repeatedly
 * merge the adjacent pair with the lowest rank, leftmost on ties. */
typedef struct {
    int32_t *rank; /* [V * V] or -1 */
    int v;
    int32_t *out;
    size_t n;
} naive_t;

static int naive_piece(void *ctx, const char *s, size_t n) {
    naive_t *nv = ctx;
    int32_t sym[4096];
    assert_true(n < 4096);
    for (size_t i = 0; i < n; i++)
        sym[i] = ID(s[i]);
    size_t k = n;
    for (;;) {
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < k; i++) {
            int32_t r = nv->rank[(size_t)sym[i] * nv->v + sym[i + 1]];
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                at = i;
            }
        }
        if (best < 0) break;
        sym[at] = BPE_FIRST_MERGE + best;
        memmove(sym + at + 1, sym + at + 2, (k - at - 2) * sizeof *sym);
        k--;
    }
    memcpy(nv->out + nv->n, sym, k * sizeof *sym);
    nv->n += k;
    return 0;
}

static void test_encode_matches_naive_reference(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const bpe_t *t = fx.small;
    int v = bpe_vocab_size(t);
    naive_t nv = {.v = v};
    nv.rank = mg_malloc((size_t)v * v * sizeof *nv.rank);
    assert_non_null(nv.rank);
    memset(nv.rank, 0xff, (size_t)v * v * sizeof *nv.rank);
    for (int id = BPE_FIRST_MERGE; id < v; id++) {
        int l, r;
        bpe_merge_pair(t, id, &l, &r);
        nv.rank[(size_t)l * v + r] = id - BPE_FIRST_MERGE;
    }
    pretok_t *p = pretok_new(err);
    assert_non_null(p);
    /* Text the tokenizer has not seen, plus repeated-letter runs where
     * overlapping pairs make the leftmost rule matter. */
    const char *texts[] = {fx.corpus + fx.small_len, "aaaaaaa eeeee ssss    rrr", "ooo\n\n\n  x"};
    size_t lens[] = {MG_MIN((size_t)200000, fx.corpus_len - fx.small_len), 0, 0};
    for (int i = 1; i < 3; i++)
        lens[i] = strlen(texts[i]);
    for (int i = 0; i < 3; i++) {
        nv.out = mg_malloc((lens[i] + 1) * sizeof *nv.out);
        nv.n = 0;
        assert_int_equal(pretok_split(p, texts[i], lens[i], naive_piece, &nv, err), 0);
        int32_t *ids;
        size_t n;
        encode_ok(t, texts[i], lens[i], &ids, &n);
        assert_int_equal(n, nv.n);
        assert_memory_equal(ids, nv.out, n * sizeof *ids);
        mg_free(ids);
        mg_free(nv.out);
    }
    pretok_free(p);
    mg_free(nv.rank);
}

static void random_text(mg_rng_t *rng, char *s, size_t n, int kind) {
    static const char *const utf8[] = {"ã", "ç", "é", "—", "日", "😀", " ", "a", "\n", "'s", "1"};
    size_t i = 0;
    while (i < n) {
        switch (kind) {
        case 0: /* any byte, NULs and invalid UTF-8 included */
            s[i++] = (char)mg_rng_below(rng, 256);
            break;
        case 1: /* small alphabet with NUL: long repeats and many merges */
            s[i++] = "ab \0\n"[mg_rng_below(rng, 5)];
            break;
        case 2: { /* valid UTF-8 pieces, cut at n so the tail may be invalid */
            const char *a = utf8[mg_rng_below(rng, sizeof utf8 / sizeof utf8[0])];
            for (size_t k = 0; a[k] && i < n; k++)
                s[i++] = a[k];
            break;
        }
        default: { /* runs of one byte */
            char c = " a\n.\xff"[mg_rng_below(rng, 5)];
            size_t run = 1 + mg_rng_below(rng, 300);
            for (size_t k = 0; k < run && i < n; k++)
                s[i++] = c;
        }
        }
    }
}

static void test_roundtrip_random_bytes(void **state) {
    (void)state;
    mg_rng_t rng;
    mg_rng_seed(&rng, 42);
    char *buf = mg_malloc(4096);
    assert_non_null(buf);
    for (int trial = 0; trial < 800; trial++) {
        size_t n = mg_rng_below(&rng, 4096);
        random_text(&rng, buf, n, trial % 4);
        assert_roundtrip(fx.small, buf, n);
    }
    /* Corpus slices starting and ending mid-character. */
    for (int trial = 0; trial < 50; trial++) {
        size_t off = mg_rng_below(&rng, (uint32_t)(fx.corpus_len - 5000));
        assert_roundtrip(fx.small, fx.corpus + off, 1 + mg_rng_below(&rng, 4999));
    }
    mg_free(buf);
}

/* One pre-token of 1 MB (letters) and a 1 MB whitespace run: the heap-based
 * merge keeps this fast and the regex must not run out of JIT stack. */
static void test_long_pretokens(void **state) {
    (void)state;
    size_t n = 1 << 20;
    char *s = mg_malloc(n);
    assert_non_null(s);
    memset(s, 'a', n);
    assert_roundtrip(fx.small, s, n);
    memset(s, ' ', n);
    assert_roundtrip(fx.small, s, n);
    for (size_t i = 0; i < n; i++)
        s[i] = "\xc3\xa3"[i & 1]; /* "ããã..." */
    assert_roundtrip(fx.small, s, n);
    mg_free(s);
}

static void test_decode_rules(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "", *out;
    size_t len;
    const bpe_t *t = fx.small;
    int32_t ids[] = {BPE_BOS, ID('o'), BPE_PAD, ID('i'), BPE_UNK, BPE_EOS};
    assert_int_equal(bpe_decode(t, ids, 6, &out, &len, err), 0);
    assert_int_equal(len, 2);
    assert_string_equal(out, "oi");
    mg_free(out);
    assert_int_equal(bpe_decode(t, ids, 0, &out, &len, err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    mg_free(out);
    int32_t bad[] = {ID('a'), bpe_vocab_size(t)};
    assert_int_equal(bpe_decode(t, bad, 2, &out, &len, err), -1);
    assert_null(out);
    assert_true(err[0] != '\0');
    err[0] = '\0';
    int32_t neg[] = {-1};
    assert_int_equal(bpe_decode(t, neg, 1, &out, &len, err), -1);
    assert_true(err[0] != '\0');

    size_t n;
    const unsigned char *s = bpe_token_bytes(t, BPE_EOS, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(s, "<EOS>", 5);
    s = bpe_token_bytes(t, ID('\xff'), &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0], 0xff);
    assert_null(bpe_token_bytes(t, bpe_vocab_size(t), &n));
    assert_null(bpe_token_bytes(t, -3, &n));
}

typedef struct {
    const bpe_t *t;
    int events;
    int bad;
} trace_t;

static void on_trace(void *ctx, const char *pretoken, size_t len, int left, int right, int merged) {
    trace_t *tr = ctx;
    int l, r;
    bpe_merge_pair(tr->t, merged, &l, &r);
    if (l != left || r != right || !pretoken || len < 2) tr->bad++;
    tr->events++;
}

static void test_encode_traced(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *s = fx.corpus + fx.small_len;
    size_t n = 20000;
    trace_t tr = {.t = fx.small};
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(bpe_encode_traced(fx.small, s, n, &a, &na, on_trace, &tr, err), 0);
    encode_ok(fx.small, s, n, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    /* Every merge removes one token: bytes - tokens merges in all. */
    assert_int_equal(tr.events, (int)(n - na));
    assert_int_equal(tr.bad, 0);
    mg_free(a);
    mg_free(b);
}

/* 2 MB of the corpus: serial (one thread), parallel (chunked, 4 threads)
 * and traced (no cache) encodings must be identical. */
static void test_parallel_equals_serial(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    size_t n = MG_MIN(fx.corpus_len, (size_t)2 << 20);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    int32_t *s, *p, *r;
    size_t ns, np, nr;
    encode_ok(fx.small, fx.corpus, n, &s, &ns);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    encode_ok(fx.small, fx.corpus, n, &p, &np);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    assert_int_equal(bpe_encode_traced(fx.small, fx.corpus, n, &r, &nr, NULL, NULL, err), 0);
    assert_true(ns > n / 8); /* ~2-4 bytes per token for 1000 merges */
    assert_int_equal(ns, np);
    assert_int_equal(ns, nr);
    assert_memory_equal(s, p, ns * sizeof *s);
    assert_memory_equal(s, r, ns * sizeof *s);
    size_t *b;
    size_t nc = pretok_chunks(fx.corpus, n, 256 << 10, &b);
    assert_true(nc >= 4); /* the parallel path really had chunks to share */
    mg_free(b);
    mg_free(s);
    mg_free(p);
    mg_free(r);
}

/* ---- tokenizer.json ---- */

static void test_json_roundtrip(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    size_t len, len2;
    char *json = bpe_to_json(fx.small, &len, err);
    assert_non_null(json);
    assert_int_equal(strlen(json), len);
    /* The Hugging Face layout, checked through a JSON parser. */
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(model, "type")->valuestring, "BPE");
    cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    assert_int_equal(cJSON_GetArraySize(vocab), bpe_vocab_size(fx.small));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(vocab, "<EOS>")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(vocab, "\xc4\xa0")->valueint, ID(' '));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(vocab, "a")->valueint, ID('a'));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(vocab, "\xc4\x80")->valueint, ID('\0'));
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    assert_int_equal(cJSON_GetArraySize(merges), bpe_num_merges(fx.small));
    /* minigpt's specials live in the vocab only: Hugging Face would match
     * an added token's text in the input, minigpt reads it as text */
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    assert_int_equal(cJSON_GetArraySize(added), 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(vocab, "<BOS>")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "type")
                            ->valuestring,
                        "ByteLevel");
    cJSON_Delete(root);

    bpe_t *u = bpe_from_json(json, len, err);
    if (!u) fail_msg("bpe_from_json: %s", err);
    assert_int_equal(bpe_vocab_size(u), bpe_vocab_size(fx.small));
    char *json2 = bpe_to_json(u, &len2, err);
    assert_non_null(json2);
    assert_int_equal(len, len2);
    assert_memory_equal(json, json2, len);
    size_t n = MG_MIN((size_t)300000, fx.corpus_len - fx.small_len);
    int32_t *a, *b;
    size_t na, nb;
    encode_ok(fx.small, fx.corpus + fx.small_len, n, &a, &na);
    encode_ok(u, fx.corpus + fx.small_len, n, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    mg_free(a);
    mg_free(b);

    /* Through a file too. */
    char path[] = "/tmp/test_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fclose(fdopen(fd, "w"));
    assert_int_equal(bpe_save(u, path, err), 0);
    bpe_t *w = bpe_load(path, err);
    remove(path);
    assert_non_null(w);
    assert_int_equal(bpe_num_merges(w), bpe_num_merges(fx.small));
    for (int id = BPE_FIRST_MERGE; id < bpe_vocab_size(w); id++) {
        int l1, r1, l2, r2;
        bpe_merge_pair(w, id, &l1, &r1);
        bpe_merge_pair(fx.small, id, &l2, &r2);
        assert_int_equal(l1, l2);
        assert_int_equal(r1, r2);
    }
    err[0] = '\0';
    assert_null(bpe_load("/nonexistent/tokenizer.json", err));
    assert_true(err[0] != '\0');
    bpe_free(w);
    bpe_free(u);
    mg_free(json);
    mg_free(json2);
}

/* Also accepted: merges as ["left", "right"] pairs (newer HF files). */
static void test_json_pair_merges(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    bpe_t *t = bpe_train("ab ab ab cd cd", 14, 300, err);
    char *json = bpe_to_json(t, NULL, err);
    cJSON *root = cJSON_Parse(json);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON *pairs = cJSON_CreateArray();
    cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(model, "merges")) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", m->valuestring);
        char *sp = strchr(buf, ' ');
        *sp = '\0';
        const char *two[2] = {buf, sp + 1};
        cJSON_AddItemToArray(pairs, cJSON_CreateStringArray(two, 2));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", pairs);
    char *txt = cJSON_PrintUnformatted(root);
    bpe_t *u = bpe_from_json(txt, strlen(txt), err);
    if (!u) fail_msg("bpe_from_json: %s", err);
    assert_int_equal(bpe_vocab_size(u), 264);
    assert_merge(u, 262, ID(' '), 260);
    bpe_free(u);
    bpe_free(t);
    cJSON_free(txt);
    cJSON_Delete(root);
    mg_free(json);
}

/* Mutations of a valid tokenizer.json (trained on "ab ab ab cd cd": merges
 * "a b", "Ġ c", "Ġ ab", "Ġc d"), each of which must be rejected. */
typedef void (*mutate_fn)(cJSON *root, cJSON *model, cJSON *vocab, cJSON *merges);

static void m_no_model(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)m, (void)v, (void)g;
    cJSON_DeleteItemFromObject(r, "model");
}
static void m_model_string(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)m, (void)v, (void)g;
    cJSON_ReplaceItemInObject(r, "model", cJSON_CreateString("BPE"));
}
static void m_no_vocab(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_DeleteItemFromObject(m, "vocab");
}
static void m_vocab_array(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_ReplaceItemInObject(m, "vocab", cJSON_CreateArray());
}
static void m_no_merges(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_DeleteItemFromObject(m, "merges");
}
static void m_merges_object(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_ReplaceItemInObject(m, "merges", cJSON_CreateObject());
}
static void m_type_wordpiece(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_ReplaceItemInObject(m, "type", cJSON_CreateString("WordPiece"));
}
static void m_id_string(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateString("101"));
}
static void m_id_fraction(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateNumber(101.5));
}
static void m_id_negative(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateNumber(-1));
}
static void m_id_too_big(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateNumber(1e12));
}
static void m_id_duplicate(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g; /* "b" takes a's id: 101 twice, 102 missing */
    cJSON_ReplaceItemInObject(v, "b", cJSON_CreateNumber(101));
}
static void m_bytes_swapped(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateNumber(102));
    cJSON_ReplaceItemInObject(v, "b", cJSON_CreateNumber(101));
}
static void m_bad_alphabet(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g; /* a plain space is not in the mapped alphabet */
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "c");
    cJSON_AddNumberToObject(v, " c", 261);
}
static void m_bad_utf8_key(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "c");
    cJSON_AddNumberToObject(v, "\xc4", 261);
}
static void m_high_codepoint(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g; /* U+0200 is beyond the 324 mapped code points */
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "c");
    cJSON_AddNumberToObject(v, "\xc8\x80", 261);
}
static void m_special_renamed(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g;
    cJSON_DeleteItemFromObject(v, "<PAD>");
    cJSON_AddNumberToObject(v, "<PAX>", 0);
}
static void m_duplicate_key(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)g; /* the string "ab" twice, under ids 260 and 263 */
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "cd");
    cJSON_AddItemToObject(v, "ab", cJSON_CreateNumber(263));
}
static void m_same_text_twice(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m; /* consistent merges "ab c" and "a bc" both spelling "abc" */
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "c");
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "ab");
    cJSON_DeleteItemFromObject(v, "\xc4\xa0"
                                  "cd");
    cJSON_AddNumberToObject(v, "bc", 261);
    cJSON_AddNumberToObject(v, "abc", 262);
    cJSON_AddNumberToObject(v, "abc", 263);
    const char *ms[] = {"a b", "b c", "ab c", "a bc"};
    for (int i = 0; i < 4; i++)
        cJSON_ReplaceItemInArray(g, i, cJSON_CreateString(ms[i]));
}
static void m_merge_part_missing(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 1, cJSON_CreateString("\xc4\xa0 zz"));
}
static void m_merge_wrong_token(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v; /* "Ġ c" and "Ġ ab" swapped: spell the wrong ids */
    cJSON_ReplaceItemInArray(g, 1, cJSON_CreateString("\xc4\xa0 ab"));
    cJSON_ReplaceItemInArray(g, 2, cJSON_CreateString("\xc4\xa0 c"));
}
static void m_merge_spells_left(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v; /* "b b" is "bb", not token 260 "ab" */
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateString("b b"));
}
static void m_merge_spells_right(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateString("a a"));
}
static void m_merge_later_id(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v; /* merge 0 uses token 261, defined by merge 1 */
    cJSON_ReplaceItemInArray(g, 0,
                             cJSON_CreateString("\xc4\xa0"
                                                "c d"));
}
static void m_merge_missing(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_DeleteItemFromArray(g, 3);
}
static void m_merge_extra(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_AddItemToArray(g, cJSON_CreateString("a a"));
}
static void m_merge_number(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateNumber(7));
}
static void m_merge_no_space(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateString("ab"));
}
static void m_merge_two_spaces(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateString("a  b"));
}
static void m_merge_special_part(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m, (void)v;
    cJSON_ReplaceItemInArray(g, 0, cJSON_CreateString("<PAD> b"));
}
static void m_vocab_gap(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)m;
    cJSON_DeleteItemFromObject(v, "z");
    while (cJSON_GetArraySize(g))
        cJSON_DeleteItemFromArray(g, 0);
}
static void m_pretokenizer(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)m, (void)v, (void)g;
    cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "pre_tokenizer");
    cJSON_ReplaceItemInObject(p, "type", cJSON_CreateString("Whitespace"));
}
static void m_dropout(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)r, (void)v, (void)g;
    cJSON_ReplaceItemInObject(m, "dropout", cJSON_CreateNumber(0.1));
}
static void m_added_extra(cJSON *r, cJSON *m, cJSON *v, cJSON *g) {
    (void)m, (void)v, (void)g;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 260);
    cJSON_AddStringToObject(a, "content", "ab");
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r, "added_tokens"), a);
}

static void test_json_rejects_malformed(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    /* Raw texts first. */
    static const char *const raw[] = {
        "",
        "not json",
        "[1, 2]",
        "\"model\"",
        "{}",
        "{\"model\": {}}",
        "{\"model\": null}",
        "{\"model\": {\"vocab\": {}, \"merges\": []}}",
        "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}",
        "{\"model\": {\"vocab\": {\"<PAD>\": 0}, \"merges\": \"a b\"}}",
        "{\"model\": {\"vocab\"",
        "{\"model\": {\"vocab\": {\"x\": 1e400}, \"merges\": []}}",
        "\xff\xfe{",
        "{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "{\"model\": {\"vocab\": {\"a\": 0, \"a\": 0}, \"merges\": [[[[[[[[[[[[]]]]]]]]]]]]}}"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        err[0] = '\0';
        bpe_t *t = bpe_from_json(raw[i], strlen(raw[i]), err);
        if (t) fail_msg("accepted raw input %zu", i);
        if (!err[0] || strchr(err, '\n')) fail_msg("raw input %zu: bad reason \"%s\"", i, err);
    }
    assert_null(bpe_from_json(NULL, 0, err));

    bpe_t *base = bpe_train("ab ab ab cd cd", 14, 300, err);
    assert_non_null(base);
    size_t len;
    char *json = bpe_to_json(base, &len, err);
    assert_non_null(json);
    /* Sanity: the unmutated text loads. */
    bpe_t *ok = bpe_from_json(json, len, err);
    assert_non_null(ok);
    bpe_free(ok);
    /* Truncations of a valid file are all rejected. */
    for (size_t cut = 0; cut < len - 2; cut += 97) {
        err[0] = '\0';
        assert_null(bpe_from_json(json, cut, err));
        assert_true(err[0] != '\0');
    }
    static const struct {
        const char *name;
        mutate_fn fn;
        int general; /* Hugging Face takes it too: loads, as a general layout */
    } muts[] = {
        {"no model", m_no_model, 0},
        {"model string", m_model_string, 0},
        {"no vocab", m_no_vocab, 0},
        {"vocab array", m_vocab_array, 0},
        {"no merges", m_no_merges, 0},
        {"merges object", m_merges_object, 0},
        {"type", m_type_wordpiece, 0},
        {"id string", m_id_string, 0},
        {"id fraction", m_id_fraction, 0},
        {"id negative", m_id_negative, 0},
        {"id too big", m_id_too_big, 0},
        {"id duplicate", m_id_duplicate, 0},
        {"bytes swapped", m_bytes_swapped, 1},
        {"bad alphabet", m_bad_alphabet, 0},
        {"bad utf8", m_bad_utf8_key, 0},
        {"high code point", m_high_codepoint, 0},
        {"special renamed", m_special_renamed, 1},
        {"duplicate key", m_duplicate_key, 0},
        {"same text twice", m_same_text_twice, 0},
        {"merge part missing", m_merge_part_missing, 0},
        {"merge wrong token", m_merge_wrong_token, 1},
        {"merge spells left", m_merge_spells_left, 0},
        {"merge spells right", m_merge_spells_right, 0},
        {"merge later id", m_merge_later_id, 1},
        {"merge missing", m_merge_missing, 1},
        {"merge extra", m_merge_extra, 0},
        {"merge number", m_merge_number, 0},
        {"merge no space", m_merge_no_space, 0},
        {"merge two spaces", m_merge_two_spaces, 0},
        {"merge special part", m_merge_special_part, 0},
        {"vocab gap", m_vocab_gap, 0},
        {"pre_tokenizer", m_pretokenizer, 0},
        {"dropout", m_dropout, 0},
        {"added extra", m_added_extra, 0},
    };
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        cJSON *root = cJSON_Parse(json);
        assert_non_null(root);
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        muts[i].fn(root, model, cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                   cJSON_GetObjectItemCaseSensitive(model, "merges"));
        char *txt = cJSON_PrintUnformatted(root);
        assert_non_null(txt);
        err[0] = '\0';
        bpe_t *t = bpe_from_json(txt, strlen(txt), err);
        if (t && muts[i].general) { /* a valid vocabulary, just not minigpt's layout */
            assert_false(bpe_is_minigpt(t));
            bpe_free(t);
            cJSON_free(txt);
            cJSON_Delete(root);
            continue;
        }
        if (t) fail_msg("accepted mutation \"%s\": %s", muts[i].name, txt);
        if (!err[0] || strchr(err, '\n'))
            fail_msg("mutation \"%s\": bad reason \"%s\"", muts[i].name, err);
        cJSON_free(txt);
        cJSON_Delete(root);
    }
    mg_free(json);
    bpe_free(base);
}

/* GPT-2's byte alphabet (bytes_to_unicode), written here independently. */
static void gpt2_char(int b, char out[3]) {
    int printable =
        (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    int cp = b, n = 0;
    if (!printable) {
        for (int i = 0; i < b; i++)
            n +=
                !((i >= 0x21 && i <= 0x7e) || (i >= 0xa1 && i <= 0xac) || (i >= 0xae && i <= 0xff));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
    }
}

/* A vocabulary in another layout (bytes at 255 - b, two merges, one
 * special token at the end), like GPT-2's: encodes, matches the special
 * token only when asked, stops generation on it, and survives a
 * tokenizer.json round trip unchanged. */
static void test_general_layout(void **state) {
    (void)state;
    char err[MG_ERR_LEN], k[3];
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"),
          *merges = cJSON_AddArrayToObject(model, "merges");
    for (int b = 0; b < 256; b++) {
        gpt2_char(b, k);
        cJSON_AddNumberToObject(vocab, k, 255 - b);
    }
    cJSON_AddNumberToObject(vocab, "ab", 256);
    cJSON_AddNumberToObject(vocab, "abc", 257);
    cJSON_AddNumberToObject(vocab, "<|endoftext|>", 258);
    cJSON_AddItemToArray(merges, cJSON_CreateString("a b"));
    cJSON_AddItemToArray(merges, cJSON_CreateString("ab c"));
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 258);
    cJSON_AddStringToObject(a, "content", "<|endoftext|>");
    cJSON_AddTrueToObject(a, "special");
    cJSON_AddItemToArray(added, a);
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    bpe_t *t = bpe_from_json(txt, strlen(txt), err);
    cJSON_free(txt);
    if (!t) fail_msg("bpe_from_json: %s", err);
    assert_false(bpe_is_minigpt(t));
    assert_int_equal(bpe_vocab_size(t), 259);
    assert_int_equal(bpe_eot_id(t), 258);
    assert_int_equal(bpe_byte_id(t, 'a'), 255 - 'a');
    assert_int_equal(bpe_merge_rank(t, 257), 1);
    assert_int_equal(bpe_token_kind(t, 258), BPE_TOKEN_SPECIAL);
    static const char text[] = "abc abc<|endoftext|>x";
    int32_t *ids;
    size_t n;
    assert_int_equal(bpe_encode(t, text, strlen(text), &ids, &n, err), 0);
    int32_t plain[] = {257, 255 - ' ', 257}; /* then "<|endoftext|>x" as bytes */
    assert_true(n > 3);
    assert_memory_equal(ids, plain, sizeof plain);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 258);
    char *back;
    size_t blen;
    assert_int_equal(bpe_decode(t, ids, n, &back, &blen, err), 0);
    assert_string_equal(back, text);
    mg_free(back);
    mg_free(ids);
    assert_int_equal(bpe_encode_ex(t, text, strlen(text), BPE_ENCODE_SPECIAL, &ids, &n, err), 0);
    int32_t special[] = {257, 255 - ' ', 257, 258, 255 - 'x'};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, special, sizeof special);
    assert_int_equal(bpe_decode(t, ids, n, &back, &blen, err), 0);
    assert_string_equal(back, "abc abcx"); /* a special token carries no text */
    mg_free(back);
    mg_free(ids);
    size_t l1, l2;
    char *j1 = bpe_to_json(t, &l1, err);
    bpe_t *u = j1 ? bpe_from_json(j1, l1, err) : NULL;
    char *j2 = u ? bpe_to_json(u, &l2, err) : NULL;
    assert_non_null(j2);
    assert_int_equal(l1, l2);
    assert_memory_equal(j1, j2, l1);
    mg_free(j1);
    mg_free(j2);
    bpe_free(u);
    bpe_free(t);
}

/* Runs last: everything the tests allocated through the counted allocator
 * (PCRE2 included) has been given back. */
static void test_no_leaks(void **state) {
    (void)state;
    assert_int_equal(mg_mem_current(), fx.mem_base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretok_gpt2_rules),
        cmocka_unit_test(test_pretok_invalid_utf8),
        cmocka_unit_test(test_pretok_cut_is_safe),
        cmocka_unit_test(test_pretok_engines_agree),
        cmocka_unit_test(test_train_hand_aaab),
        cmocka_unit_test(test_train_hand_ties),
        cmocka_unit_test(test_train_arguments),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_encode_matches_naive_reference),
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_long_pretokens),
        cmocka_unit_test(test_decode_rules),
        cmocka_unit_test(test_encode_traced),
        cmocka_unit_test(test_parallel_equals_serial),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_pair_merges),
        cmocka_unit_test(test_json_rejects_malformed),
        cmocka_unit_test(test_general_layout),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
