#!/usr/bin/env bash
# benchmark.sh - `minigpt benchmark` end to end on the tiny `micro` shape:
# the text report has its sections, --json parses and holds positive finite
# figures (and the FLOP count the formula gives), --detailed per-op times add
# up to the step they were measured in, --show-memory reports every part,
# bad flags exit 2 with one line. No speed is asserted.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
bench() { "$MINIGPT" benchmark --preset micro --iterations 2 --threads 2 --device cpu "$@"; }

echo "benchmark: text report"
bench --detailed --show-memory >"$T/text" 2>"$T/text.err"
expect "benchmark exits 0" test $? -eq 0
for s in "training: batch 8 x 64" "  step " "  forward " "  backward " "  optimizer " \
         "  prefill " "  first token " "  decode " "  matmul peak " "  model FLOPs " "  MFU " \
         "per-op times" "qkv matmul" "classifier matmul" "softmax+xent" "adamw" "sum of ops" \
         "memory:" "  parameters " "  gradients " "  optimizer state " "  activations " \
         "  KV cache " "  backend " "  process RSS "; do
    expect "text report has '$s'" grep -qF -- "$s" "$T/text"
done
expect "nothing on stderr" test ! -s "$T/text.err"
expect "--help exits 0 with the usage" bash -c "'$MINIGPT' benchmark --help | grep -q '^usage: minigpt benchmark'"
expect "listed by minigpt --help" bash -c "'$MINIGPT' --help | grep -q '^  benchmark '"

echo "benchmark: --json"
bench --json --detailed --show-memory --seq 48 >"$T/json"
expect "--json exits 0" test $? -eq 0
expect "--json: figures positive, finite and consistent" /usr/bin/python3 - "$T/json" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
bad = []
def pos(path):
    v = d
    for k in path.split("."):
        v = v[k]
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        bad.append(f"{path}={v!r}")
    return v
for p in ["train.step_ms", "train.forward_ms", "train.backward_ms", "train.optimizer_ms",
          "train.tokens_per_s", "train.flops_per_step", "train.gflops", "prefill.tokens_per_s",
          "prefill.ttft_ms", "decode.tokens_per_s", "decode.ms_per_token", "matmul_peak.gflops",
          "mfu", "model.params"]:
    pos(p)
m, t = d["model"], d["train"]
if (d["batch"], d["seq"], m["ctx"], m["vocab"]) != (8, 48, 64, 512):
    bad.append("shape not as asked")
# the step's parts are the step
if abs(t["forward_ms"] + t["backward_ms"] + t["optimizer_ms"] - t["step_ms"]) > 1e-6 * t["step_ms"] + 1e-9:
    bad.append("forward + backward + optimizer != step")
if abs(t["tokens_per_s"] - 8 * 48 / (t["step_ms"] / 1e3)) > 1e-6 * t["tokens_per_s"]:
    bad.append("tokens/s is not batch*seq/step")
# the FLOP count: matmuls x3 (forward + 2 backward), causal attention
B, T, C, V, L = 8, 48, m["dim"], m["vocab"], m["layers"]
N = B * T
want = 3 * (L * 2 * N * C * 12 * C + 2 * N * C * V + L * 2 * B * C * T * (T + 1))
if t["flops_per_step"] != want:
    bad.append(f"flops_per_step {t['flops_per_step']} != {want}")
if not 0 < d["mfu"] <= 1.5:
    bad.append(f"mfu {d['mfu']} outside (0, 1.5]")
if abs(d["mfu"] - t["gflops"] / d["matmul_peak"]["gflops"]) > 1e-6:
    bad.append("mfu != gflops / peak")
if abs(t["loss"] - math.log(V)) > 1.0:
    bad.append(f"loss {t['loss']} far from ln V on random tokens")
if d["prefill"]["tokens"] != 64 or d["decode"]["tokens"] != 63:
    bad.append("prefill/decode token counts")
mem = d["memory"]
if mem["parameters_bytes"] != 4 * m["params"] or mem["gradients_bytes"] != 4 * m["params"] \
        or mem["optimizer_bytes"] != 8 * m["params"]:
    bad.append("memory: parameter-sized parts")
for k in ["activations_bytes", "kv_cache_bytes", "backend_peak_bytes", "rss_peak_bytes"]:
    if not mem[k] > 0:
        bad.append(f"memory.{k}={mem[k]}")
