#!/usr/bin/env bash
# train_safety.sh - nothing lost, nothing hangs (issue 14): the rules of a
# training run's --out folder. A folder holding another run is refused
# (--overwrite replaces it); a run that fails at start leaves the folder as
# it was; one run per folder (a lock; a dead run's lock does not block);
# tokenizer.json and loss_curve.svg are replaced atomically and a plot that
# cannot be written is a warning; killed runs' leftovers are removed; a
# resume on another corpus is refused; an unwritable --out is found at
# start; a second Ctrl-C stops at once; a resumed log has one entry a step.
# Every run is micro-sized and bounded by a timeout.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    mountpoint -q "$T/ro" 2>/dev/null && umount "$T/ro"
    rm -rf "$T"
}
trap cleanup EXIT
head -c 60000 data/corpus_pt_br.txt >"$T/s.txt"
# under ASan, a refused huge allocation must be NULL (the program's own
# error path), not an abort
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"
tail -c 60000 data/corpus_pt_br.txt >"$T/other.txt"
TRAIN=(timeout 120 "$MINIGPT" train --preset micro --batch 2 --threads 1 --eval-every 3)
sum() { sha256sum "$1" | cut -c1-64; }
# bg OUT ERR ARGS...: a training in the background, its pid in $BG (not a
# timeout wrapper's: the tests signal it), killed after 120 s in any case
bg() {
    local out=$1 err=$2
    shift 2
    "$MINIGPT" train "$@" >"$out" 2>"$err" &
    BG=$!
    (exec >/dev/null 2>&1; sleep 120; kill -9 "$BG") &
    PIDS="$PIDS $BG $!"
    disown $!
}
# wait_for FILE REGEX SECONDS: until a line of FILE matches (a started run)
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

echo "train_safety: a folder holding another run"
M=$T/m
expect "a first run into a new folder" "${TRAIN[@]}" --data "$T/s.txt" --steps 6 --save-every 2 --out "$M" >"$T/first.log" 2>&1
expect "a 6-step run prints the warm-up it uses (1 step), not the asked 100" \
    grep -q '^schedule: warmup 1 steps (--warmup 100, at most a tenth of the run)' "$T/first.log"
model=$(sum "$M/mini_gpt.safetensors")
log=$(sum "$M/train_log.jsonl")
expect_exit 1 "a second run into it is refused" "${TRAIN[@]}" --data "$T/s.txt" --steps 3 --out "$M"
expect "the refusal names --resume, --init-from, --out and --overwrite" \
    bash -c '[[ $1 == *--resume* && $1 == *--init-from* && $1 == *--out* && $1 == *--overwrite* ]]' _ "$LAST_ERR"
expect "the refused run changed nothing" \
    test "$(sum "$M/mini_gpt.safetensors")/$(sum "$M/train_log.jsonl")" = "$model/$log"

