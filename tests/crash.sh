#!/usr/bin/env bash
# crash.sh - checkpoints survive crashes: kill -9 at random moments (during
# steps and during saves), a full disk, Ctrl-C; and resume is bit-exact.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -c 300000 data/corpus_pt_br.txt >"$T/slice.txt"
args=(--data "$T/slice.txt" --preset micro --batch 2 --threads 2 --log-every 1)
train() { "$MINIGPT" train "${args[@]}" "$@"; }
steps() { grep -E '^step [0-9]+/' "$1" | sed -E 's/ [0-9]+ tok\/s.*//'; }

echo "crash: kill -9 at random moments"
# a folder each: a folder that holds a run refuses a new one
mkdir "$T/k"
for i in 1 2 3 4 5 6; do
    "$MINIGPT" train "${args[@]}" --steps 100000 --save-every 1 --keep 3 --eval-every 2 --out "$T/k/$i" >"$T/k$i.log" 2>&1 &
    pid=$!
    # once it saves (tokenizing takes a while on a loaded machine), at a random moment
    for _ in $(seq 600); do grep -q '^saved' "$T/k$i.log" && break; sleep 0.1; done
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", rand() * 1.5 }')"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
done
n=0; bad=0
for f in "$T"/k/*/*.safetensors; do
    case "$f" in *.optim.safetensors) continue ;; esac
    n=$((n + 1))
    "$MINIGPT" load --checkpoint "$f" >/dev/null 2>"$T/err" || { bad=$((bad + 1)); cat "$T/err"; }
done
expect "every checkpoint left by 6 kills loads ($n files)" test "$n" -ge 3 -a "$bad" -eq 0
for f in "$T"/k/*/checkpoint_step_*.optim.safetensors; do
    [ -e "$f" ] || continue
    /usr/bin/python3 -c "import sys; sys.path.insert(0, 'tests'); import st_reader; st_reader.load(sys.argv[1])" "$f" ||
        bad=$((bad + 1))
done
expect "every optimizer state left by the kills is a valid file" test "$bad" -eq 0

echo "crash: full disk"
train --steps 6 --eval-every 3 --out "$T/d" >/dev/null
cp "$T/d/mini_gpt.safetensors" "$T/before"
# the run goes on (--resume) and its next save, at step 9, hits the limit
( ulimit -f 200; train --resume "$T/d/mini_gpt.safetensors" --steps 12 --out "$T/d" >/dev/null 2>"$T/err" )
rc=$?
expect "a save that hits a file-size limit fails with exit 1" test "$rc" -eq 1
expect "... one line naming the file" test "$(wc -l <"$T/err")" -eq 1 -a -n "$(grep -o 'best_model\|mini_gpt' "$T/err")"
expect "... and the previous checkpoint is intact" cmp -s "$T/before" "$T/d/mini_gpt.safetensors"
expect "... and no temporary file is left" test -z "$(ls "$T/d" | grep '\.tmp\.')"
: >"$T/file"
expect_exit 1 "output 'directory' is a file: exit 1" train --steps 2 --out "$T/file"

echo "crash: resume is exact"
train --steps 30 --eval-every 7 --save-every 10 --out "$T/a" >"$T/a.log"
train --resume "$T/a/checkpoint_step_10.safetensors" --out "$T/b" >"$T/b.log"
expect "resume from step 10: steps 11-30 bit-identical" \
    cmp -s <(steps "$T/a.log" | sed -n '11,$p') <(steps "$T/b.log")
expect "... and the same validation losses" \
    cmp -s <(grep 'val loss' "$T/a.log" | tail -3) <(grep 'val loss' "$T/b.log" | tail -3)
expect_exit 1 "resume with no steps left: exit 1, no final checkpoint written" \
    train --resume "$T/a/checkpoint_step_10.safetensors" --steps 10 --out "$T/c"
expect "... names the step" grep -q "at step 10, the end of its schedule" <<<"$LAST_ERR"
expect "... and writes no model" test ! -e "$T/c/mini_gpt.safetensors"

echo "crash: Ctrl-C"
train --steps 1000 --eval-every 100 --out "$T/full" >"$T/full.log"
"$MINIGPT" train "${args[@]}" --steps 1000 --eval-every 100 --out "$T/int" >"$T/int.log" 2>&1 &
pid=$!
# interrupt mid-run: once a hundred steps are logged
for _ in $(seq 200); do
    [ "$(grep -c '^step' "$T/int.log")" -ge 100 ] && break
    sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
expect "SIGINT: exit 0" test "$rc" -eq 0
path=$(sed -n 's/.*continue with: minigpt train --resume //p' "$T/int.log")
expect "... prints the checkpoint to resume from" test -s "$path"
done_steps=$(steps "$T/int.log" | wc -l)
train --resume "$path" --out "$T/int" >"$T/int2.log"
expect "interrupted at step $done_steps, resumed: all 1000 steps bit-identical to an uninterrupted run" \
    cmp -s <(steps "$T/full.log") <( (steps "$T/int.log"; steps "$T/int2.log") )
