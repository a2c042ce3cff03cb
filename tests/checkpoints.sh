#!/usr/bin/env bash
# checkpoints.sh - `list` and `load` on real checkpoints: train `micro` for
# 3 epochs on a slice of the corpus, add a junk file and two hand-edited
# checkpoints (training loss only / a renamed tensor), then check the
# listing (table, JSON, order, best mark), every way of choosing (best,
# latest, search, loss and step filters, the menu on a pseudo-terminal),
# --show-metadata, generation through load (same text as generate), and
# the errors (one line on stderr, exit 1 runtime, 2 usage).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D=$T/models
# 150 KB: about 120 steps per epoch, a few seconds for 3 epochs on 2 cores
head -c 150000 data/corpus_pt_br.txt >"$T/slice.txt"

echo "checkpoints: train micro, 3 epochs"
expect "train exits 0" "$MINIGPT" train --data "$T/slice.txt" --preset micro --epochs 3 --batch 8 \
    --threads 2 --eval-every 0 --out "$D" >"$T/train.log"
params=$(sed -n 's/^model: \([0-9]*\) parameters.*/\1/p' "$T/train.log")
merges=$(sed -n 's/^tokenizer: [0-9]* tokens (\([0-9]*\) merges).*/\1/p' "$T/train.log")
echo "  $params parameters, $merges merges; files: $(cd "$D" && ls | tr '\n' ' ')"

# tests/ckpt_edit.py rewrites a checkpoint's header (train-only, renamed-tensor);
# the data block is kept, so the file stays a valid safetensors file.
echo "not a checkpoint" >"$D/broken.safetensors"
$PY tests/ckpt_edit.py "$D/checkpoint_epoch_1.safetensors" "$D/trainonly.safetensors" train-only
touch -d 2001-02-03T04:05:06Z "$D/trainonly.safetensors"
# not checkpoints: optimizer state and temporary files are skipped
cp "$D/checkpoint_epoch_1.safetensors" "$D/mini_gpt.optim.safetensors"
cp "$D/checkpoint_epoch_1.safetensors" "$D/half.tmp.77.safetensors"
mkdir "$T/bad"
$PY tests/ckpt_edit.py "$D/checkpoint_epoch_1.safetensors" "$T/bad/renamed.safetensors" renamed-tensor

# j EXPR: evaluates a Python expression over the --json listing (as `l`)
j() { $PY -c "import json,sys; l=json.load(open(sys.argv[1])); print($1)" "$T/list.json"; }

echo "checkpoints: list"
expect_exit 0 "list exits 0" "$MINIGPT" list --dir "$D"
"$MINIGPT" list --dir "$D" >"$T/list.txt"
for f in best_model checkpoint_epoch_1 checkpoint_epoch_2 checkpoint_epoch_3 mini_gpt broken trainonly; do
    expect "list shows $f" grep -q " $f.safetensors " "$T/list.txt"
done
expect "list skips *.optim.safetensors and *.tmp.* files" bash -c "! grep -Eq 'optim|tmp' '$T/list.txt'"
expect "broken file listed as unreadable, with the reason" \
    grep -Eq '^ +broken\.safetensors +unreadable: header size [0-9]+ exceeds' "$T/list.txt"
expect "training loss shown, marked, where there is no validation loss" \
    grep -Eq '^ +trainonly\.safetensors +9\.5000 \(train\) ' "$T/list.txt"
expect "shape and human size in the table" \
    grep -Eq '^\* best_model\.safetensors .* [0-9.]+ kB .*L2 H2 d64 ctx64 V512$' "$T/list.txt"

expect_exit 0 "list --json exits 0" "$MINIGPT" list --dir "$D" --json
"$MINIGPT" list --dir "$D" --json >"$T/list.json"
expect "list --json is valid JSON with 7 entries" test "$(j 'len(l)')" = 7
expect "sorted by loss, then training-loss-only, then unreadable" test "$(j '
    [e["name"] for e in l][-2:] == ["trainonly.safetensors", "broken.safetensors"] and
    all(a["val_loss"] <= b["val_loss"] for a, b in zip(l[:5], l[1:5])) and
    l[4]["name"] == "checkpoint_epoch_1.safetensors"')" = True
