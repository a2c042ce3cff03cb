#!/usr/bin/env bash
# bad_input.sh - wrong flags and bad files get one line on stderr and the
# right exit code (2 usage, 1 runtime), never a crash.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "bad input"
expect_exit 2 "no command" "$MINIGPT"
expect_exit 2 "unknown command" "$MINIGPT" fly
expect_exit 2 "train: unknown flag" "$MINIGPT" train --bogus
expect "... names the flag" grep -q -- "--bogus" <<<"$LAST_ERR"
expect_exit 2 "train: missing value" "$MINIGPT" train --steps
expect_exit 2 "train: non-numeric value" "$MINIGPT" train --steps abc
expect_exit 2 "train: out-of-range value" "$MINIGPT" train --batch 0
expect_exit 2 "train: unknown preset" "$MINIGPT" train --preset huge
expect_exit 2 "train: heads must divide dim" "$MINIGPT" train --dim 30 --heads 4
expect_exit 2 "train: two budgets" "$MINIGPT" train --steps 3 --minutes 1
expect_exit 1 "train: missing data file" "$MINIGPT" train --data "$T/nope.txt"
expect "... names the file" grep -q "nope.txt" <<<"$LAST_ERR"
: >"$T/empty.txt"
expect_exit 1 "train: empty corpus" "$MINIGPT" train --data "$T/empty.txt" --out "$T/m"
printf 'ab' >"$T/small.txt"
expect_exit 1 "train: corpus too small for the context" "$MINIGPT" train --data "$T/small.txt" --preset micro --steps 1 --out "$T/m"
expect_exit 1 "train: unwritable output directory" "$MINIGPT" train --preset micro --steps 1 --out /proc/nope
expect_exit 2 "generate: no prompt" "$MINIGPT" generate
expect_exit 2 "generate: bad temperature" "$MINIGPT" generate --prompt x --temperature -1
expect_exit 1 "generate: missing checkpoint" "$MINIGPT" generate --prompt x --checkpoint "$T/none.safetensors"
echo "not a model" >"$T/junk.safetensors"
expect_exit 1 "generate: not a safetensors file" "$MINIGPT" generate --prompt x --checkpoint "$T/junk.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}' >"$T/trunc.safetensors"
expect_exit 1 "generate: truncated header" "$MINIGPT" generate --prompt x --checkpoint "$T/trunc.safetensors"

echo "hostile checkpoints"
head -c 100000 data/corpus_pt_br.txt >"$T/slice.txt"
"$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 2 --threads 2 --out "$T/ok" >/dev/null
# edit.py SRC DST EDIT: rewrites a checkpoint's header, keeping its data
cat >"$T/edit.py" <<'PY'
import json, struct, sys
src, dst, edit = sys.argv[1:4]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
cfg = json.loads(m["model_config"])
tok = json.loads(m["tokenizer"])
if edit == "infinite-config": m["model_config"] = m["model_config"].replace('"d_model":64', '"d_model":1e999')
elif edit == "fractional-config": cfg["n_layers"] = 2.5; m["model_config"] = json.dumps(cfg)
elif edit == "heads-not-dividing": cfg["n_heads"] = 3; m["model_config"] = json.dumps(cfg)
elif edit in ("missing-tensor", "extra-tensor"):  # a valid file with one tensor fewer / more
    sys.path.insert(0, "tests")
    import st_reader
    t, _ = st_reader.load(src)
    if edit == "missing-tensor": del t["ln_f.bias"]
    else: t["extra.weight"] = t["ln_f.bias"]
    h, data, off = {"__metadata__": m}, b"", 0
    for k, v in t.items():
        raw = v.astype("<f4").tobytes()
        h[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        data += raw; off += len(raw)
    b, n = b"\0" * 8 + data, 0
elif edit == "wrong-shape": h["ln_f.bias"]["shape"] = [32, 2]
elif edit == "wrong-dtype": h["ln_f.bias"]["dtype"] = "I32"
elif edit == "merge-not-in-vocab": tok["model"]["merges"][0] = "Ġ zzzzzz"; m["tokenizer"] = json.dumps(tok)
elif edit == "vocab-gap": tok["model"]["vocab"].pop(next(iter(k for k, v in tok["model"]["vocab"].items() if v == 300))); m["tokenizer"] = json.dumps(tok)
elif edit == "no-tokenizer": del m["tokenizer"]
elif edit == "offset-out-of-range": h["ln_f.bias"]["data_offsets"] = [10**12, 10**12 + 256]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
# each case: the edit, then a word the one-line reason must contain
for c in infinite-config:d_model fractional-config:n_layers heads-not-dividing:heads \
         missing-tensor:tensors extra-tensor:tensors wrong-shape:shape wrong-dtype:dtype \
         merge-not-in-vocab:merge vocab-gap:vocab no-tokenizer:tokenizer offset-out-of-range:offsets; do
    e=${c%%:*}
    /usr/bin/python3 "$T/edit.py" "$T/ok/mini_gpt.safetensors" "$T/$e.safetensors" "$e"
    expect_exit 1 "checkpoint with $e: exit 1, one line" \
        "$MINIGPT" generate --prompt x --checkpoint "$T/$e.safetensors"
    expect "... saying '${c#*:}'" grep -q "${c#*:}" <<<"$LAST_ERR"
done
size=$(stat -c %s "$T/ok/mini_gpt.safetensors")
for cut in 7 100 $((size / 2)) $((size - 1)); do
    head -c "$cut" "$T/ok/mini_gpt.safetensors" >"$T/cut.safetensors"
    expect_exit 1 "checkpoint truncated to $cut bytes: exit 1" \
        "$MINIGPT" generate --prompt x --checkpoint "$T/cut.safetensors"
done
