#!/usr/bin/env bash
# chat.sh - `minigpt chat` end to end: pipe mode (one answer per line, no
# prompts), slash commands, the educational mode's sections, and the REPL
# on a pseudo-terminal (Python's pty module: nothing to install).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -c 300000 data/corpus_pt_br.txt >"$T/slice.txt"
echo "chat: train micro 40 steps"
"$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 40 --batch 4 --eval-every 20 \
    --threads 2 --seed 3 --out "$T/m" >"$T/train.log" 2>&1
M="$T/m/best_model.safetensors"
expect "trained a model for the chat" test -s "$M"
chat() { "$MINIGPT" chat --checkpoint "$M" --threads 2 --seed 4 "$@"; }

echo "chat: pipe mode"
printf 'Conte-me sobre Machado\nO Brasil é\n' | chat --max-tokens 12 >"$T/p.out" 2>"$T/p.err"
expect "two lines in: exit 0" test "${PIPESTATUS[1]}" -eq 0
printf 'Conte-me sobre Machado\n' | chat --max-tokens 12 >"$T/p1.out" 2>&1
# an answer may itself contain newlines: compare with the one-turn run instead
expect "two lines in: the first answer is the one-turn answer, then more" \
    bash -c "test \$(wc -c <'$T/p.out') -gt \$(wc -c <'$T/p1.out') && cmp -s '$T/p1.out' <(head -c \$(wc -c <'$T/p1.out') '$T/p.out')"
printf 'Conte-me sobre Machado\nO Brasil é\n/stats\n' | chat --max-tokens 12 >"$T/p2.out" 2>&1
expect "two lines in: two answers of 12 tokens" grep -q 'session: 24 tokens generated' "$T/p2.out"
expect "no prompt or banner in pipe mode" bash -c "! grep -q -e 'you>' -e 'minigpt chat' '$T/p.out'"
expect "answers are not empty" test "$(tr -d '\n' <"$T/p.out" | wc -c)" -gt 5
expect "nothing on stderr" test ! -s "$T/p.err"
printf '' | chat >"$T/e.out" 2>&1
expect "empty input: exit 0, no output" bash -c "test ${PIPESTATUS[1]} -eq 0 && test ! -s '$T/e.out'"

echo "chat: slash commands"
printf '/temp 0\n/tokens 8\nEra uma vez\n/reset\nEra uma vez\n' | chat >"$T/s.out" 2>"$T/s.err"
a1=$(sed -n 3p "$T/s.out"); a2=$(sed -n 5p "$T/s.out")
expect "settings line after /temp" grep -q '^temperature 0, ' "$T/s.out"
expect "/temp 0 and /reset: the same prompt twice gives the same answer" \
    test -n "$a1" -a "$a1" = "$a2"
printf 'Era uma vez\n/stats\nEra uma vez\n/stats\n/reset\n/stats\n' | chat --max-tokens 8 >"$T/s2.out" 2>&1
used=$(grep -o '; [0-9]* of 64 context positions' "$T/s2.out" | grep -o '[0-9]* of' | tr -d ' of' | tr '\n' ' ')
set -- $used
expect "the conversation accumulates in the context, /reset empties it ($used)" \
    test "$#" -eq 3 -a "${1:-0}" -gt 8 -a "${2:-0}" -gt "${1:-0}" -a "${3:-1}" -eq 0
printf 'Oi\n/stats\n/memory\n/kernels\n/checkpoint\n/help\n/explain\n/tokens-demo "a casa"\n' |
    chat --max-tokens 5 >"$T/c.out" 2>"$T/c.err"
expect "/stats: parameters per component" grep -q '^  attention  *[0-9]' "$T/c.out"
expect "/stats: total matches the checkpoint (136960)" grep -q '^parameters: 136960 ' "$T/c.out"
expect "/stats: tokens generated this session" grep -q 'session: 5 tokens generated' "$T/c.out"
expect "/memory: weights bytes measured (136960 floats)" grep -qE '^weights +547840 bytes' "$T/c.out"
expect "/memory: KV cache and RSS" bash -c "grep -q '^KV cache  *65536 bytes' '$T/c.out' && grep -qE '^process RSS +[1-9][0-9]* bytes' '$T/c.out'"
expect "/kernels: BLAS and the honest attention line" \
    bash -c "grep -q 'BLAS: ' '$T/c.out' && grep -q 'online softmax is not used' '$T/c.out'"