print("  bad:", bad) if bad else None
sys.exit(1 if bad else 0)
EOF
expect "--detailed: per-op times add up to the profiled step" /usr/bin/python3 - "$T/json" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
bad = []
det = d["detailed"]
if set(det) != {"default", "no_fusion"}:
    bad.append(f"columns {sorted(det)}")
names = ["embedding", "layernorm", "qkv matmul", "attn proj matmul", "fc matmul", "fc2 matmul",
         "attention", "gelu", "residual add", "classifier matmul", "softmax+xent", "adamw", "muon"]
for label, col in det.items():
    ops = col["ops"]
    if sorted(ops) != sorted(names):
        bad.append(f"{label}: ops {sorted(ops)}")
        continue
    for n, o in ops.items():
        parts = o["forward_ms"] + o["backward_ms"] + o["optimizer_ms"]
        # >= 0: a fused kernel may take over a whole category
        if not (math.isfinite(o["total_ms"]) and o["total_ms"] >= 0 and abs(parts - o["total_ms"]) < 1e-9 + 1e-6 * parts):
            bad.append(f"{label} {n}: {o}")
    s = sum(o["total_ms"] for o in ops.values())
    if abs(s - col["ops_sum_ms"]) > 1e-6 * s:
        bad.append(f"{label}: ops_sum_ms {col['ops_sum_ms']} != {s}")
    # the ops are timed inside the steps they add up to: their sum is
    # nearly all of it (loose: a busy machine can preempt between ops), never more
    if not 0.3 * col["step_ms"] <= s <= 1.0001 * col["step_ms"]:
        bad.append(f"{label}: ops sum {s:.3f} ms vs profiled step {col['step_ms']:.3f} ms")
    for n in ["qkv matmul", "fc matmul", "attention", "adamw"]:
        phase = "optimizer_ms" if n == "adamw" else "backward_ms"
        if not ops[n][phase] > 0:
            bad.append(f"{label} {n}: no {phase}")
print("  bad:", bad) if bad else None
sys.exit(1 if bad else 0)
EOF
expect "--optimizer muon --detailed --json: the Muon op is timed, and only there" bash -c "'$MINIGPT' benchmark --preset micro \
    --iterations 1 --threads 2 --optimizer muon --no-fusion --detailed --json | /usr/bin/python3 -c 'import json, sys; \
    d = json.load(sys.stdin); o = d[\"detailed\"][\"no_fusion\"][\"ops\"]; \
    sys.exit(not (d[\"optimizer\"] == \"muon\" and o[\"muon\"][\"optimizer_ms\"] > 0 and o[\"muon\"][\"forward_ms\"] == 0))'"
expect "... and not in an AdamW step" bash -c "'$MINIGPT' benchmark --preset micro --iterations 1 --threads 2 \
    --no-fusion --detailed --json | /usr/bin/python3 -c 'import json, sys; \
    d = json.load(sys.stdin); sys.exit(not (d[\"optimizer\"] == \"adamw\" and d[\"detailed\"][\"no_fusion\"][\"ops\"][\"muon\"][\"total_ms\"] == 0))'"
expect "--no-fusion --json: one unfused column" bash -c "'$MINIGPT' benchmark --preset micro --iterations 1 \
    --threads 2 --no-fusion --detailed --json | /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); \
    sys.exit(not (d[\"no_fusion\"] is True and list(d[\"detailed\"]) == [\"no_fusion\"]))'"

expect "--quantize q8 --json: decoding with int8 weights, said in the report" bash -c "'$MINIGPT' benchmark \
    --preset micro --iterations 1 --threads 2 --device cpu --quantize q8 --json | /usr/bin/python3 -c \
    'import json, sys; d = json.load(sys.stdin); sys.exit(not (d[\"decode_weights\"] == \"int8\" and d[\"decode\"][\"tokens_per_s\"] > 0))'"

echo "benchmark: bad flags"
for a in "--batch 0" "--iterations 0" "--bogus" "--iterations" "--preset nope" "--device gpu" \
         "--precision fp8" "--seq 65" "--heads 3" "--quantize q4" "extra"; do
    # shellcheck disable=SC2086
    expect_exit 2 "benchmark $a: exit 2, one line" "$MINIGPT" benchmark --preset micro $a
done
expect_exit 1 "--device cpu --precision bf16: exit 1, one line" \
    "$MINIGPT" benchmark --preset micro --device cpu --precision bf16
