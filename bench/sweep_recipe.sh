#!/usr/bin/env bash
# sweep_recipe.sh - training-recipe experiments: one run per line of stdin,
# "NAME STEPS [train flags...]", each scored on the same 50 validation
# batches; prints NAME, steps, final val loss and val bits per byte.
# Extra arguments are added to every run (e.g. --device cuda --precision
# fp32 to run the CPU's arithmetic on a GPU, faster). Example:
#   printf 'default 590\nwd0 590 --weight-decay 0\n' | bench/sweep_recipe.sh --device cuda --precision fp32
set -u
cd "$(dirname "$0")/.."
dir=${SWEEP_DIR:-/tmp/sweep}
mkdir -p "$dir"
printf '%-14s %6s %9s %9s\n' setting steps val_loss val_bpb
while read -r name steps flags; do
    [ -z "$name" ] && continue
    # shellcheck disable=SC2086
    ./minigpt train --steps "$steps" --eval-every 0 --eval-batches 50 --batch 8 --out "$dir/$name" \
        $flags "$@" >"$dir/$name.log" 2>&1 || { echo "$name failed: $(tail -n 1 "$dir/$name.log")"; continue; }
    last=$(grep -E 'val loss [0-9.]+, val bpb' "$dir/$name.log" | tail -n 1)
    loss=$(sed -E 's/.*val loss ([0-9.]+).*/\1/' <<<"$last")
    bpb=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$last")
    printf '%-14s %6s %9s %9s\n' "$name" "$steps" "$loss" "$bpb"
done
