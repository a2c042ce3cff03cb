#!/usr/bin/env bash
# run_all.sh - the whole suite (what `make test` runs after building):
# unit tests (cmocka), PyTorch parity, CLI end to end, bad input, and the
# same again under ASan+UBSan. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
export RESULTS; RESULTS=$(mktemp)
. tests/lib.sh
start=$(date +%s)

unit() { # unit DIR LABEL
    for t in "$1"/tests/test_*; do
        [ -x "$t" ] || continue
        echo "== $2 $(basename "$t")"
        expect "$2 $(basename "$t")" "$t"
    done
}

unit build unit
bash tests/format.sh
bash tests/parity.sh
MINIGPT=./minigpt bash tests/e2e.sh
MINIGPT=./minigpt bash tests/bad_input.sh
MINIGPT=./minigpt bash tests/cli.sh
MINIGPT=./minigpt bash tests/checkpoints.sh
MINIGPT=./minigpt bash tests/chat.sh
MINIGPT=./minigpt bash tests/crash.sh
MINIGPT=./minigpt bash tests/train_options.sh
MINIGPT=./minigpt bash tests/arch.sh
MINIGPT=./minigpt bash tests/mlp.sh
MINIGPT=./minigpt bash tests/train_safety.sh
MINIGPT=./minigpt bash tests/behaviour.sh
MINIGPT=./minigpt bash tests/serve.sh
MINIGPT=./minigpt bash tests/web.sh
MINIGPT=./minigpt bash tests/cuda_e2e.sh
MINIGPT=./minigpt bash tests/benchmark.sh
MINIGPT=./minigpt bash tests/reliability.sh
MINIGPT=./minigpt bash tests/interop.sh
MINIGPT=./minigpt bash tests/dist.sh

echo "== sanitizers (ASan+UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
unit build-asan asan
MINIGPT=build-asan/minigpt bash tests/bad_input.sh
MINIGPT=build-asan/minigpt bash tests/serve.sh
DUMP=build-asan/tools/parity_dump bash tests/parity.sh

echo "== fuzz corpora replayed (libFuzzer, ASan+UBSan)"
for f in safetensors tokenizer_json hf_config; do
    expect "fuzz corpus of $f replays clean" build/fuzz/fuzz_$f -runs=0 tests/fuzz/corpus_$f 2>/dev/null
done

passed=$(grep -c '^pass' "$RESULTS")
failed=$(grep -c '^fail' "$RESULTS")
echo
echo "suite took $(( $(date +%s) - start )) s"
if [ "$failed" -gt 0 ]; then
    echo "failures:"; grep '^fail' "$RESULTS" | sed 's/^fail /  /'
fi
echo "$passed passed, $failed failed"
rm -f "$RESULTS"
[ "$failed" -eq 0 ]
