#!/usr/bin/env bash
# bench_cuda.sh - minigpt's CUDA backend against PyTorch on the same GPU, in
# one command: GPT-2 124M (d768 L12 H12, vocab 50304, context 1024, batch
# 32, random tokens) training tokens/s (minigpt bf16 and fp32; PyTorch
# eager and torch.compile, bf16 autocast, fused AdamW) and batch-1 greedy
# decoding with a KV cache. Prints both figures and the ratios; JSON lines
# of every run go to $LOG (default /tmp/bench_cuda.jsonl).
# Usage: bench/bench_cuda.sh [batch] [iterations]    (needs ./minigpt built
# with its CUDA plugin, a GPU, and python3 with torch on the GPU)
set -eu
cd "$(dirname "$0")/.."
batch=${1:-32}
iters=${2:-10}
LOG=${LOG:-/tmp/bench_cuda.jsonl}
: >"$LOG"
py=${PYTHON:-python3}
shape="--preset gpt2 --vocab 50304"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

run() { # run LABEL CMD... : one JSON object per line into $LOG, labelled
    local label=$1; shift
    local out
    if out=$("$@" 2>/tmp/bench_cuda.err); then
        printf '%s\n' "$out" | $py -c "import json,sys; d=json.load(sys.stdin); d['label']='$label'; print(json.dumps(d))" >>"$LOG" ||
            echo "$label: no JSON in its output"
    else
        echo "$label failed: $(tail -n 3 /tmp/bench_cuda.err)"
    fi
}

run minigpt_bf16 ./minigpt benchmark --device cuda --precision bf16 $shape --batch "$batch" --iterations "$iters" --json
run minigpt_fp32 ./minigpt benchmark --device cuda --precision fp32 $shape --batch "$batch" --iterations "$iters" --json
run torch_eager $py bench/torch_cuda.py --mode train --batch "$batch" --steps "$iters"
run torch_compile $py bench/torch_cuda.py --mode train --compile --batch "$batch" --steps "$iters"
run torch_decode $py bench/torch_cuda.py --mode decode

$py - "$LOG" <<'EOF'
import json, sys
runs = {d["label"]: d for d in map(json.loads, open(sys.argv[1]))}
def train(label):
    d = runs.get(label)
    if not d: return None
    return d["train"]["tokens_per_s"] if "train" in d else d["tok_per_s"]
print("\nGPT-2 124M training, tokens/s:")
for l in ("minigpt_bf16", "minigpt_fp32", "torch_eager", "torch_compile"):
    v = train(l)
    extra = ""
    d = runs.get(l, {})
    if "mfu" in d: extra = f"  MFU {100 * d['mfu']:.1f}% of {d['matmul_peak']['gflops'] / 1000:.0f} TFLOP/s matmul peak"
    if "peak_gpu_mem_gib" in d: extra = f"  peak {d['peak_gpu_mem_gib']:.1f} GiB"
    print(f"  {l:15s} {v:12,.0f}{extra}" if v else f"  {l:15s} (failed)")
mg, tc, te = train("minigpt_bf16"), train("torch_compile"), train("torch_eager")
if mg and tc: print(f"ratio: minigpt bf16 / torch.compile = {mg / tc:.2f}x")
if mg and te: print(f"ratio: minigpt bf16 / torch eager   = {mg / te:.2f}x")
print("\nbatch-1 greedy decoding, tokens/s:")
md = runs.get("minigpt_bf16", {}).get("decode", {}).get("tokens_per_s")
td = runs.get("torch_decode", {}).get("tok_per_s")
if md: print(f"  minigpt (bf16 matmuls) {md:10,.0f}")
if td: print(f"  torch eager, KV cache  {td:10,.0f}")
if md and td: print(f"ratio: minigpt / torch = {md / td:.2f}x")
EOF
