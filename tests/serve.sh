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
"$MINIGPT" train --data "$T/slice.txt" --preset micro --optimizer adamw --steps 40 --batch 4 --threads 2 \
    --eval-every 0 --out "$T/m" >/dev/null 2>&1
ck=$T/m/mini_gpt.safetensors

echo "serve: start"
"$MINIGPT" serve --checkpoint "$ck" --port 0 --threads 1 --parallel 4 --max-tokens 20 --header-timeout 3 \
    --body-timeout 3 >"$T/serve.log" 2>"$T/serve.err" &
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
# the worker generates ahead of the reader: how many tokens each event
# carries depends on timing, so only that there is text before the last
assert len(chunks) >= 2, len(chunks)
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

echo "serve: seeds, max_tokens 0"
req POST /v1/completions '{"prompt": "Era uma vez", "temperature": 1.0, "max_tokens": 12}' >"$T/s1"
expect "a drawn seed is a JSON integer below 2^53" $PY - "$T/s1" <<'EOF'
import json, re, sys
raw = open(sys.argv[1]).read().split("\n", 1)[1]
assert re.search(r'"seed":[0-9]+[,}]', raw), raw
assert 0 <= json.loads(raw)["seed"] < 2**53, raw
EOF
seed=$(field "$T/s1" 'j["seed"]')
req POST /v1/completions "{\"prompt\": \"Era uma vez\", \"temperature\": 1.0, \"max_tokens\": 12, \"seed\": $seed}" >"$T/s2"
expect "... sent back, it draws the same text" test "$(field "$T/s1" 'j["choices"][0]["text"]')" = "$(field "$T/s2" 'j["choices"][0]["text"]')"
req POST /v1/completions '{"prompt": "O Brasil é", "max_tokens": 0}' >"$T/s3"
expect "max_tokens 0: 200, no text, usage of the prompt only" \
    test "$(field "$T/s3" '(j["choices"][0]["text"], j["usage"]["completion_tokens"], j["usage"]["prompt_tokens"] > 0)')" = "('', 0, True)"

echo "serve: chat"
req POST /v1/chat/completions '{"messages": [{"role": "user", "content": "Olá"}], "temperature": 0, "max_tokens": 12}' >"$T/ch1"
expect "chat: 200, chat.completion, an assistant message, usage" \
    test "$(field "$T/ch1" '(j["object"], j["choices"][0]["message"]["role"], j["usage"]["completion_tokens"])')" = "('chat.completion', 'assistant', 12)"
printf 'Olá\n' | "$MINIGPT" chat --checkpoint "$ck" --threads 1 --temperature 0 --max-tokens 12 >"$T/chat.out" 2>/dev/null
expect "... the answer minigpt chat gives (the same template)" $PY - "$T/ch1" "$T/chat.out" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read().split("\n", 1)[1])
cli = open(sys.argv[2], encoding="utf-8").read()
assert j["choices"][0]["message"]["content"] + "\n" == cli, (j, cli)
EOF
req POST /v1/completions '{"prompt": "user: Olá\nassistant: ", "temperature": 0, "max_tokens": 12}' >"$T/ch2"
expect "... which is the completion of the default template's prompt" \
    test "$(field "$T/ch1" 'j["choices"][0]["message"]["content"]')" = "$(field "$T/ch2" 'j["choices"][0]["text"]')"
$PY - "$port" "$T/ch1" <<'EOF' >"$T/chs.log" 2>&1
import json, sys, urllib.request
port, whole = sys.argv[1], json.loads(open(sys.argv[2]).read().split("\n", 1)[1])
body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Olá"}]}], "temperature": 0,
        "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}}
