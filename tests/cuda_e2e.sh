#!/usr/bin/env bash
# cuda_e2e.sh - the CLI on the GPU: train with --device cuda, then use that
# checkpoint on the CPU (greedy text identical to the GPU's at fp32), train
# on the CPU and generate on the GPU, resume on the GPU, chat on the CPU.
# Without a usable GPU: --device cuda must fail with one line, and every
# GPU check reports itself skipped, by name.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
corpus="$d/corpus.txt"
head -c 400000 data/corpus_pt_br.txt >"$corpus"
skip() { echo "  skip $1 (no GPU: $why)"; }

echo "== CUDA end to end"
why=$($MINIGPT train --device cuda --preset micro --steps 60 --batch 16 --eval-every 30 --data "$corpus" \
      --out "$d/gpu" 2>&1 >"$d/gpu.log")
rc=$?
if [ $rc -ne 0 ] && grep -qE "no NVIDIA GPU|no usable GPU|no GPU found|no CUDA backend" <<<"$why"; then
    why=$(head -n 1 <<<"$why" | sed 's/^minigpt: //')
    expect_exit 1 "--device cuda without a GPU: one line, exit 1" \
        $MINIGPT generate --device cuda --prompt x --checkpoint "$d/none.safetensors"
    expect_exit 0 "--device auto without a GPU falls back to the CPU" \
        $MINIGPT train --device auto --preset micro --steps 2 --eval-every 0 --data "$corpus" --out "$d/auto"
    for t in "train --device cuda" "GPU checkpoint generates on the CPU" \
             "greedy text: GPU fp32 = CPU" "CPU checkpoint generates on the GPU" \
             "resume on the GPU" "GPU checkpoint chats on the CPU"; do skip "$t"; done
    exit 0
fi
expect "train --device cuda (exit 0, backend cuda)" \
    bash -c "[ $rc -eq 0 ] && grep -q 'backend cuda' '$d/gpu.log' && [ -s '$d/gpu/mini_gpt.safetensors' ]"
grep -E '^(minigpt train|settings|step 60|val)' "$d/gpu.log" | head -n 5 | sed 's/^/    /'
ck="$d/gpu/mini_gpt.safetensors"
gen() { $MINIGPT generate --checkpoint "$ck" --prompt "O Brasil" --max-tokens 40 --temperature 0 "$@" 2>/dev/null; }
cpu_text=$(gen --device cpu)
gpu_text=$(gen --device cuda --precision fp32)
expect "GPU checkpoint generates on the CPU" test -n "$cpu_text"
echo "    cpu: $(head -c 120 <<<"$cpu_text" | tr '\n' ' ')"
echo "    gpu: $(head -c 120 <<<"$gpu_text" | tr '\n' ' ')"
expect "greedy text: GPU fp32 = CPU" test -n "$gpu_text" -a "$cpu_text" = "$gpu_text"
expect "CPU run for the reverse check" $MINIGPT train --device cpu --preset micro --steps 5 --eval-every 0 \
    --data "$corpus" --out "$d/cpu"
expect "CPU checkpoint generates on the GPU" $MINIGPT generate --device cuda \
    --checkpoint "$d/cpu/mini_gpt.safetensors" --prompt "A casa" --max-tokens 20
expect "resume on the GPU" $MINIGPT train --device cuda --resume "$d/gpu/mini_gpt.safetensors" --steps 70 \
    --data "$corpus" --out "$d/gpu"
expect "GPU checkpoint chats on the CPU" bash -c \
    "printf 'Oi\n/quit\n' | $MINIGPT chat --device cpu --checkpoint '$ck' --max-tokens 10 >/dev/null"
