#!/usr/bin/env bash
# arch.sh - the architecture options end to end (model/gpt.h: --pos rope,
# --norm rmsnorm, --qk-norm, --untie-head, --zero-init): a micro model
# trained with all of them records them in model_config, and every command
# reads them from there: generate (float32 and int8), the educational trace,
# eval, chat, load --show-metadata, resume (which refuses other options),
# benchmark; convert refuses it in one line and writes nothing; a
# checkpoint with an unknown option value is refused in one line.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -c 150000 data/corpus_pt_br.txt >"$T/a.txt"
ARCH=(--pos rope --norm rmsnorm --qk-norm --untie-head --zero-init)
M="$T/run/mini_gpt.safetensors"

echo "arch: train micro with every option"
"$MINIGPT" train --data "$T/a.txt" --preset micro --threads 2 --steps 20 --eval-every 10 \
    --out "$T/run" "${ARCH[@]}" >"$T/train.log" 2>&1
expect "train --pos rope --norm rmsnorm --qk-norm --untie-head --zero-init" test $? -eq 0
expect "... and it learns (the loss falls)" $PY - "$T/run/train_log.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.3, (rows[0], rows[-1])
PYEOF
expect "model_config records them; the table has lm_head, no position table, no norm biases" \
    $PY - "$M" <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
c = json.loads(h["__metadata__"]["model_config"])
want = {"pos": "rope", "norm": "rmsnorm", "qk_norm": True, "tie_head": False, "zero_init": True}
assert all(c[k] == v for k, v in want.items()), c
assert "lm_head.weight" in h and "position_embedding.weight" not in h, sorted(h)
assert not any(k.endswith("ln1.bias") or k == "ln_f.bias" for k in h), sorted(h)
PYEOF

echo "arch: every command reads the options from the checkpoint"
"$MINIGPT" load --checkpoint "$M" --show-metadata >"$T/meta.txt" 2>&1
expect "load --show-metadata shows them" grep -Eq '^  pos +rope$' "$T/meta.txt"
expect "... norm, qk_norm, tie_head, zero_init too" sh -c "grep -Eq '^  norm +rmsnorm$' '$T/meta.txt' &&
    grep -Eq '^  qk_norm +true$' '$T/meta.txt' && grep -Eq '^  tie_head +false$' '$T/meta.txt' &&
    grep -Eq '^  zero_init +true$' '$T/meta.txt'"
gen() { "$MINIGPT" generate --checkpoint "$M" --threads 2 -p "O Brasil" -n 12 --seed 3 "$@"; }
gen >"$T/g.txt" 2>"$T/g.err"
expect "generate" sh -c "test -s '$T/g.txt' && grep -q '12 new tokens' '$T/g.err'"
gen --temperature 0 >"$T/g0.txt" 2>/dev/null && gen --temperature 0 >"$T/g1.txt" 2>/dev/null
expect "... greedy is repeatable" cmp -s "$T/g0.txt" "$T/g1.txt"
gen --quantize q8 >/dev/null 2>"$T/q8.err"
expect "generate --quantize q8" grep -q 'int8 weights' "$T/q8.err"
gen -n 3 --educational >"$T/edu.txt" 2>&1
expect "the educational trace explains rotary positions" grep -q 'no position table: rotary' "$T/edu.txt"
expect "... and names RMSNorm, qk-norm and RoPE in the layers" \
    grep -q 'attention (ln1 RMSNorm, qkv matmul, qk-norm, RoPE,' "$T/edu.txt"
"$MINIGPT" eval --checkpoint "$M" --data "$T/a.txt" --threads 2 >"$T/eval.txt" 2>&1
expect "eval" grep -q 'nats/token' "$T/eval.txt"
echo "Olá, tudo bem?" | "$MINIGPT" chat --checkpoint "$M" --threads 2 -n 8 --seed 1 >"$T/chat.txt" 2>&1
rc=$?
expect "chat answers a piped line" test $rc -eq 0 -a -s "$T/chat.txt"
"$MINIGPT" benchmark --preset micro "${ARCH[@]}" --threads 2 --iterations 2 --json \
    >"$T/bench.json" 2>/dev/null
expect "benchmark with every option" $PY -c "
import json, sys
m = json.load(open('$T/bench.json'))['model']
assert m['pos'] == 'rope' and m['norm'] == 'rmsnorm' and m['qk_norm'] and not m['tie_head'], m"

echo "arch: resume"
"$MINIGPT" train --data "$T/a.txt" --threads 2 --resume "$M" --steps 30 --out "$T/run" \
    >"$T/resume.log" 2>&1
expect "resume continues the run (no flags needed)" grep -q 'saved .*mini_gpt.safetensors (step 30)' \
    "$T/resume.log"
expect_exit 2 "resume with another --pos is refused in one line" \
    "$MINIGPT" train --data "$T/a.txt" --threads 2 --resume "$M" --steps 40 --out "$T/run" \
    --pos learned
expect "... naming the option" grep -q -- '--pos' <<<"$LAST_ERR"
expect_exit 0 "resume repeating the options is fine" \
    "$MINIGPT" train --data "$T/a.txt" --threads 2 --resume "$M" --steps 32 --out "$T/run" "${ARCH[@]}"

echo "arch: convert refuses what is not the GPT-2 block"
expect_exit 1 "convert --to-gguf refuses in one line" "$MINIGPT" convert --checkpoint "$M" \
    --to-gguf "$T/x.gguf"
expect "... naming the option" grep -q -- '--pos rope' <<<"$LAST_ERR"
expect "... writing nothing" test ! -e "$T/x.gguf"
expect_exit 1 "convert --to-hf refuses in one line" "$MINIGPT" convert --checkpoint "$M" \
    --to-hf "$T/hf"
expect "... writing nothing (no directory, no temporary one)" test -z "$(ls -A "$T" | grep -E '^hf|tmp')"

echo "arch: bad option values in a checkpoint"
$PY - "$M" "$T/bad.safetensors" <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
c = json.loads(h["__metadata__"]["model_config"])
c["pos"] = "alibi"
h["__metadata__"]["model_config"] = json.dumps(c)
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hj)) + hj + b[8 + n:])
PYEOF
expect_exit 1 "an unknown 'pos' is refused in one line" "$MINIGPT" generate \
    --checkpoint "$T/bad.safetensors" -p x -n 1
expect "... naming the key" grep -q "'pos'" <<<"$LAST_ERR"

echo "arch: a checkpoint from before the options (no keys) is the GPT-2 block"
"$MINIGPT" train --data "$T/a.txt" --preset micro --threads 2 --steps 5 --out "$T/g2" >/dev/null 2>&1
G="$T/g2/mini_gpt.safetensors"
$PY - "$G" "$T/old.safetensors" <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
c = json.loads(h["__metadata__"]["model_config"])
assert c["pos"] == "learned" and c["tie_head"] is True, c
for k in ("pos", "norm", "qk_norm", "tie_head", "zero_init"):
    del c[k]
h["__metadata__"]["model_config"] = json.dumps(c)
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hj)) + hj + b[8 + n:])
PYEOF
"$MINIGPT" generate --checkpoint "$G" -p "O Brasil" -n 8 --temperature 0 --threads 2 >"$T/new.txt" 2>/dev/null
"$MINIGPT" generate --checkpoint "$T/old.safetensors" -p "O Brasil" -n 8 --temperature 0 --threads 2 \
    >"$T/old.txt" 2>/dev/null
expect "it loads and generates what the same file with the keys generates" \
    sh -c "test -s '$T/old.txt' && cmp -s '$T/old.txt' '$T/new.txt'"