r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode())
raw = urllib.request.urlopen(r, timeout=60).read().decode()
events = [l[6:] for l in raw.split("\n\n") if l]
assert events[-1] == "[DONE]"
chunks = [json.loads(e) for e in events[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
assert text == whole["choices"][0]["message"]["content"], (text, whole)
assert chunks[-2]["choices"][0]["finish_reason"] == "length"
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12, chunks[-1]
print("chat stream ok")
EOF
expect "chat stream: role first, the same text in deltas, finish_reason, a usage chunk, [DONE]" \
    bash -c "cat '$T/chs.log' | tail -3; grep -q 'chat stream ok' '$T/chs.log'"
long='A cidade do Rio de Janeiro era, naquele tempo, uma cidade de muitas ruas estreitas.'
req POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": \"$long\"}, {\"role\": \"assistant\", \"content\": \"$long\"}, {\"role\": \"user\", \"content\": \"Olá\"}], \"temperature\": 0, \"max_tokens\": 12}" >"$T/ch4"
expect "chat longer than the context: the oldest turns give way (as minigpt chat), 200, prompt + answer fit" \
    test "$(status "$T/ch4") $(field "$T/ch4" 'j["usage"]["prompt_tokens"] + 12 <= 64')" = "200 True"
expect "... and the answer is the one to the turns that fit (here the last alone)" \
    test "$(field "$T/ch4" 'j["choices"][0]["message"]["content"]')" = "$(field "$T/ch1" 'j["choices"][0]["message"]["content"]')"
req POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": \"$long $long\"}], \"max_tokens\": 12}" >"$T/ch5"
expect "... a last message alone longer than the context: 400" test "$(status "$T/ch5")" = 400
req POST /v1/chat/completions '{"messages": [{"role": "robot", "content": "x"}]}' >"$T/ch3"
expect "chat: an unknown role: 400" test "$(status "$T/ch3")" = 400
req GET "/v1/models/mini_gpt.safetensors" >"$T/mo1"
expect "GET /v1/models/{id}: 200, with created" test "$(field "$T/mo1" '(j["id"], type(j["created"]).__name__)')" = "('mini_gpt.safetensors', 'int')"
req GET /v1/models/nope >"$T/mo2"
expect "... another id: 404 model_not_found" test "$(status "$T/mo2") $(field "$T/mo2" 'j["error"]["code"]')" = "404 model_not_found"

echo "serve: tokenize"
req POST /tokenize '{"content": "O Brasil é grande"}' >"$T/t1"
expect "POST /tokenize: the ids minigpt tokenize --ids prints" test \
    "$(field "$T/t1" '" ".join(map(str, j["tokens"]))')" = "$("$MINIGPT" tokenize --checkpoint "$ck" --ids "O Brasil é grande")"
req POST /tokenize '{"content": "O Brasil é grande", "with_pieces": true}' >"$T/t2"
expect "... with_pieces: ids and pieces that spell the text" \
    test "$(field "$T/t2" '"".join(t["piece"] for t in j["tokens"])')" = "O Brasil é grande"
req POST /detokenize "{\"tokens\": $(field "$T/t1" 'j["tokens"]')}" >"$T/t3"
expect "POST /detokenize: back to the text" test "$(field "$T/t3" 'j["content"]')" = "O Brasil é grande"
req POST /detokenize '{"tokens": [99999]}' >"$T/t4"
expect "... an id out of range: 400" test "$(status "$T/t4")" = 400
head -c 200000 data/corpus_pt_br.txt >"$T/long.txt"
"$MINIGPT" tokenize --checkpoint "$ck" --file "$T/long.txt" --ids >"$T/long.ids"
expect "minigpt tokenize --file: any length (200 kB: far past the context)" test "$(wc -w <"$T/long.ids")" -gt 10000
expect "... the same ids from standard input" cmp -s "$T/long.ids" <("$MINIGPT" tokenize --checkpoint "$ck" --ids <"$T/long.txt")
expect "... --json: ids and pieces" $PY -c "
import json, subprocess, sys
out = subprocess.run(['$MINIGPT', 'tokenize', '--checkpoint', '$ck', '--json', 'ção'], capture_output=True, check=True).stdout
t = json.loads(out)
assert ''.join(x['piece'] for x in t) == 'ção' and all(isinstance(x['id'], int) for x in t), t
"
expect "... default: one line per token, id and piece" bash -c "'$MINIGPT' tokenize --checkpoint '$ck' 'O Brasil' 2>/dev/null | head -1 | grep -qP '^[0-9]+\t\"O\"$'"
expect_exit 2 "minigpt tokenize --ids --json: exit 2" "$MINIGPT" tokenize --checkpoint "$ck" --ids --json x
expect_exit 1 "minigpt tokenize: a missing checkpoint: exit 1" "$MINIGPT" tokenize --checkpoint "$T/none" x

echo "serve: strict bodies"
req POST /v1/completions '{"prompt": "a\u0000b"}' >"$T/n1"
expect "a prompt with \\u0000: 400, not cut at the NUL" bash -c "test \$(head -1 '$T/n1') = 400 && grep -q NUL '$T/n1'"
req POST /v1/completions '{"prompt": "ab", "stop": ["\u0000"]}' >"$T/n2"
expect "a stop string with \\u0000: 400" test "$(status "$T/n2")" = 400
req POST /v1/completions '{"prompt": "a\\u0000b", "max_tokens": 2}' >"$T/n3"
expect "... the six characters \\\\u0000 are text: 200" test "$(status "$T/n3")" = 200
req POST /v1/completions '{"prompt": "ab", "max_token": 3}' >"$T/u1"
expect "misspelled max_token: 400 naming it" bash -c "test \$(head -1 '$T/u1') = 400 && grep -q \"unknown field 'max_token'\" '$T/u1'"
req POST /v1/chat/completions '{"messages": [{"role": "user", "content": "x"}], "temprature": 0}' >"$T/u2"
expect "misspelled temprature (chat): 400 naming it" bash -c "test \$(head -1 '$T/u2') = 400 && grep -q temprature '$T/u2'"
req POST /v1/completions '{"prompt": "ab", "prompt": "cd"}' >"$T/u3"
expect "a duplicate key: 400" bash -c "test \$(head -1 '$T/u3') = 400 && grep -q duplicate '$T/u3'"
raw "b'POST /v1/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 9223372036854775808\\r\\n\\r\\n'" >"$T/r1"
expect "Content-Length 2^63: 413 at once" bash -c "head -1 '$T/r1' | grep -q ' 413 ' && grep -q '<0.[0-9] s>' '$T/r1'"
raw "b'POST /v1/completions HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n10000000000000000\\r\\nabc'" >"$T/r2"
expect "a chunk of 2^64 bytes: an error at once" bash -c "head -1 '$T/r2' | grep -q ' 4[0-9][0-9] ' && grep -q '<0.[0-9] s>' '$T/r2'"
raw "b'HEAD /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'" >"$T/r3"
expect "HEAD /health: 200 (headers only), as GET" bash -c "head -1 '$T/r3' | grep -q ' 200 ' && ! grep -q status '$T/r3'"
# one400 FILE: exactly one status line, a 400, with an OpenAI error naming Content-Length, then the close
one400() { bash -c "test \$(grep -c '^HTTP/' '$1') = 1 && head -1 '$1' | grep -q '^HTTP/1.1 400 ' && grep -q '{\"error\":{\"message\":\"malformed Content-Length' '$1' && ! grep -q '<no more>' '$1'"; }
n=0
for cl in "'-1'" "'+5'" "'1 0'" "'16 '" "'5\\r\\nContent-Length: 6'"; do
    n=$((n + 1))
    raw "b'POST /v1/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: ' + b$cl + b'\\r\\n\\r\\n'" >"$T/cl$n"
    expect "Content-Length $cl: one well-formed 400 (JSON error), then the close" one400 "$T/cl$n"
done
raw "b'POST /tokenize HTTP/1.1\\r\\nHost: x\\r\\nContent-Length:  16\\r\\nConnection: close\\r\\n\\r\\n{\"content\": \"a\"}'" >"$T/clok"
expect "... a plain Content-Length (white space before it) still works: 200" \
    bash -c "head -1 '$T/clok' | grep -q ' 200 ' && grep -q tokens '$T/clok'"
$PY - "$port" "$pid" <<'EOF' >"$T/chunks.log" 2>&1
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu()
s = socket.create_connection(("127.0.0.1", port))
body = b'{"prompt": "' + b"a" * (1048576 - 14) + b'"}'
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
s.sendall(b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n")
s.settimeout(30)
out = s.recv(200)
used = cpu() - c0
print(out.split(b"\r\n")[0].decode(), f"server CPU {used:.2f} s")
assert b" 400 " in out.split(b"\r\n")[0] and used < 2.0, (out, used)
print("cheap")
EOF
expect "a 1 MiB body in 1-byte chunks: answered (400: too long for the context), under 2 s of server CPU" \
    bash -c "cat '$T/chunks.log'; grep -q cheap '$T/chunks.log'"

echo "serve: batching"
$PY - "$port" <<'EOF' >"$T/batch.log" 2>&1
import json, sys, threading, urllib.request
port = sys.argv[1]
def req(body):
    r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode())
    with urllib.request.urlopen(r, timeout=60) as f:
        return json.loads(f.read())["choices"][0]["text"]
bodies = [{"prompt": p, "max_tokens": 40, "temperature": t, "seed": s, "top_p": tp}
          for p in ["O Brasil é", "Era uma vez", "A"] for (t, s, tp) in [(0, 1, 1), (1.0, 5, 1), (0.8, 9, 0.9)]]
alone = [req(b) for b in bodies]
for rnd in range(3):
    got = [None] * len(bodies)
    th = [threading.Thread(target=lambda i=i: got.__setitem__(i, req(bodies[i]))) for i in range(len(bodies))]
    [t.start() for t in th]
    [t.join() for t in th]
    assert got == alone, (rnd, got, alone)
print("same texts")
EOF
expect "9 requests at once (greedy and seeded, 4 slots): each the text it gets alone" \
    bash -c "cat '$T/batch.log' | tail -2; grep -q 'same texts' '$T/batch.log'"

echo "serve: log and metrics"
req GET /metrics >"$T/me"
expect "GET /metrics: Prometheus text with requests by status, tokens, slots, queue, tokens/s" bash -c "
grep -q '^minigpt_requests_total{status=\"200\"} [0-9]' '$T/me' && grep -q '^minigpt_requests_total{status=\"400\"} [0-9]' '$T/me' &&
grep -q '^minigpt_generated_tokens_total [1-9]' '$T/me' && grep -q '^minigpt_prompt_tokens_total [1-9]' '$T/me' &&
grep -q '^minigpt_slots 4$' '$T/me' && grep -q '^minigpt_slots_busy 0$' '$T/me' &&
grep -q '^minigpt_queue_length 0$' '$T/me' && grep -q '^minigpt_tokens_per_second ' '$T/me'"
expect "the log: one line per request (method, path, status, tokens, ms), errors included" bash -c "
grep -qE '^[0-9T:-]+Z POST /v1/completions 200 tokens [0-9]+\+12 [0-9.]+ ms$' '$T/serve.log' &&
grep -qE ' POST /v1/completions 400 tokens ' '$T/serve.log' && grep -qE ' GET /nope 404 ' '$T/serve.log' &&
grep -qE ' POST /v1/chat/completions 200 ' '$T/serve.log'"

echo "serve: slow clients"
$PY - "$port" <<'EOF' >"$T/loris.log" 2>&1
import json, socket, sys, threading, time, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
slow = []
for _ in range(64):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    slow.append(s)
def trickle():  # a header line each 0.5 s, for 6 s
    for _ in range(12):
        time.sleep(0.5)
        for s in slow:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                pass
threading.Thread(target=trickle, daemon=True).start()
time.sleep(0.3)
t = time.time()
r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps({"prompt": "O Brasil", "max_tokens": 5}).encode())
with urllib.request.urlopen(r, timeout=20) as f:
    assert f.status == 200
print(f"served in {time.time() - t:.2f} s beside 200 idle and 64 slowloris connections")
time.sleep(4)  # past the 3 s header deadline, which the trickled bytes do not extend
closed = 0
for s in slow + idle:
    s.settimeout(0.5)
    try:
        closed += s.recv(100) == b""
    except TimeoutError:  # still open
        pass
    except OSError:  # reset
        closed += 1
print(f"{closed} of 264 closed by the header deadline")
assert closed == 264
EOF
expect "a request served while 200 idle and 64 slowloris connections are open; the deadline closes them" \
    bash -c "cat '$T/loris.log' | tail -3; grep -q '264 of 264 closed' '$T/loris.log'"

echo "serve: stop"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
expect "SIGINT: exit 0" test "$rc" -eq 0
expect "... saying how many it served" grep -qE "stopped after [1-9][0-9]+ completions" "$T/serve.log"
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

# start LOG ARGS...: a server on a free port (pid in $pid, port in $port)
start() {
    local log=$1; shift
    "$MINIGPT" serve --port 0 --threads 1 "$@" >"$log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's|.* on http://.*:\([0-9]*\)$|\1|p' "$log")
        [ -n "$port" ] && break
        sleep 0.1
    done
}
stop() { kill -TERM "$pid"; wait "$pid"; local rc=$?; pid=; return $rc; }

echo "serve: addresses"
start "$T/a1.log" --checkpoint "$ck" --host localhost
expect "--host localhost: listening, /health answers" bash -c "curl -sf 'http://localhost:$port/health' | grep -q ok"
stop
start "$T/a2.log" --checkpoint "$ck" --host ::1
expect "--host ::1 (IPv6): listening on http://[::1]:PORT, /health answers" bash -c \
    "grep -q 'http://\[::1\]:$port' '$T/a2.log' && curl -sf -g 'http://[::1]:$port/health' | grep -q ok"
stop

echo "serve: api key"
start "$T/k.log" --checkpoint "$ck" --api-key s3cret
code() { curl -s -o "$T/k.body" -w '%{http_code}' "$@"; }
expect "--api-key: /health needs none" test "$(code "http://127.0.0.1:$port/health")" = 200
expect "... /v1/models without a key: 401, OpenAI's error shape" bash -c \
    "test \$(curl -s -o '$T/k1' -w '%{http_code}' 'http://127.0.0.1:$port/v1/models') = 401 && grep -q '\"code\":\"invalid_api_key\"' '$T/k1'"
expect "... a wrong key: 401 (completions too, before the body)" test \
    "$(code -H 'Authorization: Bearer nope' -d '{"prompt": "x"}' "http://127.0.0.1:$port/v1/completions")" = 401
expect "... the key: 200" test "$(code -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$port/v1/models")" = 200
expect "... /metrics and /tokenize need it too" test \
    "$(code "http://127.0.0.1:$port/metrics") $(code -d '{"content": "a"}' "http://127.0.0.1:$port/tokenize")" = "401 401"
