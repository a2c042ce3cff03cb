#!/usr/bin/env bash
# bench_recipe.sh - what each trainer learns in the same wall-clock time:
# minigpt's default run and the PyTorch reference (bench/torch_recipe.py),
# same token stream, model shape and hyperparameters, one after the other
# on this machine. Prints both validation bits per byte.
# The PyTorch run copies minigpt's run: shape and architecture variants
# (--pos, --norm, --qk-norm, --mlp, --untie-head, --zero-init) from the
# model_config of the checkpoint minigpt saved, batch, lr, warm-up, threads and
# optimizer (--optimizer muon, its lr and momentum) from minigpt's log, so
# both use the same recipe whatever the defaults are. The variant flags
# given here go to both; torch_recipe.py refuses to run if the checkpoint
# disagrees with them.
# Usage: bench/bench_recipe.sh [minutes] [extra minigpt train flags...]
#   e.g. bench/bench_recipe.sh 5 --pos rope --norm rmsnorm --optimizer muon
set -eu
cd "$(dirname "$0")/.."
die() { echo "bench_recipe.sh: $*" >&2; exit 1; }
minutes=${1:-5}
shift || true
# the variant flags among the extra ones (--flag value or --flag=value)
variant=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    a=${args[i]}
    case ${a%%=*} in
    --pos | --norm | --mlp | --optimizer | --muon-lr | --muon-momentum | --weight-decay)
        if [[ $a == *=* ]]; then
            variant+=("${a%%=*}" "${a#*=}")
        else
            ((i + 1 < ${#args[@]})) || die "$a needs a value"
            variant+=("$a" "${args[i + 1]}")
            i=$((i + 1))
        fi ;;
    --qk-norm | --untie-head | --zero-init) variant+=("$a") ;;
    esac
done
make -s minigpt >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# a flag this minigpt does not know (or a bad value) ends here, in one line
./minigpt train --minutes "$minutes" --save-tokens "$out/tokens.safetensors" --out "$out/m" "$@" \
    >"$out/log" 2>"$out/err" || die "minigpt train failed: $(tail -1 "$out/err")"
grep -E '^minigpt train|^model|^optimizer|^time budget' "$out/log" | sed 's/^/minigpt: /'
steps=$(grep -E '^step [0-9]+/' "$out/log" | tail -1 | sed -E 's/^step ([0-9]+).*/\1/')
mg=$(grep 'val bpb' "$out/log" | tail -1)
echo "minigpt: $steps steps; $mg"
# batch, lr, warm-up, threads and optimizer as minigpt's run, read off its log
field() { grep -m1 -E "$1" "$out/log" | sed -nE "s/.*$2.*/\1/p"; }
batch=$(field '^model:' '; batch ([0-9]+) x')
seqs=$(field '^model:' '\(([0-9]+) sequences a step\)') # --grad-accum: one step of them all
lr=$(field '^settings:' ' lr ([0-9.e+-]+) ')
warmup=$(field '^schedule:' '\(--warmup ([0-9]+)')
threads=$(field '^settings:' 'settings: ([0-9]+) threads')
if [ -z "$batch" ] || [ -z "$lr" ] || [ -z "$warmup" ] || [ -z "$threads" ]; then
    die "cannot read batch, lr, warm-up or threads off minigpt's log"
fi
opt=()
if grep -q '^optimizer: Muon' "$out/log"; then
    opt=(--optimizer muon --muon-lr "$(field '^optimizer:' 'Muon[^(]*\(lr ([0-9.e+-]+)')"
         --muon-momentum "$(field '^optimizer:' 'momentum ([0-9.]+)')")
fi
wd=$(field '^optimizer: AdamW' 'weight decay ([0-9.e+-]+)')
[ -z "$wd" ] || opt+=(--weight-decay "$wd")
pt=$(/usr/bin/python3 bench/torch_recipe.py --tokens "$out/tokens.safetensors" --minutes "$minutes" \
     --like "$out/m/mini_gpt.safetensors" --batch "${seqs:-$batch}" --lr "$lr" --warmup "$warmup" --threads "$threads" \
     ${variant[@]+"${variant[@]}"} ${opt[@]+"${opt[@]}"})
echo "pytorch: $pt"
a=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$mg")
b=$(sed -E 's/.*val bpb ([0-9.]+).*/\1/' <<<"$pt")
awk -v a="$a" -v b="$b" 'BEGIN { printf "val bits per byte: minigpt %.4f, pytorch %.4f (%s)\n", a, b, a < b ? "minigpt lower" : "pytorch lower" }'
