#!/usr/bin/env bash
# serve.sh - `minigpt serve` over real HTTP: a server on a free port,
# requests from Python's urllib. A greedy completion is exactly what
# `generate` prints, and streamed (server-sent events) it is the same text
# in pieces; a seed repeats a draw; stop strings, limits and the errors
# (400, 404, 405, 413) answer as the OpenAI API does; SIGINT stops the
# server with exit 0.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
PY=/usr/bin/python3
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
head -c 150000 data/corpus_pt_br.txt >"$T/slice.txt"
"$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 40 --batch 4 --threads 2 --eval-every 0 \
    --out "$T/m" >/dev/null 2>&1
ck=$T/m/mini_gpt.safetensors

echo "serve: start"
"$MINIGPT" serve --checkpoint "$ck" --port 0 --threads 2 --max-tokens 20 >"$T/serve.log" 2>"$T/serve.err" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
done
expect "listening, on the port it printed ($port)" test -n "$port"
# req METHOD PATH [BODY]: prints the status, a newline, then the body
req() {
    $PY - "$port" "$@" <<'EOF'
import sys, urllib.request, urllib.error
port, method, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
if data and data.startswith(b"@"):  # @FILE: the body is that file
    data = open(data[1:], "rb").read()
r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                           headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(r, timeout=60) as f:
        status, body = f.status, f.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
print(status)
sys.stdout.write(body.decode())
EOF
}
# field FILE EXPR: evaluates EXPR over the JSON body of a req output (as j)
field() { $PY -c "import json,sys; t=open(sys.argv[1]).read().split('\n',1); j=json.loads(t[1]); print($2)" "$1"; }
status() { head -1 "$1"; }

req GET /health >"$T/h"
expect "GET /health: 200, status ok" test "$(status "$T/h") $(field "$T/h" 'j["status"]')" = "200 ok"
req GET /v1/models >"$T/models"
expect "GET /v1/models: the checkpoint, with its context" \
    test "$(field "$T/models" '(j["data"][0]["id"], j["data"][0]["context_length"])')" = "('mini_gpt.safetensors', 64)"

echo "serve: completions"
req POST /v1/completions '{"prompt": "O Brasil é", "max_tokens": 30, "temperature": 0}' >"$T/c1"
expect "greedy completion: 200, object text_completion" \
    test "$(status "$T/c1") $(field "$T/c1" 'j["object"]')" = "200 text_completion"
"$MINIGPT" generate --checkpoint "$ck" --prompt "O Brasil é" --max-tokens 30 --temperature 0 --threads 2 \
    >"$T/gen.txt" 2>/dev/null
expect "... the same text as generate" $PY - "$T/c1" "$T/gen.txt" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read().split("\n", 1)[1])
gen = open(sys.argv[2], encoding="utf-8").read()
assert "O Brasil é" + j["choices"][0]["text"] + "\n" == gen, (j, gen)
EOF
expect "... usage counts the tokens: 30 new, total = prompt + new" \
    test "$(field "$T/c1" '(j["usage"]["completion_tokens"], j["usage"]["total_tokens"] - j["usage"]["prompt_tokens"], j["choices"][0]["finish_reason"])')" = "(30, 30, 'length')"
req POST /v1/completions '{"prompt": "Era uma vez", "seed": 7, "temperature": 1.0}' >"$T/c2"
req POST /v1/completions '{"prompt": "Era uma vez", "seed": 7, "temperature": 1.0}' >"$T/c3"
req POST /v1/completions '{"prompt": "Era uma vez", "seed": 8, "temperature": 1.0}' >"$T/c4"
expect "a seed repeats a draw; another seed draws another text" test \
    "$(field "$T/c2" 'j["choices"][0]["text"]')" = "$(field "$T/c3" 'j["choices"][0]["text"]')" -a \
    "$(field "$T/c2" 'j["choices"][0]["text"]')" != "$(field "$T/c4" 'j["choices"][0]["text"]')"