stop

echo "serve: connection limits"
start "$T/l.log" --checkpoint "$ck" --max-connections 4 --header-timeout 2
$PY - "$port" <<'EOF' >"$T/l1.log" 2>&1
import socket, sys, time, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
time.sleep(0.3)
t = time.time()
with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as f:
    assert f.status == 200
print(f"waited {time.time() - t:.1f} s, then served")
EOF
expect "--max-connections 4: a 5th client waits (not reset) and is served once the idle ones time out" \
    bash -c "cat '$T/l1.log'; grep -q 'then served' '$T/l1.log'"
stop
start "$T/l2.log" --checkpoint "$ck" --max-connections-per-client 3
$PY - "$port" <<'EOF' >"$T/l2.out" 2>&1
import socket, sys, time, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
time.sleep(0.3)
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    print("served")
except Exception as e:
    print("refused:", e)
for s in idle:
    s.close()
time.sleep(0.3)
urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
print("served after")
EOF
expect "--max-connections-per-client 3: a 4th from the same address is refused; served once they close" \
    bash -c "cat '$T/l2.out'; grep -q refused '$T/l2.out' && grep -q 'served after' '$T/l2.out'"
stop

echo "serve: slots, queue, leaving clients, SIGTERM (a slower model)"
"$MINIGPT" train --data "$T/slice.txt" --preset small --ctx 512 --vocab 512 --steps 1 --batch 1 \
    --threads 1 --eval-every 0 --out "$T/big" >/dev/null 2>&1
