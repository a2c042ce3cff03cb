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
expect_exit 2 "train: --warmup past int (2^32 once wrapped to 0)" "$MINIGPT" train --warmup 4294967296
expect_exit 2 "train: --eval-every past int" "$MINIGPT" train --eval-every 2147483648
expect_exit 1 "train: missing data file" "$MINIGPT" train --data "$T/nope.txt"
expect "... names the file" grep -q "nope.txt" <<<"$LAST_ERR"
expect_exit 1 "train: a directory as the data file" "$MINIGPT" train --data "$T" --out "$T/m"
expect "... says it is a directory" grep -q "Is a directory" <<<"$LAST_ERR"
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
# each case: the edit, then a word the one-line reason must contain
for c in infinite-config:d_model fractional-config:n_layers heads-not-dividing:heads \
         missing-tensor:tensors extra-tensor:tensors wrong-shape:shape wrong-dtype:dtype \
         merge-not-in-vocab:merge vocab-gap:vocab no-tokenizer:tokenizer offset-out-of-range:offsets \
         nan-weight:non-finite inf-weight:non-finite; do
    e=${c%%:*}
    /usr/bin/python3 tests/ckpt_edit.py "$T/ok/mini_gpt.safetensors" "$T/$e.safetensors" "$e"
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

echo "bad input: plot and chat"
printf '{"step":1,"tokens":100,"train_loss":1e7}\n{"step":2,"tokens":200,"train_loss":1e7}\n' >"$T/flat.jsonl"
expect "plot: a flat curve at 1e7 ends with a small picture" \
    bash -c "timeout 10 '$MINIGPT' plot '$T/flat.jsonl' --out '$T/flat.svg' >/dev/null && test \$(stat -c %s '$T/flat.svg') -lt 10000"
printf '{"step":1,"tokens":100,"train_loss":5}\n{"step":2,"tokens":200,"train_loss":1e309}\n' >"$T/inf.jsonl"
expect_exit 1 "plot: an infinite loss: exit 1" "$MINIGPT" plot "$T/inf.jsonl" --out "$T/inf.svg"
expect_exit 1 "plot: a directory as the log: exit 1" "$MINIGPT" plot "$T"
expect_exit 1 "plot: --out the log itself: exit 1, the log kept" "$MINIGPT" plot "$T/flat.jsonl" --out "$T/flat.jsonl"
expect "... the log kept" grep -q train_loss "$T/flat.jsonl"
expect_exit 1 "chat: stdin a directory: exit 1" \
    bash -c "'$MINIGPT' chat --checkpoint '$T/ok/mini_gpt.safetensors' --threads 2 <'$T' >/dev/null"