expect "... the server's --max-tokens is the default: 20" test "$(field "$T/c2" 'j["usage"]["completion_tokens"]')" = 20
stop=$(field "$T/c1" 'j["choices"][0]["text"][5:8]')
stopreq() { $PY -c 'import json,sys; print(json.dumps({"prompt": "O Brasil é", "max_tokens": 30, "temperature": 0, "stream": sys.argv[1] == "1", "stop": sys.argv[2:]}))' "$@"; }
req POST /v1/completions "$(stopreq 0 "$stop")" >"$T/c5"
# cut TEXT-FILE STOP...: the greedy text up to the first of the stop strings
expect "stop ['$stop']: finish_reason stop, the greedy text up to the stop string (OpenAI's cut)" \
    $PY - "$T/c1" "$T/c5" "$stop" <<'EOF'
import json, sys
full, cut = (json.loads(open(p).read().split("\n", 1)[1])["choices"][0] for p in sys.argv[1:3])
want = full["text"][:full["text"].index(sys.argv[3])]
assert cut["finish_reason"] == "stop" and cut["text"] == want, (cut, want)
EOF
late=$(field "$T/c1" 'j["choices"][0]["text"][15:18]')
req POST /v1/completions "$(stopreq 0 "zzzq" "$late" "$stop")" >"$T/c6"
expect "a list of stop strings: the first met ends it" \
    bash -c "test \"\$(head -1 '$T/c5'; tail -n +2 '$T/c5' | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"choices\"][0][\"text\"])')\" = \"\$(head -1 '$T/c6'; tail -n +2 '$T/c6' | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"choices\"][0][\"text\"])')\""
expect "ids differ from completion to completion" test "$(field "$T/c2" 'j["id"]')" != "$(field "$T/c3" 'j["id"]')"

echo "serve: streaming"
$PY - "$port" "$T/c1" <<'EOF' >"$T/sse.log" 2>&1
import json, sys, urllib.request
port, whole = sys.argv[1], json.loads(open(sys.argv[2]).read().split("\n", 1)[1])
body = {"prompt": "O Brasil é", "max_tokens": 30, "temperature": 0, "stream": True}
r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode())
with urllib.request.urlopen(r, timeout=60) as f:
    assert f.status == 200 and f.headers["Content-Type"] == "text/event-stream", f.headers
    raw = f.read().decode()
assert all(l.startswith("data: ") for l in raw.split("\n\n") if l), raw
events = [l[len("data: "):] for l in raw.split("\n\n") if l]
assert events[-1] == "[DONE]", events[-3:]
chunks = [json.loads(e) for e in events[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks)
assert text == whole["choices"][0]["text"], (text, whole)
assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
last = chunks[-1]
assert last["choices"][0]["finish_reason"] == "length" and last["usage"]["completion_tokens"] == 30, last
assert len(chunks) > 10, len(chunks)  # the text came in pieces, not whole
print(f"  {len(chunks)} events, then [DONE]")
EOF
expect "stream: server-sent events, the greedy text in pieces, finish_reason and usage last, [DONE]" \
    bash -c "cat '$T/sse.log'; grep -q 'events, then' '$T/sse.log'"
$PY - "$port" "$T/c5" "$stop" <<'EOF' >"$T/sse2.log" 2>&1
import json, sys, urllib.request
port, cut, stop = sys.argv[1], json.loads(open(sys.argv[2]).read().split("\n", 1)[1]), sys.argv[3]
body = {"prompt": "O Brasil é", "max_tokens": 30, "temperature": 0, "stream": True, "stop": stop}
r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode())
raw = urllib.request.urlopen(r, timeout=60).read().decode()
chunks = [json.loads(l[6:]) for l in raw.split("\n\n") if l.startswith("data: {")]
text = "".join(c["choices"][0]["text"] for c in chunks)
assert text == cut["choices"][0]["text"] and chunks[-1]["choices"][0]["finish_reason"] == "stop", (text, cut)
print("  streamed with a stop string: the same cut")
EOF
expect "stream with a stop string: the same text as whole, the stop string never sent" \
    bash -c "cat '$T/sse2.log'; grep -q 'the same cut' '$T/sse2.log'"

echo "serve: errors"
req POST /v1/completions 'not json' >"$T/e1"
expect "not JSON: 400, an OpenAI error object" \
    test "$(status "$T/e1") $(field "$T/e1" 'j["error"]["type"]')" = "400 invalid_request_error"