# one thread: the two 500-token streams must outlast the queued request's arrival
start "$T/q.log" --checkpoint "$T/big/mini_gpt.safetensors" --parallel 2 --queue 1 --shutdown-timeout 300 --threads 1
$PY - "$port" <<'EOF' >"$T/q.out" 2>&1
import http.client, json, sys, threading, time, urllib.request, urllib.error
port = int(sys.argv[1])
def metric(name):
    for l in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode().splitlines():
        if l.startswith(name + " "):
            return float(l.split()[1])
def open_stream(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    # greedy: a sampled stream of this 1-step model meets its end of text within 500
    # tokens about half the time (then it would not hold its slot); greedy never does
    c.request("POST", "/v1/completions", json.dumps({"prompt": "O Brasil", "max_tokens": n, "stream": True,
                                                     "temperature": 0}))
    r = c.getresponse()
    assert r.status == 200 and r.readline().startswith(b"data: ")
    return c, r
# two long streams take both slots
a, b = open_stream(500), open_stream(500)
assert metric("minigpt_slots_busy") == 2
# a third waits in the queue, a fourth is refused
third = {}
def go():
    try:
        r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                   data=json.dumps({"prompt": "Era", "max_tokens": 5}).encode()), timeout=60)
        third["status"] = r.status
    except urllib.error.HTTPError as e:
        third["status"] = e.code