expect "exactly one best, the first, with the lowest loss" test "$(j '
    [e["best"] for e in l] == [True] + [False] * 6 and
    l[0]["loss"] == min(e["loss"] for e in l if e["loss"] is not None)')" = True
best=$(j 'l[0]["name"]')
expect "table marks the same best ($best)" test "$(grep '^\*' "$T/list.txt" | awk '{print $2}')" = "$best"
expect "JSON: unreadable entry has ok false, a reason and null numbers" test "$(j '
    [(e["name"], "header size" in e["error"], e["loss"], e["step"]) for e in l if not e["ok"]]')" = \
    "[('broken.safetensors', True, None, None)]"
expect "JSON: params computed from the config = trainer's count ($params)" \
    test "$(j 'set(e["params"] for e in l if e["ok"])')" = "{$params}"
expect "JSON: tensor bytes = 4 x params, 28 tensors" \
    test "$(j 'set((e["tensor_bytes"], e["tensors"]) for e in l if e["ok"])')" = "{($((params * 4)), 28)}"
expect "JSON: tokenizer summary (BPE, 512 tokens, $merges merges)" \
    test "$(j 'set((e["tokenizer"]["type"], e["tokenizer"]["vocab_size"], e["tokenizer"]["merges"]) for e in l if e["ok"])')" = "{('BPE', 512, $merges)}"
expect "JSON: size is the file size" \
    test "$(j '[e["size_bytes"] for e in l if e["name"] == "checkpoint_epoch_2.safetensors"][0]')" = \
    "$(stat -c %s "$D/checkpoint_epoch_2.safetensors")"
expect "JSON: epochs of the epoch checkpoints" \
    test "$(j '[e["epoch"] for e in l if e["name"].startswith("checkpoint_epoch_")]')" = "[3, 2, 1]"
expect "JSON: no timestamp -> file mtime; null val loss" test "$(j '
    [(e["created"], e["created_from"], e["val_loss"], e["train_loss"]) for e in l if e["name"] == "trainonly.safetensors"][0]')" = \
    "('2001-02-03T04:05:06Z', 'file mtime', None, 9.5)"
second=$(j 'l[1]["name"]')
s1=$(j '[e["step"] for e in l if e["name"] == "checkpoint_epoch_1.safetensors"][0]')
s3=$(j '[e["step"] for e in l if e["name"] == "checkpoint_epoch_3.safetensors"][0]')
loss2=$(j '[repr(e["loss"]) for e in l if e["name"] == "checkpoint_epoch_2.safetensors"][0]')

mkdir "$T/empty"
"$MINIGPT" list --dir "$T/empty" >"$T/empty.txt"
expect "empty dir: 'no checkpoints in DIR', exit 0" grep -qx "no checkpoints in $T/empty" "$T/empty.txt"
expect "empty dir: --json gives []" test "$("$MINIGPT" list --dir "$T/empty" --json)" = "[]"
expect_exit 1 "list: missing dir is exit 1" "$MINIGPT" list --dir "$T/nope"
expect "... naming it" grep -q "$T/nope" <<<"$LAST_ERR"
expect_exit 2 "list: unknown flag is exit 2" "$MINIGPT" list --bogus
expect_exit 2 "list: stray argument is exit 2" "$MINIGPT" list "$D"

