#!/usr/bin/env bash
# bench_recipe.sh - what each trainer learns in the same wall-clock time:
# minigpt's default run and the PyTorch reference (bench/torch_recipe.py),
# same token stream, model shape and hyperparameters, one after the other
# on this machine. Prints both validation bits per byte.
# Usage: bench/bench_recipe.sh [minutes] [extra minigpt train flags...]
set -eu
cd "$(dirname "$0")/.."
minutes=${1:-5}
shift || true
make -s minigpt >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./minigpt train --minutes "$minutes" --save-tokens "$out/tokens.safetensors" --out "$out/m" "$@" >"$out/log"
grep -E '^minigpt train|^model|^time budget' "$out/log" | sed 's/^/minigpt: /'
steps=$(grep -E '^step [0-9]+/' "$out/log" | tail -1 | sed -E 's/^step ([0-9]+).*/\1/')
mg=$(grep 'val bpb' "$out/log" | tail -1)
echo "minigpt: $steps steps; $mg"
pt=$(/usr/bin/python3 bench/torch_recipe.py --tokens "$out/tokens.safetensors" --minutes "$minutes")
echo "pytorch: $pt"
a=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$mg")
b=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$pt")
awk -v a="$a" -v b="$b" 'BEGIN { printf "val bits per byte: minigpt %.4f, pytorch %.4f (%s)\n", a, b, a < b ? "minigpt lower" : "pytorch lower" }'