t3 = threading.Thread(target=go)
t3.start()
for _ in range(500):  # the thread's request arrives (a busy machine can take a while)
    if metric("minigpt_queue_length") == 1:
        break
    time.sleep(0.02)
assert metric("minigpt_queue_length") == 1, metric("minigpt_queue_length")
try:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                           data=json.dumps({"prompt": "Era", "max_tokens": 5}).encode()), timeout=60)
    print("4th served?!")
except urllib.error.HTTPError as e:
    assert e.code == 503 and e.headers["Retry-After"], (e.code, dict(e.headers))
    print("4th: 503 with Retry-After", e.headers["Retry-After"])
# both stream clients leave: their slots free at once, the queued one is served
before = metric("minigpt_generated_tokens_total")
t = time.time()
for c, r in (a, b):
    r.close(); c.close()
t3.join(30)
print(f"queued request: {third.get('status')} {time.time() - t:.2f} s after the streams' clients left")
assert third.get("status") == 200
time.sleep(0.3)
gen = metric("minigpt_generated_tokens_total") - before
print(f"the two left streams generated {gen - 5:.0f} of their 1000 tokens")
assert metric("minigpt_slots_busy") == 0 and gen - 5 < 800, gen
print("queue ok")
EOF
expect "--parallel 2 --queue 1: 2 streams run, a 3rd queues, a 4th gets 503 + Retry-After; clients that leave free their slots" \
    bash -c "cat '$T/q.out' | tail -4; grep -q 'queue ok' '$T/q.out'"