expect "/checkpoint: step and losses" bash -c "grep -q '^step: *40 ' '$T/c.out' && grep -q '^val loss: *[0-9]' '$T/c.out'"
expect "/help lists the commands" grep -q '^/tokens-demo' "$T/c.out"
expect "/explain walks through the last answer" grep -q '^7\. 5 tokens generated' "$T/c.out"
expect "/tokens-demo shows merges and ids" \
    bash -c "grep -q 'merge   1:' '$T/c.out' && grep -q '^ids: ' '$T/c.out'"
printf '/bogus\n/temp abc\n/topp 7\nOi\n' | chat --max-tokens 4 >"$T/b.out" 2>"$T/b.err"
expect "bad commands: exit 0 and the session continues (an answer)" \
    bash -c "test ${PIPESTATUS[1]} -eq 0 && test \$(grep -c '' '$T/b.out') -eq 1"
expect "bad commands: one hint line each" test "$(grep -c '' "$T/b.err")" -eq 3
expect "unknown command hint" grep -q "unknown command '/bogus'" "$T/b.err"
printf '/explain\n/quit\nOi\n' | chat >"$T/q.out" 2>&1
expect "/quit ends before the next line" bash -c "test \$(grep -c '' '$T/q.out') -eq 1"

echo "chat: context window"
long=$(head -c 60 "$T/slice.txt" | tr '\n' ' ')
printf '%s\n%s\n%s\n' "$long" "$long" "$long" | chat --max-tokens 10 --educational >"$T/w.out" 2>&1
expect "old turns are dropped when the context is full (said in educational mode)" \
    grep -q 'context window full (64 positions): dropped' "$T/w.out"
expect "and the turns after it are still answered" test "$(grep -c '^== answer ==' "$T/w.out")" -eq 3
printf '%s\n' "$(head -c 400 "$T/slice.txt" | tr '\n' ' ')" | chat --max-tokens 4 >"$T/w2.out" 2>"$T/w2.err"
expect "a turn longer than the context: a hint, exit 0" \
    bash -c "test ${PIPESTATUS[1]} -eq 0 && grep -q 'the context holds 64' '$T/w2.err'"

echo "chat: educational"
printf 'O Brasil é grande\n' | chat --max-tokens 4 --educational --show-tensors >"$T/ed.out" 2>&1
for sec in '== tokenization ==' '== embeddings ==' '== layers ' '== attention heatmap' \
    '== sampling ==' '== answer ==' '== summary =='; do
    expect "educational section '$sec'" grep -qF "$sec" "$T/ed.out"
done
expect "merges listed in order" bash -c "grep -q 'merge   1:' '$T/ed.out' && grep -q 'merge   2:' '$T/ed.out'"
expect "layers with times" test "$(grep -cE '^  layer [01]: (attention|MLP) .* [0-9.]+ ms$' "$T/ed.out")" -eq 4
expect "heatmap drawn in ASCII off a terminal (rows of shades)" \
    test "$(grep -cE '^ *[0-9]+ .*\|[ .:=+*#%@-]+\|$' "$T/ed.out")" -ge 5
expect "candidates for each token" test "$(grep -c '^  token   [0-9]:.* -> ' "$T/ed.out")" -eq 4
expect "--show-tensors: stats lines" \
    test "$(grep -cE 'shape \([0-9]+, 64\)  mean [-+][0-9.]+  std [0-9.]+  min [-+][0-9.]+  max [-+][0-9.]+' "$T/ed.out")" -ge 5
printf 'O Brasil é grande\n' | chat --max-tokens 4 --educational >"$T/ed2.out" 2>&1
expect "no stats lines without --show-tensors" bash -c "! grep -q ' std ' '$T/ed2.out'"
"$MINIGPT" generate --checkpoint "$M" --prompt "O Brasil é" --max-tokens 3 --seed 1 --threads 2 \
    --educational >"$T/g.out" 2>/dev/null
