/* fuzz_hf_config.c - libFuzzer target for hf_config_parse: a hostile
 * Hugging Face config.json must be refused with a one-line reason (no
 * crash, hang or huge allocation); whatever is accepted has positive sizes.
 * Build: make fuzzers (clang); run:
 *   build/fuzz/fuzz_hf_config -max_total_time=60 tests/fuzz/corpus_hf_config/ */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf.h"
#include "util/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[MG_ERR_LEN] = "";
    gpt_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    if (hf_config_parse((const char *)data, size, &cfg, err) == 0) {
        if (cfg.vocab < 1 || cfg.ctx < 1 || cfg.dim < 1 || cfg.layers < 1 || cfg.heads < 1) abort();
    } else if (!err[0] || strchr(err, '\n')) {
        abort();
    }
    return 0;
}