$PY - "$port" <<'EOF' >"$T/term.out" 2>&1 &
import json, sys, urllib.request
port = sys.argv[1]
r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                           data=json.dumps({"prompt": "O Brasil", "max_tokens": 100, "stream": True}).encode())
raw = urllib.request.urlopen(r, timeout=60).read().decode()
events = [l[6:] for l in raw.split("\n\n") if l]
assert events[-1] == "[DONE]", events[-2:]
last = json.loads(events[-2])
why, n = last["choices"][0]["finish_reason"], last["usage"]["completion_tokens"]
assert why == "stop" or n == 100, (why, n)  # its end of text, or all 100 tokens: not cut short
print("finished whole:", why, n)
EOF
client=$!
sleep 0.5
stop
rc=$?
wait "$client"
expect "SIGTERM during a stream: the stream finishes (its 100 tokens or its end of text, [DONE]), then exit 0" \
    bash -c "cat '$T/term.out'; test $rc -eq 0 && grep -q 'finished whole' '$T/term.out'"

echo "serve: OpenAI's npm client"
start "$T/n.log" --checkpoint "$ck" --parallel 4 --max-tokens 20
if [ -d tests/node/node_modules/openai ] && command -v node >/dev/null; then
    node tests/node/serve_openai.mjs "http://127.0.0.1:$port/v1" mini_gpt.safetensors >"$T/npm.out" 2>&1

    while read -r st name; do
        [ "$st" = ok ] && pass "$name" || fail "$name"
    done < <(sed -n 's/^  \(ok\|FAIL\)  *\(openai npm: .*\)$/\1 \2/p' "$T/npm.out")
    expect "openai npm: 7 checks, all passed" test "$(grep -c '^  ok   openai npm' "$T/npm.out")" -eq 7
else
    fail "openai npm: tests/node/node_modules/openai is missing (run scripts/deps.sh test)"
fi
stop
expect "no sanitizer report in any server's output" bash -c "! grep -lE 'Sanitizer|runtime error' '$T'/*.log '$T'/*.err"