expect "generate --educational: sections and the text" \
    bash -c "grep -q '== attention heatmap' '$T/g.out' && grep -q '^O Brasil é' '$T/g.out'"
echo 'Oi' | "$MINIGPT" load --checkpoint "$M" --educational >"$T/l.out" 2>&1
expect "load without --prompt off a terminal: shows the file, no chat, exit 0" \
    bash -c "test ${PIPESTATUS[1]} -eq 0 && grep -q '^loaded ' '$T/l.out' && test \$(grep -c '' '$T/l.out') -eq 5"
expect_exit 2 "load: generation flags without --prompt still a usage error" \
    "$MINIGPT" load --checkpoint "$M" --max-tokens 3
expect_exit 2 "chat: unknown flag" "$MINIGPT" chat --bogus
expect_exit 2 "chat: bad temperature" "$MINIGPT" chat --temperature x
expect_exit 1 "chat: missing checkpoint" "$MINIGPT" chat --checkpoint "$T/none.safetensors"

echo "chat: terminal (pty)"
python3 - "$MINIGPT" "$M" >"$T/tty.out" 2>&1 <<'PY'
import os, pty, sys, time, select
exe, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "chat", "--checkpoint", model, "--threads", "2", "--seed", "1",
                   "--max-tokens", "6"])
out = b""
def pump(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: d = os.read(fd, 4096)
            except OSError: return False
            if not d: return False
            out += d
    return True
def wait_for(s, t=10):
    end = time.time() + t
    while s.encode() not in out and time.time() < end:
        if not pump(0.1): break
pump(0.5)
wait_for("you> ")
for line in ["O Brasil", "/temp 0", "/tokens 5", "half a line\x03", "/stats", "/help", "/nonsense"]:
    n = out.count(b"you> ")
    os.write(fd, line.encode() + (b"" if line.endswith("\x03") else b"\r"))
    end = time.time() + 10
    while out.count(b"you> ") <= n and time.time() < end:
        if not pump(0.1): break
os.write(fd, b"\x04")  # Ctrl-D
pump(2)
for _ in range(50):  # a chat that does not leave must not hang the suite
    done, status = os.waitpid(pid, os.WNOHANG)
    if done: break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
print("\nEXIT", os.waitstatus_to_exitcode(status))
PY
python3 - "$MINIGPT" "$M" >"$T/tty2.out" 2>&1 <<'PY'
import os, pty, sys, time, select
exe, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "load", "--checkpoint", model])
out = b""
end = time.time() + 20
sent = False
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try: d = os.read(fd, 4096)
        except OSError: break
        if not d: break
        out += d
    if not sent and b"you> " in out:
        os.write(fd, b"/stats\r")
        sent = True
    elif sent and out.count(b"you> ") >= 2:
        os.write(fd, b"\x04")
        sent = None
for _ in range(50):  # a chat that does not leave must not hang the suite
    done, status = os.waitpid(pid, os.WNOHANG)
    if done: break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
print("\nEXIT", os.waitstatus_to_exitcode(status))
PY
expect "tty: load without --prompt shows the file and starts the chat" \
    bash -c "grep -q '^loaded ' '$T/tty2.out' && grep -q 'parameters: 136960' '$T/tty2.out' && grep -q '^EXIT 0' '$T/tty2.out'"
expect "tty: banner" grep -q '^minigpt chat: ' "$T/tty.out"
expect "tty: a prompt for each input (Ctrl-C at the prompt gives a fresh one)" \
    test "$(grep -o 'you> ' "$T/tty.out" | wc -l)" -ge 8
expect "tty: /temp 0 and /tokens 5 applied" grep -q 'temperature 0, top-k 0, top-p 0.95, max tokens 5' "$T/tty.out"
expect "tty: /stats" grep -q 'parameters: 136960' "$T/tty.out"
expect "tty: /help" grep -q '/tokens-demo' "$T/tty.out"
expect "tty: bad command hint" grep -q "unknown command '/nonsense'" "$T/tty.out"
expect "tty: Ctrl-D leaves with exit 0" grep -q '^EXIT 0' "$T/tty.out"