echo "train_safety: a run that fails at start leaves the folder as it was"
: >"$T/empty.txt"
head -c 300 data/corpus_pt_br.txt >"$T/tiny.txt"
mkdir "$T/adir"
for flag in "" --overwrite; do
    for bad in "empty:--data $T/empty.txt" "too small:--data $T/tiny.txt" "a directory:--data $T/adir" \
        "a batch too big for memory:--data $T/s.txt --ctx 1024 --batch 65536"; do
        # shellcheck disable=SC2086
        expect_exit 1 "${bad%%:*} corpus ${flag:-(no flag)}: refused" "${TRAIN[@]}" ${bad#*:} --steps 3 --out "$M" $flag
        expect "${bad%%:*} ${flag:-(no flag)}: the log and model are intact" \
            test "$(sum "$M/mini_gpt.safetensors")/$(sum "$M/train_log.jsonl")" = "$model/$log"
    done
done

echo "train_safety: --overwrite replaces the run"
expect "--overwrite: exit 0" "${TRAIN[@]}" --data "$T/s.txt" --steps 3 --out "$M" --overwrite >/dev/null 2>&1
expect "--overwrite: the old run's step checkpoints are gone, the log is the new run's" \
    bash -c '! ls "$1"/checkpoint_step_* >/dev/null 2>&1 && [ "$(wc -l <"$1/train_log.jsonl")" -eq 3 ]' _ "$M"

echo "train_safety: a resumed run keeps one log entry a step"
R=$T/r
"${TRAIN[@]}" --data "$T/s.txt" --steps 6 --save-every 3 --out "$R" >/dev/null 2>&1
ln "$R/tokenizer.json" "$T/tok.link"
ln "$R/loss_curve.svg" "$T/svg.link"
tok=$(sum "$T/tok.link")
svg=$(sum "$T/svg.link")
expect "--resume from a checkpoint of the folder: exit 0" \
    "${TRAIN[@]}" --data "$T/s.txt" --resume "$R/checkpoint_step_3.safetensors" --out "$R" >/dev/null 2>&1
expect "the log holds steps 1..6 once each" \
    test "$(sed -E 's/^\{"step":([0-9]+),.*/\1/' "$R/train_log.jsonl" | tr '\n' ' ')" = "1 2 3 4 5 6 "
expect "tokenizer.json and loss_curve.svg were replaced (renamed), not rewritten in place" \
    test "$(sum "$T/tok.link")/$(sum "$T/svg.link")" = "$tok/$svg"

echo "train_safety: a plot that cannot be written is a warning"
rm "$R/loss_curve.svg"
mkdir "$R/loss_curve.svg"
expect_exit 0 "the run still exits 0" \
    "${TRAIN[@]}" --data "$T/s.txt" --resume "$R/checkpoint_step_3.safetensors" --steps 7 --out "$R"
expect "with a warning naming the plot, and the final model saved" \
    bash -c '[[ $1 == *warning*loss_curve* ]] && [ -s "$2/mini_gpt.safetensors" ]' _ "$LAST_ERR" "$R"
rmdir "$R/loss_curve.svg"

echo "train_safety: killed runs' leftovers"
sh -c 'exit 0' &
dead=$!
wait $dead
echo junk >"$R/mini_gpt.safetensors.tmp.$dead"
echo junk >"$R/tokenizer.json.tmp.$$"
cp "$R/checkpoint_step_3.optim.safetensors" "$R/checkpoint_step_9.optim.safetensors"
"${TRAIN[@]}" --data "$T/s.txt" --resume "$R/checkpoint_step_3.safetensors" --steps 8 --out "$R" >/dev/null 2>&1
expect "a dead process's temp file is removed" test ! -e "$R/mini_gpt.safetensors.tmp.$dead"
expect "a live process's temp file is kept" test -e "$R/tokenizer.json.tmp.$$"
expect "a state without its model is removed" test ! -e "$R/checkpoint_step_9.optim.safetensors"
expect "a state with its model is kept" test -e "$R/checkpoint_step_3.optim.safetensors"
rm -f "$R/tokenizer.json.tmp.$$"

echo "train_safety: --resume checks the corpus"
expect_exit 1 "another corpus is refused" \
    "${TRAIN[@]}" --data "$T/other.txt" --resume "$R/checkpoint_step_3.safetensors" --steps 8 --out "$R"
expect "the refusal points to --init-from" bash -c '[[ $1 == *--init-from* ]]' _ "$LAST_ERR"
# a state from before fingerprints: accepted, with a note
/usr/bin/python3 - "$R/checkpoint_step_3.optim.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
s = json.loads(h["__metadata__"]["training_state"])
s.pop("corpus_bytes", None); s.pop("corpus_hash", None)
h["__metadata__"]["training_state"] = json.dumps(s)
hb = json.dumps(h).encode()
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
"${TRAIN[@]}" --data "$T/s.txt" --resume "$R/checkpoint_step_3.safetensors" --steps 8 --out "$R" >"$T/old.log" 2>&1
expect "a state without a fingerprint resumes, and says so once" \
    test "$?/$(grep -c 'without a corpus fingerprint' "$T/old.log")" = "0/1"

echo "train_safety: one run per folder"
L=$T/l
bg "$T/a.log" /dev/null --preset micro --batch 2 --threads 1 --data "$T/s.txt" --steps 100000 --eval-every 0 --out "$L"
A=$BG
if wait_for "$T/a.log" '^step ' 60; then
    expect_exit 1 "a second run into a folder in use is refused" \
        "${TRAIN[@]}" --data "$T/s.txt" --steps 3 --out "$L"
    expect "the refusal says the folder is in use" bash -c '[[ $1 == *"in use"* ]]' _ "$LAST_ERR"
else
    fail "the first run started"
fi
kill -TERM "$A" 2>/dev/null
wait "$A"
expect "the first run, stopped by SIGTERM, exits 0" test $? -eq 0
stop=$(ls "$L"/checkpoint_step_*.safetensors 2>/dev/null | grep -v optim | head -1)
bg "$T/k.log" /dev/null --preset micro --batch 2 --threads 1 --data "$T/s.txt" --steps 100000 --eval-every 0 \
    --out "$L" --overwrite
K=$BG
wait_for "$T/k.log" '^step ' 60
kill -9 "$K" 2>/dev/null
wait "$K" 2>/dev/null
expect_exit 0 "the lock of a killed run does not block the next" \
    "${TRAIN[@]}" --data "$T/s.txt" --steps 3 --out "$L" --overwrite
[ -n "$stop" ] || fail "the stopped run saved a step checkpoint"

echo "train_safety: an unwritable --out is found at start"
mkdir "$T/ro"
if [ "$(id -u)" -eq 0 ]; then
    mount -t tmpfs -o ro,size=1m tmpfs "$T/ro" 2>/dev/null || echo "  (cannot mount a read-only folder: checked by permissions only)"
else
    chmod 555 "$T/ro"
fi
start=$(date +%s)
expect_exit 1 "refused at start" "${TRAIN[@]}" --data "$T/s.txt" --steps 3 --out "$T/ro"
expect "the refusal says the folder cannot be written" bash -c '[[ $1 == *"cannot write"* ]]' _ "$LAST_ERR"

echo "train_safety: a second Ctrl-C stops at once"
S=$T/sig
# steps of about a second or more: a context of 1024, 16 sequences
bg "$T/sig.out" "$T/sig.err" --preset micro --ctx 1024 --batch 16 --threads 1 --data "$T/s.txt" \
    --steps 1000 --eval-every 0 --out "$S"
P=$BG
if wait_for "$T/sig.out" '^step 1[/ ]' 90; then
    kill -INT "$P"
    sleep 0.2
    kill -INT "$P"
    start=$(date +%s)
    wait "$P"
    rc=$?
    expect "the second SIGINT ends the run at once (exit 130), saying so" \
        bash -c '[ "$1" -eq 130 ] && grep -q "stopped at once" "$2"' _ "$rc" "$T/sig.err"
    expect "within 5 s" test $(($(date +%s) - start)) -le 5
else
    fail "the slow run started"
fi
