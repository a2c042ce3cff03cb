#!/usr/bin/env bash
# bench_contention.sh - how minigpt's speed holds up when another program
# keeps a core busy (issue 14, item 9). OpenMP threads that spin while they
# wait for a thread the scheduler has put aside waste the core that thread
# needs; minigpt therefore starts with OMP_WAIT_POLICY=PASSIVE when the load
# average says the machine is busy, else GOMP_SPINCOUNT=300000 (see
# ops_cpu_select_kernels) unless the user set OMP_WAIT_POLICY or
# GOMP_SPINCOUNT. This measures, each alone and beside one busy process
# (`yes >/dev/null`), for each setting:
#   tiny   batch-1 decode tokens/s and training tokens/s (batch 8 x 256)
#   gpt2   GPT-2 124M batch-1 decode tokens/s (training at batch 1 x 64)
# Settings (environment of the run; a user's setting wins over minigpt's):
#   old    GOMP_SPINCOUNT=300000, libgomp's default (what minigpt ran with before)
#   new    nothing set: minigpt's own choice (passive on a busy machine)
# SWEEP=1 adds GOMP_SPINCOUNT=30000, 3000 and 300.
# Prints the median of REPS runs (default 3) per cell.
# Usage: bench/bench_contention.sh [threads]   (default 2)
# Environment: REPS=3, MODELS="tiny gpt2", SWEEP=0, MINIGPT=./minigpt.
# Runtime on a quiet 2-core machine: about 6 minutes (tiny 2 x 2 x 3 runs
# of ~8 s, gpt2 2 x 2 x 3 runs of ~25 s); SWEEP=1 about 15.
set -eu
cd "$(dirname "$0")/.."
threads=${1:-2}
reps=${REPS:-3}
models=${MODELS:-tiny gpt2}
bin=${MINIGPT:-./minigpt}
py=/usr/bin/python3
[ "$bin" = ./minigpt ] && make -s CUDA=0 minigpt >/dev/null # the CPU is measured
out=$(mktemp -d)
busy=
cleanup() { [ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT

settings=("old GOMP_SPINCOUNT=300000" "new")
if [ "${SWEEP:-0}" = 1 ]; then
    settings+=("spin30000 GOMP_SPINCOUNT=30000" "spin3000 GOMP_SPINCOUNT=3000"
               "spin300 GOMP_SPINCOUNT=300")
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads: $threads; $reps runs per cell, medians; busy process: yes >/dev/null"

# run MODEL SETTING...: one benchmark, appends "train decode" tokens/s to $out/MODEL.LOAD.NAME
run() {
    local model=$1 load=$2 name=$3; shift 3
    local flags=(--preset "$model" --threads "$threads" --json)
    if [ "$model" = gpt2 ]; then flags+=(--batch 1 --seq 64 --iterations 1); else flags+=(--iterations 2); fi
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" "$bin" benchmark "${flags[@]}" 2>/dev/null |
        $py -c 'import json, sys; j = json.load(sys.stdin)
print(j["train"]["tokens_per_s"], j["decode"]["tokens_per_s"])' >>"$out/$model.$load.$name"
}

for model in $models; do
    for load in alone busy; do
        if [ $load = busy ]; then yes >/dev/null & busy=$!; fi
        # rounds over the settings, so that a change in the machine's load
        # falls on all of them alike
        for r in $(seq "$reps"); do
            for s in "${settings[@]}"; do
                read -r name envs <<<"$s"
                # shellcheck disable=SC2086
                run "$model" "$load" "$name" $envs
            done
        done
        if [ -n "$busy" ]; then kill "$busy"; wait "$busy" 2>/dev/null || true; busy=; fi
    done
done

echo
printf '%-6s %-10s %14s %14s %14s %14s\n' model setting "decode alone" "decode busy" "train alone" "train busy"
for model in $models; do
    for s in "${settings[@]}"; do
        read -r name _ <<<"$s"
        $py - "$out/$model.alone.$name" "$out/$model.busy.$name" "$model" "$name" <<'EOF'
import statistics, sys
med = lambda f, k: statistics.median(float(l.split()[k]) for l in open(f))
a, b, model, name = sys.argv[1:5]
print(f"{model:6} {name:10} {med(a, 1):14.1f} {med(b, 1):14.1f} {med(a, 0):14.0f} {med(b, 0):14.0f}")
EOF
    done
done
echo "(tokens/s; decode: batch 1 with the KV cache; train: tiny batch 8 x 256, gpt2 batch 1 x 64)"
