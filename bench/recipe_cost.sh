#!/usr/bin/env bash
# recipe_cost.sh - what each change of the training recipe costs per step on
# this CPU: `minigpt benchmark --preset tiny` of GPT-2's block with AdamW and
# of each change alone and of tiny's recipe, interleaved over ROUNDS rounds
# (a shared machine's load then weighs on all alike); prints the median step
# time of each and its ratio to GPT-2's. The steps a variant fits in the
# default run's 5 minutes are 300 s / its step time (docs/training-recipe.md).
# Usage: bench/recipe_cost.sh [rounds (3)] [iterations (10)] [threads (2)]
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3} iters=${2:-10} threads=${3:-2}
make -s minigpt >/dev/null
gpt2="--pos learned --norm layernorm --qk-norm off --mlp gelu --untie-head off --zero-init off"
variants=(
    "gpt2|$gpt2 --optimizer adamw"
    "rope|$gpt2 --optimizer adamw --pos rope"
    "rmsnorm|$gpt2 --optimizer adamw --norm rmsnorm"
    "qk-norm|$gpt2 --optimizer adamw --qk-norm on"
    "relu2|$gpt2 --optimizer adamw --mlp relu2"
    "swiglu|$gpt2 --optimizer adamw --mlp swiglu"
    "untie-head|$gpt2 --optimizer adamw --untie-head on"
    "zero-init|$gpt2 --optimizer adamw --zero-init on"
    "muon|$gpt2 --optimizer muon"
    "recipe|--optimizer muon"
)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 0; r < rounds; r++)); do
    for v in "${variants[@]}"; do
        name=${v%%|*} flags=${v#*|}
        # shellcheck disable=SC2086
        ms=$(./minigpt benchmark --preset tiny --threads "$threads" --iterations "$iters" --json $flags 2>/dev/null |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["train"]["step_ms"])')
        echo "$name $ms" >>"$out"
    done
done
/usr/bin/python3 - "$out" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, ms = line.split()
    runs.setdefault(name, []).append(float(ms))
base = statistics.median(runs["gpt2"])
print(f"{'variant':<12} {'step ms (median)':>17} {'x GPT-2':>8} {'steps in 300 s':>15}")
for name, ms in runs.items():
    m = statistics.median(ms)
    print(f"{name:<12} {m:17.1f} {m / base:8.3f} {300e3 / m:15.0f}")
PY