echo "checkpoints: load, auto"
# loaded L ARGS...: load prints "loaded $D/L" first
loaded() {
    local want=$1; shift
    local out; out=$("$MINIGPT" load "$@" 2>"$T/load.err" </dev/null) || return 1
    [ "$(head -1 <<<"$out")" = "loaded $D/$want" ]
}
expect "load --dir (default mode auto, filter best) -> $best" loaded "$best" --dir "$D"
expect "load --mode auto --filter best -> $best" loaded "$best" --dir "$D" --mode auto --filter best
expect "load --filter latest -> mini_gpt (saved last)" loaded mini_gpt.safetensors --dir "$D" --filter latest
# one step's files are written within milliseconds; file systems keep
# mtimes in ticks of a few: the same mtime on all of them still picks mini_gpt
touch -r "$D/mini_gpt.safetensors" "$D/best_model.safetensors" "$D/checkpoint_epoch_3.safetensors"
expect "... also when the step's files share one mtime" loaded mini_gpt.safetensors --dir "$D" --filter latest
expect "load --search epoch_2 -> checkpoint_epoch_2" loaded checkpoint_epoch_2.safetensors --dir "$D" --search epoch_2
expect "load --search is case-insensitive" loaded checkpoint_epoch_2.safetensors --dir "$D" --search EPOCH_2
expect "load --search looks in metadata values (\"step\":$s1)" \
    loaded checkpoint_epoch_1.safetensors --dir "$D" --search "\"step\":$s1,"
expect "load --search + --filter latest" \
    loaded checkpoint_epoch_3.safetensors --dir "$D" --search checkpoint_epoch --filter latest
expect "load --filter-max-loss huge -> best" loaded "$best" --dir "$D" --filter-max-loss 1e9
expect "load --filter-max-loss (epoch 2's loss) --search checkpoint_epoch --filter latest -> epoch 3" \
    loaded checkpoint_epoch_3.safetensors --dir "$D" --filter-max-loss "$loss2" --search checkpoint_epoch --filter latest
expect "load --filter-max-loss uses the training loss where no validation loss" \
    loaded trainonly.safetensors --dir "$D" --search trainonly --filter-max-loss 9.5
expect_exit 1 "... and excludes it below (9.4)" "$MINIGPT" load --dir "$D" --search trainonly --filter-max-loss 9.4
expect_exit 1 "load --filter-max-loss 0.001 matches nothing: exit 1" "$MINIGPT" load --dir "$D" --filter-max-loss 0.001
expect "... naming the filter" grep -q "matches --filter-max-loss '0.001'" <<<"$LAST_ERR"
expect_exit 1 "load --search epoch_2 --filter-max-loss 0.001: exit 1" \
    "$MINIGPT" load --dir "$D" --search epoch_2 --filter-max-loss 0.001
expect "... naming only the filter that matched nothing" \
    bash -c "grep -q -- \"--filter-max-loss '0.001'\" <<<\"\$1\" && ! grep -q -- --search <<<\"\$1\"" _ "$LAST_ERR"
expect_exit 1 "load --search checkpoint_epoch_1 --filter-max-loss (epoch 2's): exit 1" \
    "$MINIGPT" load --dir "$D" --search checkpoint_epoch_1 --filter-max-loss "$loss2"
expect "... naming both (each matches alone, not together)" \
    grep -q -- "--search 'checkpoint_epoch_1' --filter-max-loss" <<<"$LAST_ERR"
expect "load --filter-min-step $s3 --filter latest -> mini_gpt" \
    loaded mini_gpt.safetensors --dir "$D" --filter-min-step "$s3" --filter latest
expect "load --filter-min-step 5 --search trainonly" loaded trainonly.safetensors --dir "$D" --filter-min-step 5 --search trainonly
expect_exit 1 "load --filter-min-step 6 --search trainonly: exit 1" \
    "$MINIGPT" load --dir "$D" --filter-min-step 6 --search trainonly
expect "... naming both filters (each matches alone)" grep -q -- "matches --search 'trainonly' --filter-min-step '6'" <<<"$LAST_ERR"
expect_exit 1 "load --filter-min-step beyond the last step: exit 1" \
    "$MINIGPT" load --dir "$D" --filter-min-step $((s3 + 1))
