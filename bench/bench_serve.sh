#!/usr/bin/env bash
# bench_serve.sh - `minigpt serve`'s aggregate generation throughput with 1,
# 2, 4 and 8 concurrent clients (continuous batching: the decode steps of
# all active slots run as one kv_feed_batch). Each client sends greedy
# completions of a fixed length back to back for a fixed time; the figure
# is all clients' completion tokens per wall second, and the speed-up is
# against 1 client. The model: a checkpoint given, or a `small`-shaped one
# (d512 L8 H8, context 512, vocab 512) trained one step here (the
# throughput does not depend on the weights).
# Usage: bench/bench_serve.sh [threads] [seconds per point] [checkpoint]   (default 2, 10)
set -eu
cd "$(dirname "$0")/.."
threads=${1:-2}
secs=${2:-10}
ck=${3:-}
py=/usr/bin/python3
make -s minigpt >/dev/null
out=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$ck" ]; then
    head -c 200000 data/corpus_pt_br.txt >"$out/slice.txt"
    ./minigpt train --data "$out/slice.txt" --preset small --ctx 512 --vocab 512 --steps 1 --batch 1 \
        --threads "$threads" --eval-every 0 --out "$out/m" >/dev/null 2>&1
    ck=$out/m/mini_gpt.safetensors
fi
./minigpt serve --checkpoint "$ck" --port 0 --threads "$threads" --parallel 8 --queue 64 >"$out/serve.log" 2>&1 &
pid=$!
port=
for _ in $(seq 300); do
    port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\)$|\1|p' "$out/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "bench_serve.sh: the server did not start" >&2; cat "$out/serve.log" >&2; exit 1; }
head -1 "$out/serve.log"
echo "threads: $threads; each client: greedy completions of 128 tokens, back to back, for $secs s"
$py - "$port" "$secs" <<'PY'
import json, sys, threading, time, urllib.request
port, secs = sys.argv[1], float(sys.argv[2])
def client(stop_at, out):
    while time.time() < stop_at:
        r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(
            {"prompt": "O Brasil é", "max_tokens": 128, "temperature": 0}).encode())
        with urllib.request.urlopen(r, timeout=300) as f:
            out.append(json.loads(f.read())["usage"]["completion_tokens"])
client(time.time() + 1, [])  # warm-up
base = None
print(f"{'clients':>8} {'tokens':>8} {'tokens/s':>10} {'per client':>11} {'vs 1':>6}")
for n in (1, 2, 4, 8):
    outs = [[] for _ in range(n)]
    t0 = time.time()
    th = [threading.Thread(target=client, args=(t0 + secs, outs[i])) for i in range(n)]
    [t.start() for t in th]
    [t.join() for t in th]
    wall = time.time() - t0
    tok = sum(map(sum, outs))
    rate = tok / wall
    base = base or rate
    print(f"{n:>8} {tok:>8} {rate:>10.1f} {rate / n:>11.1f} {rate / base:>5.2f}x")
PY
