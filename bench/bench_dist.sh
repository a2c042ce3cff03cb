#!/usr/bin/env bash
# bench_dist.sh - data-parallel training on this machine (docs/distributed.md):
#   1. MPI_Allreduce time and bandwidth at the gradients' sizes (micro, tiny,
#      small, gpt2), shared memory between 2 ranks (bench/bench_allreduce.c)
#   2. tokens/s of 1 process x 2 threads against 2 processes x 1 thread at
#      the same global batch (tiny and small presets), and the gradient
#      allreduce's share of a step (the trainer's own report)
#   3. the cost model (bench/dist_model.py) fed with the small preset's
#      measured flop rate: 8, 64, 512 ranks over 25 and 400 Gb/s
# Usage: bench/bench_dist.sh [steps]   (runs as root too; a few minutes)
set -eu
cd "$(dirname "$0")/.."
steps=${1:-12}
make -s CUDA=0 minigpt >/dev/null
command -v mpicc >/dev/null || { echo "bench_dist: needs Open MPI (scripts/deps.sh)" >&2; exit 1; }
mkdir -p build
mpicc -O2 -std=c11 -Wall -Wextra -Werror bench/bench_allreduce.c -o build/bench_allreduce
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
    OMPI_MCA_rmaps_base_oversubscribe=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
head -c 2000000 data/corpus_pt_br.txt >"$out/corpus.txt"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); $(mpirun --version | head -n 1)"

echo "== 1. MPI_Allreduce, 2 ranks, shared memory (vader)"
mpirun -q -np 2 build/bench_allreduce 136960 1478144 29676544 124439808

# median tok/s of the steps after the first 3, and the communication line
rate() { grep -E '^step [0-9]+/' "$1" | tail -n +4 | sed -E 's/.* ([0-9]+) tok\/s.*/\1/' | sort -n |
         awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
run() { # NAME PRESET GLOBAL_BATCH
    local name=$1 preset=$2 gb=$3
    local args=(train --preset "$preset" --data "$out/corpus.txt" --steps "$steps" --eval-every 0
                --log-every 1 --lr 1e-3)
    ./minigpt "${args[@]}" --threads 2 --batch "$gb" --out "$out/$name-1" >"$out/$name-1.log"
    mpirun -q -np 2 ./minigpt "${args[@]}" --threads 1 --batch $((gb / 2)) \
        --out "$out/$name-2" >"$out/$name-2.log"
    local one two
    one=$(rate "$out/$name-1.log") two=$(rate "$out/$name-2.log")
    echo "$preset, global batch $gb: 1 process x 2 threads $one tok/s; 2 processes x 1 thread" \
         "$two tok/s ($(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2fx", a / b }'))"
    grep -o 'gradient communication.*' "$out/$name-2.log" | sed 's/^/    2 processes: /'
}
echo "== 2. training throughput, $steps steps (median of steps 4..$steps)"
run tiny tiny 8
run small small 4
echo "== 3. cost model (docs/distributed.md), fed with the small preset's measured rate"
small=$(rate "$out/small-1.log")
# flop/s of this 2-core machine on small: 6 N flops per token
flops=$(awk -v r="$small" 'BEGIN { printf "%.4g", r * 6 * 29676544 }')
echo "small on 2 threads: $small tok/s = $flops flop/s (6 N per token); model's CPU rank = that"
python3 bench/dist_model.py --cpu-flops "$flops"