req POST /v1/completions '{"max_tokens": 5}' >"$T/e2"
expect "no prompt: 400 naming the field" bash -c "test \$(head -1 '$T/e2') = 400 && grep -q prompt '$T/e2'"
req POST /v1/completions '{"prompt": "x", "temperature": -1}' >"$T/e3"
expect "temperature -1: 400" test "$(status "$T/e3")" = 400
req POST /v1/completions '{"prompt": "x", "stream": "yes"}' >"$T/e4"
expect "stream not a boolean: 400" bash -c "test \$(head -1 '$T/e4') = 400 && grep -q stream '$T/e4'"
long=$($PY -c 'import json; print(json.dumps({"prompt": open("data/corpus_pt_br.txt", encoding="utf-8").read(3000)}))')
req POST /v1/completions "$long" >"$T/e5"
expect "a prompt longer than the context: 400 saying so" bash -c "test \$(head -1 '$T/e5') = 400 && grep -q context '$T/e5'"
# raw BYTES: sends BYTES (a Python literal) on one connection, prints what comes back within 5 s
raw() {
    $PY - "$port" "$1" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
t = time.time()
try:
    s.sendall(eval(sys.argv[2]))
except OSError:
    pass
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except (socket.timeout, ConnectionResetError):
    out += b"<no more>"
sys.stdout.write(out.decode("latin-1") + f"\n<{time.time() - t:.1f} s>\n")
EOF
}
raw "b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1100000\r\n\r\n' + b'a' * 5000" >"$T/e6"
expect "a body over 1 MiB: 413 at once, from its Content-Length" bash -c "head -1 '$T/e6' | grep -q ' 413 ' && grep -q '<0.[0-9] s>' '$T/e6'"
req POST /v1/completions '{"prompt": "x", "echo": true}' >"$T/e9"
expect "echo: 400, not supported (never silently ignored)" bash -c "test \$(head -1 '$T/e9') = 400 && grep -q echo '$T/e9'"
req POST /v1/completions '{"prompt": "x", "logprobs": 1}' >"$T/e10"
expect "logprobs: 400, not supported" test "$(status "$T/e10")" = 400
req POST /v1/completions '{"prompt": "x", "logprobs": null, "echo": false, "seed": -1, "top_p": 0, "max_tokens": 3}' >"$T/e11"
expect "their neutral values, seed -1 and top_p 0 are accepted" test "$(status "$T/e11")" = 200
req GET /v1/completions >"$T/e7"
expect "GET /v1/completions: 405" test "$(status "$T/e7")" = 405
expect "... with an Allow header" $PY -c "
import urllib.request, urllib.error
try:
    urllib.request.urlopen('http://127.0.0.1:$port/v1/completions')
except urllib.error.HTTPError as e:
    assert e.code == 405 and e.headers['Allow'] == 'POST', e.headers
"
req GET /nope >"$T/e8"
expect "unknown path: 404" test "$(status "$T/e8")" = 404
req GET /health >"$T/h2"
expect "still serving after the errors; 9 completions counted" \
    test "$(status "$T/h2") $(field "$T/h2" 'j["completions_served"]')" = "200 9"

echo "serve: stop"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
expect "SIGINT: exit 0" test "$rc" -eq 0
expect "... saying how many it served" grep -q "stopped after 9 completions" "$T/serve.log"
expect "... nothing on stderr" test ! -s "$T/serve.err"
expect_exit 2 "serve: a bad --host: exit 2" "$MINIGPT" serve --checkpoint "$ck" --host nowhere
expect_exit 1 "serve: a missing checkpoint: exit 1" "$MINIGPT" serve --checkpoint "$T/none.safetensors"
"$MINIGPT" serve --checkpoint "$ck" --port 0 >"$T/s2.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    busy=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/s2.log")
    [ -n "$busy" ] && break
    sleep 0.1
done
expect_exit 1 "serve: a port in use: exit 1" "$MINIGPT" serve --checkpoint "$ck" --port "$busy"
kill -TERM "$pid"
wait "$pid"
expect "SIGTERM: exit 0" test $? -eq 0
pid=
