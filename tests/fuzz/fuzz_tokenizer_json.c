/* fuzz_tokenizer_json.c - libFuzzer target for bpe_from_json: hostile
 * tokenizer.json must be rejected cleanly (no crash, hang or huge
 * allocation); whatever is accepted must encode/decode losslessly and
 * survive a write/read cycle unchanged.
 * Build (from the repository root; all of src/tokenizer's .c files):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/util/common.c
 *         src/tokenizer/[a-z]*.c tests/fuzz/fuzz_tokenizer_json.c -lpcre2-8 -lcjson -lm -fopenmp
 * Run:  ./fuzz_tok -max_total_time=60 -max_len=4096 tests/fuzz/corpus_tokenizer_json/
 * Seeds are small minified tokenizer.json files (under -max_len). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "util/common.h"

static void check_roundtrip(const bpe_t *t, const char *s, size_t n) {
    char err[MG_ERR_LEN];
    int32_t *ids;
    size_t k;
    if (bpe_encode(t, s, n, &ids, &k, err) < 0) abort();
    char *back;
    size_t blen;
    if (bpe_decode(t, ids, k, &back, &blen, err) < 0) abort();
    if (blen != n || memcmp(back, s, n) != 0) abort();
    mg_free(back);
    mg_free(ids);
}

/* A fixed tokenizer with some merges: every input is also encoded as raw
 * text with it, so pre-tokenization and merging see arbitrary bytes even
 * when the input is not an acceptable tokenizer.json (most of the time). */
static const bpe_t *fixed_tokenizer(void) {
    static bpe_t *fixed;
    if (!fixed) {
        static const char text[] =
            "ab ab ab cd cd a\xc3\xa7\xc3\xa3o a\xc3\xa7\xc3\xa3o n\xc3\xa3o "
            "n\xc3\xa3o don't don't   \n\n  \n\n 123 123 ... ...";
        char err[MG_ERR_LEN];
        fixed = bpe_train(text, sizeof text - 1, 400, err);
        if (!fixed) abort();
    }
    return fixed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[MG_ERR_LEN] = "";
    check_roundtrip(fixed_tokenizer(), (const char *)data, size);
    bpe_t *t = bpe_from_json((const char *)data, size, err);
    if (!t) {
        if (!err[0]) abort(); /* a rejection always says why */
        return 0;
    }
    static const char sample[] = "ab ab cd, a\xc3\xa7\xc3\xa3o 123 \xff\xfe\0x  \n\n don't";
    check_roundtrip(t, sample, sizeof sample - 1);
    /* The fuzz input itself as text to encode: arbitrary bytes. */
    check_roundtrip(t, (const char *)data, MG_MIN(size, (size_t)512));

    size_t len;
    char *json = bpe_to_json(t, &len, err);
    if (!json) abort();
    bpe_t *u = bpe_from_json(json, len, err);
    if (!u || bpe_vocab_size(u) != bpe_vocab_size(t)) abort();
    for (int id = BPE_FIRST_MERGE; id < bpe_vocab_size(t); id++) {
        int l1, r1, l2, r2;
        bpe_merge_pair(t, id, &l1, &r1);
        bpe_merge_pair(u, id, &l2, &r2);
        if (l1 != l2 || r1 != r2) abort();
    }
    bpe_free(u);
    mg_free(json);
    bpe_free(t);
    return 0;
}