expect_exit 1 "load --search nothing-like-this: exit 1" "$MINIGPT" load --dir "$D" --search nothing-like-this
expect "... naming the search" grep -q -- "--search 'nothing-like-this'" <<<"$LAST_ERR"
expect "load --checkpoint FILE" loaded checkpoint_epoch_2.safetensors --checkpoint "$D/checkpoint_epoch_2.safetensors"
expect_exit 1 "load --checkpoint broken file: exit 1" "$MINIGPT" load --checkpoint "$D/broken.safetensors"
expect "... with the reason" grep -q "broken.safetensors.: header size" <<<"$LAST_ERR"
expect_exit 1 "load: selected checkpoint fails full validation: exit 1" "$MINIGPT" load --dir "$T/bad"
expect "... with the reason" grep -q "missing tensor 'token_embedding.weight'" <<<"$LAST_ERR"
expect_exit 1 "load: missing dir is exit 1" "$MINIGPT" load --dir "$T/nope"
expect_exit 1 "load: empty dir is exit 1" "$MINIGPT" load --dir "$T/empty"
expect "... saying so" grep -q "no checkpoints in $T/empty" <<<"$LAST_ERR"
expect_exit 0 "load --educational is accepted" "$MINIGPT" load --dir "$D" --educational
expect "--help mentions --educational" bash -c "'$MINIGPT' load --help | grep -q -- --educational"

echo "checkpoints: --show-metadata"
"$MINIGPT" load --dir "$D" --search epoch_2 --show-metadata >"$T/meta.txt" 2>&1
for s in config "training metadata" "performance metrics" timestamp tokenizer tensors; do
    expect "--show-metadata: $s section" grep -q "^$s:" "$T/meta.txt"
done
expect "--show-metadata: values" bash -c "
    grep -Eq '^  step +$(j '[e["step"] for e in l if e["name"] == "checkpoint_epoch_2.safetensors"][0]')\$' '$T/meta.txt' &&
    grep -Eq '^  merges +$merges\$' '$T/meta.txt' && grep -Eq '^  count +28\$' '$T/meta.txt' &&
    grep -Eq '^  bytes +$((params * 4))\$' '$T/meta.txt' && grep -Eq '^  parameters +$params\$' '$T/meta.txt' &&
    grep -Eq '^  type +BPE\$' '$T/meta.txt' && grep -Eq '^  tokens_per_second +[0-9]+\$' '$T/meta.txt'"

echo "checkpoints: load --prompt"
"$MINIGPT" load --dir "$D" --prompt "O Brasil" --seed 1 --max-tokens 10 --threads 2 >"$T/l1" 2>"$T/l1.err"
"$MINIGPT" generate --checkpoint "$D/$best" --prompt "O Brasil" --seed 1 --max-tokens 10 --threads 2 >"$T/g1" 2>/dev/null
expect "load --prompt: same text as generate" cmp -s "$T/l1" "$T/g1"
expect "... which is the prompt continued" \
    awk 'NR==1 && index($0, "O Brasil") == 1 && length($0) > length("O Brasil") { ok=1 } END { exit !ok }' "$T/l1"
expect "... stats line and the checkpoint on stderr" \
    bash -c "grep -q 'stopped: max tokens reached; seed 1' '$T/l1.err' && grep -qF '[checkpoint $D/$best]' '$T/l1.err'"
"$MINIGPT" load --dir "$D" --search epoch_1 --prompt "O Brasil" --seed 2 --top-k 5 --temperature 1.2 \
    --max-tokens 12 --threads 2 >"$T/l2" 2>/dev/null
"$MINIGPT" generate --checkpoint "$D/checkpoint_epoch_1.safetensors" --prompt "O Brasil" --seed 2 --top-k 5 \
    --temperature 1.2 --max-tokens 12 --threads 2 >"$T/g2" 2>/dev/null
expect "load --search --prompt with sampling flags: same text as generate" cmp -s "$T/l2" "$T/g2"
expect "... and another checkpoint gives other text" bash -c "! cmp -s '$T/l1' '$T/l2'"

