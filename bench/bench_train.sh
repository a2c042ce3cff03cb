#!/usr/bin/env bash
# bench_train.sh - training throughput of minigpt and of a PyTorch reference
# (bench/torch_gpt.py: same GPT-2 shape, AdamW, clipping; random tokens vs
# the bundled corpus for minigpt) on this machine, same thread count, one
# command. Prints both figures and their ratio, and which BLAS each used.
# Usage: bench/bench_train.sh [threads]   (OPENBLAS_CORETYPE is honoured by both)
set -eu
cd "$(dirname "$0")/.."
threads=${1:-2}
make -s minigpt >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
./minigpt train --preset mini --batch 8 --steps 30 --eval-every 0 --log-every 1 \
    --threads "$threads" --out "$out" >"$out/log"
grep '^minigpt train' "$out/log" | sed 's/^/minigpt: /'
# median of the per-step rates, skipping 5 warm-up steps
mg=$(grep -E '^step [0-9]+/' "$out/log" | tail -n +6 | sed -E 's/.* ([0-9]+) tok\/s.*/\1/' | sort -n |
     awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "minigpt: $mg tok/s (mini: d256 L4 H4 vocab 4096 ctx 256 batch 8, median of steps 6-30)"
pt=$(/usr/bin/python3 bench/torch_gpt.py --dim 256 --layers 4 --heads 4 --vocab 4096 --ctx 256 \
     --batch 8 --steps 10 --warmup 2 --threads "$threads")
echo "pytorch: $pt"
echo "pytorch BLAS: $(/usr/bin/python3 -c 'import numpy, ctypes.util; print(ctypes.util.find_library("blas"))') -> $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)"
ptn=$(sed -E 's/.*: ([0-9]+) tok\/s.*/\1/' <<<"$pt")
awk -v a="$mg" -v b="$ptn" 'BEGIN { printf "ratio: minigpt / pytorch = %.2fx\n", a / b }'
