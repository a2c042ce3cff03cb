#!/usr/bin/env bash
# bench_cpu.sh - one command: minigpt's CPU speed beside a PyTorch reference
# (bench/torch_bench.py: the same GPT-2, random tokens, AdamW, clipping, a KV
# cache for decoding) at the same shapes and thread count. For each shape it
# runs `minigpt benchmark --json` and the reference, then prints training
# tokens/s, prefill and batch-1 decode tokens/s of both with their ratio, and
# minigpt's model FLOP utilisation. About 2-3 minutes on 2 cores.
#   mini        d256 L4 H4 vocab 4096, context 256, batch 8
#   GPT-2 124M  d768 L12 H12 vocab 50257, context 64, batch 4
#   GPT-2 int8  the same, inference only: minigpt --quantize q8 against
#               PyTorch's dynamic int8 linear layers (torch_bench.py --int8 1)
# Usage: bench/bench_cpu.sh [threads]   (default 2; OPENBLAS_CORETYPE is honoured by both)
set -eu
cd "$(dirname "$0")/.."
threads=${1:-2}
py=/usr/bin/python3
make -s minigpt >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (unset: minigpt picks the kernels for this CPU itself)"
echo "threads: $threads (minigpt --threads; PyTorch set_num_threads, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS)"

# PyTorch must do its matmuls with OpenBLAS (Debian: libopenblas0-pthread
# behind the libblas.so.3 alternative), or the comparison says nothing.
if ! $py -c 'import torch' 2>/dev/null; then
    echo "bench_cpu.sh: PyTorch is missing: apt-get install python3-torch libopenblas0-pthread" >&2
    exit 1
fi
torch_blas=$($py -c 'import torch; torch.ones(64, 64) @ torch.ones(64, 64)
print(" ".join(sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.rsplit("/", 1)[-1]})))')
echo "pytorch BLAS (loaded): ${torch_blas:-none} ($(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null))"
if ! grep -q openblas <<<"$torch_blas"; then
    echo "bench_cpu.sh: PyTorch does not use OpenBLAS here; install libopenblas0-pthread and run" >&2
    echo "  update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" >&2
    exit 1
fi

# shape NAME MINIGPT-FLAGS -- TORCH-FLAGS
shape() {
    local name=$1; shift
    local mg=() pt=()
    while [ "$1" != "--" ]; do mg+=("$1"); shift; done
    shift; pt=("$@")
    echo "== $name"
    echo "   ./minigpt benchmark --device cpu --threads $threads --json ${mg[*]}"
    ./minigpt benchmark --device cpu --threads "$threads" --json "${mg[@]}" >"$out/$name.mg.json"
    echo "   bench/torch_bench.py --threads $threads ${pt[*]}"
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
        $py bench/torch_bench.py --threads "$threads" "${pt[@]}" >"$out/$name.pt.json"
}

shape mini --preset mini --batch 8 --iterations 10 -- \
    --dim 256 --layers 4 --heads 4 --vocab 4096 --ctx 256 --batch 8 --iterations 10
shape gpt2-124M --preset gpt2 --ctx 64 --batch 4 --iterations 5 -- \
    --dim 768 --layers 12 --heads 12 --vocab 50257 --ctx 64 --batch 4 --iterations 3
shape gpt2-int8 --preset gpt2 --ctx 64 --batch 1 --iterations 2 --quantize q8 -- \
    --dim 768 --layers 12 --heads 12 --vocab 50257 --ctx 64 --iterations 3 --int8 1

$py - "$out" <<'EOF'
import json, os, sys
d = sys.argv[1]
print()
print(f"{'shape':<11} {'figure':<26} {'minigpt':>10} {'pytorch':>10} {'ratio':>7}")
for name in ["mini", "gpt2-124M", "gpt2-int8"]:
    mg = json.load(open(os.path.join(d, name + ".mg.json")))
    pt = json.load(open(os.path.join(d, name + ".pt.json")))
    rows = [(f"prefill tok/s ({mg['prefill']['tokens']} tokens)", mg["prefill"]["tokens_per_s"],
             pt["prefill"]["tokens_per_s"]),
            ("decode tok/s (batch 1)", mg["decode"]["tokens_per_s"], pt["decode"]["tokens_per_s"])]
    if "train" in pt:
        rows.insert(0, ("train tok/s", mg["train"]["tokens_per_s"], pt["train"]["tokens_per_s"]))
    for fig, a, b in rows:
        print(f"{name:<11} {fig:<26} {a:>10,.0f} {b:>10,.0f} {a / b:>6.2f}x")
    if "train" not in pt:  # int8: inference only
        print(f"{name:<11} minigpt: {mg['decode_weights']} weights for decoding (a prompt of more than 8 "
              f"tokens is prefilled in float32); pytorch: {pt['quantized_engine']} dynamic int8 linear layers")
        continue
    m = mg["model"]
    print(f"{name:<11} minigpt: {m['params'] / 1e6:.1f} M parameters, batch {mg['batch']} x {mg['seq']}, "
          f"step {mg['train']['step_ms']:.0f} ms (forward {mg['train']['forward_ms']:.0f}, backward "
          f"{mg['train']['backward_ms']:.0f}, optimizer {mg['train']['optimizer_ms']:.0f}), "
          f"{mg['train']['gflops']:.1f} GFLOP/s = MFU {100 * mg['mfu']:.1f}% of the "
          f"{mg['matmul_peak']['gflops']:.0f} GFLOP/s matmul peak")
print(f"minigpt backend: {mg['device']}; pytorch {pt['torch']}, {pt['threads']} threads")
EOF
