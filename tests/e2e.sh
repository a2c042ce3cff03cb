#!/usr/bin/env bash
# e2e.sh - end to end through the CLI: train `micro` a few steps on a slice
# of the corpus, check what was written, generate (deterministic per seed),
# rerun training (bit-identical losses), read the checkpoint from Python.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -c 400000 data/corpus_pt_br.txt >"$T/slice.txt"
train() { "$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 40 --batch 4 \
              --eval-every 20 --threads 2 --seed 3 "$@"; }

echo "e2e: train micro 40 steps"
expect "train exits 0" train --out "$T/m1" >"$T/log1"
for f in best_model.safetensors mini_gpt.safetensors tokenizer.json; do
    expect "train wrote $f" test -s "$T/m1/$f"
done
echo "  files written: $(cd "$T/m1" && ls | tr '\n' ' ')"

# the default recipe (docs/training-recipe.md): tiny (its block: rotary, RMSNorm,
# qk-norm, relu^2, untied head) with Muon; --lr 2e-3 x 256/dim capped
# at 3e-3, x2 for the tensors AdamW trains beside Muon; warm-up 100
"$MINIGPT" train --data "$T/slice.txt" --steps 1 --eval-every 0 --out "$T/d" >"$T/logd" 2>&1
expect "default preset is tiny" grep -q '^minigpt train: tiny ' "$T/logd"
expect "... lr 3e-3 scaled to the width, x2 for Muon's other tensors" \
    grep -q "lr 6.00e-03 (--lr) scaled to the width, x2 for Muon's other tensors" "$T/logd"
expect "... warm-up 100, at most a tenth of the run: 1 step here, as printed" \
    grep -q '^schedule: warmup 1 steps (--warmup 100, at most a tenth of the run)' "$T/logd"
expect "... with 2 layers, dim 128, vocab 8192" grep -q '(2 layers, 2 heads, dim 128, context 256, vocab 8192)' "$T/logd"
expect "... tiny's block and Muon" bash -c "grep -q 'relu2 MLP of 512, rotary positions, RMSNorm, qk-norm, untied head;' '$T/logd' && grep -q '^optimizer: Muon' '$T/logd'"
"$MINIGPT" train --data "$T/slice.txt" --preset small --steps 1 --eval-every 0 --out "$T/s" >"$T/logs" 2>&1
expect "dim 512: lr 1e-3 (2e-3 x 256/512), x2 for Muon" grep -q 'lr 2.00e-03 (--lr) scaled to the width, x2' "$T/logs"
first=$(grep -m1 '^step 1/' "$T/log1" | sed 's/.* loss \([0-9.]*\).*/\1/')
last=$(grep '^step 40/' "$T/log1" | sed 's/.* loss \([0-9.]*\).*/\1/')
expect "loss falls ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }'
expect "validation loss reported" grep -q "val loss" "$T/log1"

echo "e2e: determinism"
train --out "$T/m2" >"$T/log2"
losses() { grep -E '^step [0-9]+' "$1" | sed -E 's/ [0-9]+ tok\/s.*//'; }
expect "same seed and threads: identical losses" cmp -s <(losses "$T/log1") <(losses "$T/log2")
expect "same seed: identical tokenizer" cmp -s "$T/m1/tokenizer.json" "$T/m2/tokenizer.json"

echo "e2e: generate"
gen() { "$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" --prompt "O Brasil é" \
            --max-tokens 30 --threads 2 "$@" 2>>"$T/gen.err"; }
gen --seed 5 >"$T/g1"; gen --seed 5 >"$T/g2"; gen --seed 6 >"$T/g3"
expect "generate twice, one seed: same text" cmp -s "$T/g1" "$T/g2"
expect "generated text starts with the prompt and continues" \
    awk 'NR==1 && length($0) > length("O Brasil é") + 5 && index($0, "O Brasil é") == 1 { ok=1 } END { exit !ok }' "$T/g1"
expect "another seed: other text" bash -c "! cmp -s '$T/g1' '$T/g3'"
gen --temperature 0 >"$T/g4"; gen --temperature 0 --seed 99 >"$T/g5"
expect "temperature 0 is greedy (seed-independent)" cmp -s "$T/g4" "$T/g5"
expect "stats line on stderr" grep -q "tok/s; stopped: max tokens reached" "$T/gen.err"
expect "generated output is valid UTF-8" iconv -f UTF-8 -t UTF-8 "$T/g1" -o /dev/null
gen --show-tokens --max-tokens 1 >"$T/g6"
expect "--show-tokens lists ids" grep -q 'prompt: [0-9]* tokens' "$T/g6"
long=$(head -c 3000 data/corpus_pt_br.txt)
expect_exit 1 "prompt longer than the context: exit 1" \
    "$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" --prompt "$long"
expect "... and says so" grep -q "context" <<<"$LAST_ERR"
expect_exit 0 "invalid UTF-8 prompt is encoded byte by byte" \
    "$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" --prompt $'caf\xe9 \xff' --max-tokens 5
printf 'O Brasil é' >"$T/prompt.txt"
"$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" --prompt-file "$T/prompt.txt" \
    --max-tokens 30 --threads 2 --temperature 0 >"$T/g7" 2>/dev/null
expect "--prompt-file: the same text as --prompt" cmp -s "$T/g4" "$T/g7"
gen --temperature 0 --repeat-penalty 1.5 >"$T/g8"; gen --temperature 0 --repeat-penalty 1.5 >"$T/g9"
expect "--repeat-penalty: deterministic, and another text than without" \
    bash -c "cmp -s '$T/g8' '$T/g9' && ! cmp -s '$T/g4' '$T/g8'"
# a stop string from the middle of the greedy continuation: the text ends
# just after its first occurrence, a prefix of the full greedy text
stop=$(/usr/bin/python3 -c "import sys; t=open(sys.argv[1], encoding='utf-8').read()[len('O Brasil é'):]; print(t[6:9], end='')" "$T/g4")
gen --temperature 0 --stop "$stop" >"$T/g10"
expect "--stop '$stop': ends at its first occurrence" /usr/bin/python3 - "$T/g4" "$T/g10" "$stop" <<'PY'
import sys
full, cut, stop = open(sys.argv[1], encoding="utf-8").read(), open(sys.argv[2], encoding="utf-8").read(), sys.argv[3]
cut = cut[:-1]  # the newline printed after the text
gen = cut[len("O Brasil é"):]
assert full.startswith(cut) and len(cut) < len(full) - 1, (full, cut)
i = gen.find(stop)
assert i >= 0 and len(gen) - (i + len(stop)) < 16, (gen, stop)  # ends within the token that completed it
PY
expect "... and says why it stopped" grep -q "stopped: stop string" "$T/gen.err"
gen --temperature 0 --stop "qqqq" --stop "$stop" >"$T/g11"
expect "--stop twice: the first met ends it" cmp -s "$T/g10" "$T/g11"
expect_exit 2 "--stop a fifth time: exit 2" "$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" \
    --prompt x --stop a --stop b --stop c --stop d --stop e

echo "e2e: eval"
head -c 20000 data/corpus_pt_br.txt >"$T/score.txt"
ev() { "$MINIGPT" eval --checkpoint "$T/m1/mini_gpt.safetensors" --data "$T/score.txt" --threads 2 "$@"; }
ev >"$T/ev1" 2>&1
expect "eval exits 0" test $? -eq 0
expect "... perplexity = exp(loss), bits per byte = nats / bytes / ln 2" /usr/bin/python3 - "$T/ev1" <<'PY'
import math, re, sys
t = open(sys.argv[1]).read()
loss, ppl, bpb = map(float, re.search(r"loss ([0-9.]+) nats/token, perplexity ([0-9.]+), ([0-9.]+) bits per byte", t).groups())
toks, nbytes = map(int, re.search(r"scored (\d+) tokens, (\d+) bytes", t).groups())
assert abs(ppl - math.exp(loss)) < 1e-3 * ppl, (loss, ppl)
assert abs(bpb - loss * toks / nbytes / math.log(2)) < 2e-3 * bpb, (loss, bpb, toks, nbytes)
assert 0 < bpb < 8
PY
ev --batch 1 >"$T/ev2" 2>&1
expect "... the same loss whatever the batch" \
    test "$(grep -o 'loss [0-9.]* nats' "$T/ev1")" = "$(grep -o 'loss [0-9.]* nats' "$T/ev2")"
ev --incremental >"$T/ev3" 2>&1
expect "eval --incremental (the KV cache, one token at a time): the loss of the batched eval" \
    test "$(grep -o 'loss [0-9.]* nats' "$T/ev1")" = "$(grep -o 'loss [0-9.]* nats' "$T/ev3")"
ev --quantize q8 >"$T/ev4" 2>&1
expect "eval --quantize q8: int8 weights cost under 0.01 nats per token" /usr/bin/python3 - "$T/ev1" "$T/ev4" <<'PY'
import re, sys
a, b = (float(re.search(r"loss ([0-9.]+) nats", open(p).read()).group(1)) for p in sys.argv[1:3])
print(f"  float32 {a:.4f}, int8 {b:.4f} nats per token")
assert "int8 weights" in open(sys.argv[2]).read() and abs(a - b) < 0.01, (a, b)
PY
gen --quantize q8 --seed 3 >"$T/q1"; gen --quantize q8 --seed 3 >"$T/q2"
expect "generate --quantize q8: one seed, one text" cmp -s "$T/q1" "$T/q2"
expect "... and the stats line says int8 weights" grep -q "; int8 weights]" "$T/gen.err"
expect_exit 2 "generate --quantize q4: exit 2" "$MINIGPT" generate --checkpoint "$T/m1/mini_gpt.safetensors" --prompt x --quantize q4
expect_exit 2 "eval: a window longer than the model's context: exit 2" ev --ctx 100000
expect_exit 1 "eval: a directory as the text: exit 1" "$MINIGPT" eval --checkpoint "$T/m1/mini_gpt.safetensors" --data "$T"

echo "e2e: epochs"
head -c 60000 data/corpus_pt_br.txt >"$T/tiny.txt"
expect "train --epochs 2 exits 0" "$MINIGPT" train --data "$T/tiny.txt" --preset micro --epochs 2 \
    --batch 8 --threads 2 --out "$T/m3" >"$T/log3"
expect "epoch checkpoints written" test -s "$T/m3/checkpoint_epoch_1.safetensors" -a -s "$T/m3/checkpoint_epoch_2.safetensors"
expect "one line per epoch" test "$(grep -c '^epoch [0-9]*: train loss' "$T/log3")" -eq 2

echo "e2e: the checkpoint from Python"
expect "safetensors readable by an independent reader, metadata complete" /usr/bin/python3 - "$T/m1/mini_gpt.safetensors" <<'PY'
import json, sys
sys.path.insert(0, "tests")
import st_reader
t, meta = st_reader.load(sys.argv[1])
for k in ("model_config", "tokenizer", "training_metadata", "performance_metrics", "creation_timestamp"):
    assert k in meta, k
cfg = json.loads(meta["model_config"]); tm = json.loads(meta["training_metadata"])
assert t["token_embedding.weight"].shape == (cfg["vocab_size"], cfg["d_model"])
assert tm["step"] == 40 and tm["val_loss"] > 0
tok = json.loads(meta["tokenizer"])
assert tok["model"]["type"] == "BPE" and tok["model"]["vocab"]["<EOS>"] == 3 and tok["added_tokens"] == []
PY
