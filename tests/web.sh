#!/usr/bin/env bash
# web.sh - the web app (web/, served by `minigpt serve` and by
# `minigpt train --dashboard`) in a real headless Chromium, driven by
# tests/node/web_test.mjs: chat, the inside view, past runs, the live
# dashboard, XSS, both languages, keyboard and a phone-sized window, zero
# console errors. SCREENSHOTS=1 also refreshes docs/web-*.png.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
PY=/usr/bin/python3
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
if [ ! -x /usr/bin/chromium ] || [ ! -d tests/node/node_modules/playwright-core ]; then
    fail "web: chromium and playwright-core are installed (scripts/deps.sh test)"
    exit 0
fi
head -c 150000 data/corpus_pt_br.txt >"$T/slice.txt"
mkdir -p "$T/runs"
# two short runs, so that serve --runs has two to compare. The chat check's
# second turn (the whole conversation, in the chat template) is about 95
# tokens, over micro's 64: the server drops the oldest turn, as minigpt chat
for r in a b; do
    "$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 30 --batch 4 --threads 2 --eval-every 10 \
        --eval-batches 2 --lr "$([ $r = a ] && echo 3e-3 || echo 1e-3)" --out "$T/runs/$r" >/dev/null 2>&1
done
# the dashboard only watches: the same run with it has the same losses
"$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 30 --batch 4 --threads 2 --eval-every 10 \
    --eval-batches 2 --lr 3e-3 --out "$T/a-dash" --dashboard 0 >"$T/a-dash.log" 2>&1
expect "web: train --dashboard 0 prints its address and changes no loss (samples come from a cache of their own)" \
    $PY -c "
import json, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:3])
sys.exit(not (len(a) == len(b) == 30 and all(x['train_loss'] == y['train_loss'] and x.get('val_loss') == y.get('val_loss')
                                          for x, y in zip(a, b)) and 'dashboard: http://127.0.0.1:' in open(sys.argv[3]).read()))
" "$T/runs/a/train_log.jsonl" "$T/a-dash/train_log.jsonl" "$T/a-dash.log"
echo "web: start"
"$MINIGPT" serve --checkpoint "$T/runs/a/mini_gpt.safetensors" --port 0 --threads 2 --runs "$T/runs" \
    >"$T/serve.log" 2>"$T/serve.err" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
done
expect "web: serve listening ($port)" test -n "$port"
# the page and its files come from the binary, with no CORS header
hdr=$($PY -c "import urllib.request as u; r=u.urlopen('http://127.0.0.1:$port/'); print(r.status, r.headers.get('Content-Type'), r.headers.get('Access-Control-Allow-Origin'))")
expect "web: GET / is the app, as HTML, without CORS headers ($hdr)" test "$hdr" = "200 text/html; charset=utf-8 None"
code=$($PY -c "
import urllib.request as u, urllib.error as e
try: u.urlopen(u.Request('http://127.0.0.1:$port/v1/explain', data=b'{\"prompt\":\"\"}'))
except e.HTTPError as x: print(x.code)")
expect "web: POST /v1/explain with an empty prompt: 400 ($code)" test "$code" = 400
long=$(printf 'palavra %.0s' $(seq 80))
code=$($PY -c "
import urllib.request as u, urllib.error as e, json, sys
for body in (b'{\"prompt\":\"a\",\"extra_ids\":[512000]}', json.dumps({'prompt': sys.argv[1]}).encode(), b'[1]', b'{\"prompt\":\"a\",\"top_p\":2}'):
    try: u.urlopen(u.Request('http://127.0.0.1:$port/v1/explain', data=body)); print(200, end=' ')
    except e.HTTPError as x: print(x.code, end=' ')
try: u.urlopen('http://127.0.0.1:$port/v1/explain')
except e.HTTPError as x: print(x.code, x.headers.get('Allow'))" "$long")
expect "web: /v1/explain refuses an id out of the vocabulary, over 64 tokens, not an object, top_p 2 (400), GET (405) ($code)" \
    test "$code" = "400 400 400 400 405 POST"
expect_exit 2 "web: train --dashboard with a bad port: exit 2, one line" \
    "$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 1 --out "$T/x" --dashboard 99999
expect_exit 1 "web: serve --runs with a missing folder: exit 1, one line" \
    "$MINIGPT" serve --checkpoint "$T/runs/a/mini_gpt.safetensors" --port 0 --runs "$T/none"
timeout 300 node tests/node/web_test.mjs "http://127.0.0.1:$port" "$MINIGPT" "$T/slice.txt" "$T" >"$T/node.log" 2>&1
rc=$?
cat "$T/node.log" | sed 's/^/  /'
while read -r verdict name; do
    case $verdict in pass) pass "web: $name" ;; fail) fail "web: $name" ;; esac
done <"$T/node.log"
expect "web: the browser test exits 0 (exit $rc)" test "$rc" -eq 0
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
expect "web: serve stops with exit 0 on SIGINT (exit $rc), nothing on stderr" \
    bash -c "test $rc -eq 0 && ! grep -q . '$T/serve.err' || { cat '$T/serve.err' | head -20; false; }"
