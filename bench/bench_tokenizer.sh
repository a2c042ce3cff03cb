#!/usr/bin/env bash
# bench_tokenizer.sh - builds bench/bench_tokenizer.c with the project's
# release flags and runs it: BPE training time for 8192 merges on the
# bundled corpus, encode throughput (MB/s, tokens, bytes/token) and a
# decode round trip of the whole corpus.
# Usage: bench/bench_tokenizer.sh [corpus] [vocab_size]   (OMP_NUM_THREADS is honoured)
set -eu
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
gcc -std=c11 -Wall -Wextra -Werror -O3 -march=native -fopenmp -Isrc \
    src/util/common.c src/tokenizer/*.c bench/bench_tokenizer.c \
    -o "$out/bench_tokenizer" -lpcre2-8 -lcjson -lm
"$out/bench_tokenizer" "${1:-data/corpus_pt_br.txt}" "${2:-8452}"