echo "checkpoints: --mode interactive"
expect_exit 1 "interactive without a terminal on stdin: exit 1" "$MINIGPT" load --dir "$D" --mode interactive
expect "... saying so" grep -q "terminal" <<<"$LAST_ERR"
# term.py ANSWERS CMD...: runs CMD on a pseudo-terminal, types each
# comma-separated answer at each menu prompt, prints the output, exits
# with CMD's code
cat >"$T/term.py" <<'PY'
import os, pty, select, sys
answers, cmd = sys.argv[1].split(","), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
out, asked = b"", 0
while True:
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    while asked < len(answers) and out.count(b"q to quit]: ") > asked:
        os.write(fd, answers[asked].encode() + b"\n")
        asked += 1
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
PY
$PY "$T/term.py" 2 "$MINIGPT" load --dir "$D" --mode interactive >"$T/i1"
rc=$?
expect "interactive: exit 0 after choosing 2" test "$rc" -eq 0
expect "interactive: a numbered menu of all 7" bash -c "grep -Eq '^ *7\) +broken' '$T/i1' && grep -Eq '^ *1\)\* $best' '$T/i1'"
expect "interactive: 2 loads the 2nd entry ($second)" grep -qx "loaded $D/$second" "$T/i1"
$PY "$T/term.py" "9,x,2" "$MINIGPT" load --dir "$D" --mode interactive >"$T/i2"
expect "interactive: bad answers ask again" \
    bash -c "[ \$(grep -c \"is not a number from 1 to 7\" '$T/i2') -eq 2 ] && grep -qx 'loaded $D/$second' '$T/i2'"
$PY "$T/term.py" q "$MINIGPT" load --dir "$D" --mode interactive >"$T/i3"
rc=$?
expect "interactive: q quits with exit 0, nothing loaded" bash -c "[ $rc -eq 0 ] && ! grep -q '^loaded' '$T/i3'"
$PY "$T/term.py" 2 "$MINIGPT" load --dir "$D" --mode interactive --search checkpoint_epoch >"$T/i4"
expect "interactive + --search: menu of the matches, 2 -> checkpoint_epoch_2" \
    bash -c "grep -Eq '^ *3\) +checkpoint_epoch_1' '$T/i4' && ! grep -q '4)' '$T/i4' && grep -qx 'loaded $D/checkpoint_epoch_2.safetensors' '$T/i4'"
$PY "$T/term.py" 1 "$MINIGPT" load --dir "$D" --mode interactive --search broken >"$T/i5"
rc=$?
expect "interactive: choosing an unreadable file is exit 1" bash -c "[ $rc -eq 1 ] && grep -Eq '^ *1\) +broken' '$T/i5'"
expect "... with the reason" grep -q "header size" "$T/i5"

echo "checkpoints: bad flags"
expect_exit 2 "load: unknown flag" "$MINIGPT" load --bogus
expect "... names the flag" grep -q -- "--bogus" <<<"$LAST_ERR"
expect_exit 2 "load: missing value" "$MINIGPT" load --dir
expect_exit 2 "load: --mode fast" "$MINIGPT" load --mode fast
expect_exit 2 "load: --filter worst" "$MINIGPT" load --filter worst
expect_exit 2 "load: --filter-max-loss abc" "$MINIGPT" load --filter-max-loss abc
expect_exit 2 "load: --filter-min-step -1" "$MINIGPT" load --filter-min-step -1
expect_exit 2 "load: --seed without --prompt" "$MINIGPT" load --dir "$D" --seed 1
expect_exit 2 "load: --top-p out of range" "$MINIGPT" load --dir "$D" --prompt x --top-p 2
expect_exit 2 "load: --checkpoint with --dir" "$MINIGPT" load --checkpoint "$D/$best" --dir "$D"
expect_exit 2 "load: --filter with --mode interactive" "$MINIGPT" load --dir "$D" --mode interactive --filter best
expect_exit 2 "load: stray argument" "$MINIGPT" load "$D"
