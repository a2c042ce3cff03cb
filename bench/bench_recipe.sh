#!/usr/bin/env bash
# bench_recipe.sh - what each trainer learns in the same wall-clock time:
# minigpt's default run and the PyTorch reference (bench/torch_recipe.py),
# same token stream, model shape and hyperparameters, one after the other
# on this machine. Prints both validation bits per byte.
# The PyTorch run takes its shape, batch, learning rate and warm-up from
# minigpt's log, so both use the same recipe whatever the defaults are.
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
# the same shape and hyperparameters as minigpt's run, read off its log
model=$(grep '^model:' "$out/log")
num() { sed -E "s/.*[ (]([0-9.e+-]+) $1.*/\1/" <<<"$2"; }
settings=$(grep '^settings:' "$out/log")
pt=$(/usr/bin/python3 bench/torch_recipe.py --tokens "$out/tokens.safetensors" --minutes "$minutes" \
     --layers "$(num layers "$model")" --heads "$(num heads "$model")" \
     --dim "$(sed -E 's/.*dim ([0-9]+).*/\1/' <<<"$model")" \
     --ctx "$(sed -E 's/.*context ([0-9]+).*/\1/' <<<"$model")" \
     --batch "$(sed -E 's/.*; batch ([0-9]+) x.*/\1/' <<<"$model")" \
     --lr "$(sed -E 's/.* lr ([0-9.e+-]+) .*/\1/' <<<"$settings")" \
     --warmup "$(sed -E 's/.* warmup ([0-9]+) .*/\1/' <<<"$settings")")
echo "pytorch: $pt"
a=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$mg")
b=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$pt")
awk -v a="$a" -v b="$b" 'BEGIN { printf "val bits per byte: minigpt %.4f, pytorch %.4f (%s)\n", a, b, a < b ? "minigpt lower" : "pytorch lower" }'
