#!/usr/bin/env bash
# run_gpu.sh - everything that needs the GPU, in one call (for a lent GPU
# machine, where minutes are counted): the CUDA tests, the CUDA end-to-end
# CLI tests, bench/bench_cuda.sh (minigpt vs PyTorch), and a real GPT-2
# 124M training run on the bundled corpus whose checkpoint then generates
# on the CPU. Logs go to $1 (default /tmp/gpu_run). Needs ./minigpt and
# minigpt_cuda.so built (make), build/tests/test_cuda (make unit), python3
# with torch on the GPU. Usage: bench/run_gpu.sh [logdir] [train-minutes]
set -u
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu_run}
minutes=${2:-1}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

echo "== CUDA unit tests"
timeout 300 build/tests/test_cuda >"$out/test_cuda.log" 2>&1
echo "test_cuda exit $?: $(grep -cE '^\[       OK \]' "$out/test_cuda.log") ok, $(grep -cE '^\[  FAILED  \] test' "$out/test_cuda.log") failed"

echo "== CUDA end to end"
MINIGPT=./minigpt timeout 300 bash tests/cuda_e2e.sh >"$out/e2e.log" 2>&1
grep -E '^  (ok|FAIL|skip)' "$out/e2e.log"

echo "== minigpt vs PyTorch (GPT-2 124M)"
LOG="$out/bench.jsonl" timeout 600 bench/bench_cuda.sh 32 10 2>&1 | tee "$out/bench.log" | tail -n 14

echo "== GPT-2 124M on the corpus, $minutes min on the GPU, then generation on the CPU"
rm -rf /tmp/gpt2run
timeout 900 ./minigpt train --device cuda --preset gpt2 --minutes "$minutes" --out /tmp/gpt2run \
    --eval-every 100 >"$out/train.log" 2>&1
echo "train exit $?"
grep -E '^(minigpt train|settings|tokenizer|data|model)|val loss' "$out/train.log" | head -n 20
tail -n 3 "$out/train.log"
cp /tmp/gpt2run/train_log.jsonl /tmp/gpt2run/loss_curve.svg "$out/" 2>/dev/null
for dev in cpu cuda; do
    timeout 300 ./minigpt generate --device $dev --checkpoint /tmp/gpt2run/best_model.safetensors \
        --prompt "O Brasil é" --max-tokens 60 --temperature 0.8 --seed 42 >"$out/generate_$dev.txt" 2>&1
    echo "generate on $dev (exit $?):"; cat "$out/generate_$dev.txt"
done
