#!/usr/bin/env bash
# mlp.sh - the MLPs of `train --mlp` (relu2, swiglu) end to end: micro models
# trained with each, then every command that reads a checkpoint (generate,
# eval, benchmark, load --show-metadata, resume, piped chat, --educational,
# int8 generation); the converters refuse them, nothing written; a
# checkpoint without the keys loads as GPT-2's GELU; a bad value is refused.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
head -c 120000 data/corpus_pt_br.txt >"$T/s.txt"
mg() { timeout 120 "$MINIGPT" "$@"; }

for mlp in relu2 swiglu; do
    echo "mlp: --mlp $mlp"
    O=$T/$mlp M=$T/$mlp/mini_gpt.safetensors
    mg train --data "$T/s.txt" --preset micro --mlp $mlp --steps 200 --batch 8 --eval-every 100 \
        --threads 2 --seed 3 --out "$O" --log-every 50 >"$T/$mlp.log" 2>&1
    expect "train --mlp $mlp: a checkpoint" test -s "$M"
    expect "... the log names the MLP" grep -q "$mlp MLP of" "$T/$mlp.log"
    last=$(sed -n 's/^step 200\/200 loss \([0-9.]*\).*/\1/p' "$T/$mlp.log")
    first=$(sed -n 's/^step 50\/200 loss \([0-9.]*\).*/\1/p' "$T/$mlp.log")
    expect "... and it learns (loss at step 50: $first, at 200: $last)" \
        awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'
    mg load --checkpoint "$M" --show-metadata >"$T/$mlp.meta" 2>&1
    expect "load --show-metadata names the MLP" grep -qE "^  mlp +$mlp$" "$T/$mlp.meta"
    h=$(sed -n 's/^  ffn_hidden *//p' "$T/$mlp.meta")
    [ $mlp = relu2 ] && want=256 || want=160 # 4 x 64; the multiple of 32 nearest 8 x 64 / 3
    expect "... and its hidden size ($h, want $want)" test "$h" = "$want"
    mg generate --checkpoint "$M" --prompt "O Brasil é" --max-tokens 20 --temperature 0 \
        --threads 2 >"$T/$mlp.gen" 2>/dev/null
    expect "generate: greedy text" test "$(wc -c <"$T/$mlp.gen")" -gt 12
    mg generate --checkpoint "$M" --prompt "O Brasil é" --max-tokens 20 --temperature 0 \
        --threads 2 --quantize q8 >"$T/$mlp.q8" 2>/dev/null
    expect "generate --quantize q8 (int8 fc ${want} rows, proj of width ${want})" \
        test "$(wc -c <"$T/$mlp.q8")" -gt 12
    mg generate --checkpoint "$M" --prompt "O Brasil é" --max-tokens 3 --temperature 0 \
        --threads 2 --educational >"$T/$mlp.edu" 2>&1
    act=$([ $mlp = relu2 ] && echo 'fc 64->256, relu\^2, proj 256->64' || echo 'fc 64->2x160, SwiGLU, proj 160->64')
    expect "generate --educational describes the MLP ($act)" grep -q "MLP (ln2, $act" "$T/$mlp.edu"
    full=$(mg eval --checkpoint "$M" --data "$T/s.txt" --ctx 32 --threads 2 2>&1 | grep '^loss')
    inc=$(mg eval --checkpoint "$M" --data "$T/s.txt" --ctx 32 --incremental --threads 2 2>&1 | grep '^loss')
    expect "eval: $full" test -n "$full"
    expect "eval --incremental (the KV cache) gives the same figures" test "$full" = "$inc"
    printf 'Conte-me sobre Machado\nO Brasil é\n' | mg chat --checkpoint "$M" --max-tokens 8 \
        --threads 2 --seed 4 >"$T/$mlp.chat" 2>/dev/null
    expect "chat (piped): two answers" test "$(grep -c '' "$T/$mlp.chat")" -ge 2
    # serve: two greedy completions at once (batched decoding, one row per
    # sequence) are each what generate prints; a strong repeat penalty keeps
    # the small model off a repeated token, so the texts follow the logits
    for p in "O Brasil é" "Era uma vez"; do
        mg generate --checkpoint "$M" --prompt "$p" --max-tokens 48 --temperature 0 --repeat-penalty 5 --threads 2 \
            2>/dev/null >>"$T/$mlp.gen2"
    done
    timeout 120 "$MINIGPT" serve --checkpoint "$M" --port 0 --threads 2 --parallel 2 \
        >"$T/$mlp.serve" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/$mlp.serve")
        [ -n "$port" ] && break
        sleep 0.1
    done
    expect "serve: two greedy completions at once are generate's texts" /usr/bin/python3 - "$port" \
        "$T/$mlp.gen2" <<'PY'
import json, sys, threading, urllib.request
port, gen = sys.argv[1], open(sys.argv[2], encoding="utf-8").read()
prompts, out = ["O Brasil é", "Era uma vez"], {}
def ask(p):
    body = json.dumps({"prompt": p, "max_tokens": 48, "temperature": 0, "repeat_penalty": 5}).encode()
    r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=60) as f:
        out[p] = json.load(f)["choices"][0]["text"]
ts = [threading.Thread(target=ask, args=(p,)) for p in prompts]
[t.start() for t in ts]
[t.join() for t in ts]
assert "".join(p + out[p] + "\n" for p in prompts) == gen, (out, gen)
PY
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
    mg benchmark --preset micro --mlp $mlp --iterations 1 --threads 2 --json >"$T/$mlp.bench" 2>&1
    expect "benchmark --mlp $mlp" /usr/bin/python3 -c "import json, sys
m = json.load(open(sys.argv[1]))['model']
sys.exit(not (m['mlp'] == '$mlp' and m['ffn_hidden'] == $want))" "$T/$mlp.bench"
    mg train --data "$T/s.txt" --resume "$M" --steps 210 --threads 2 --out "$O" --log-every 5 \
        >"$T/$mlp.resume" 2>&1
    expect "train --resume continues to step 210" grep -q "^step 210/210" "$T/$mlp.resume"
    expect "... with the checkpoint's MLP" grep -q "$mlp MLP of $want" "$T/$mlp.resume"
    other=$([ $mlp = relu2 ] && echo swiglu || echo relu2)
    expect_exit 2 "train --resume with another --mlp is refused" \
        "$MINIGPT" train --data "$T/s.txt" --resume "$M" --mlp $other --steps 220 --out "$O"
    expect_exit 1 "convert --to-hf refuses the $mlp model" \
        "$MINIGPT" convert --checkpoint "$M" --to-hf "$T/hf_$mlp"
    expect "... naming the option ($LAST_ERR)" grep -q -- "--mlp $mlp" <<<"$LAST_ERR"
    expect "... and writes nothing" test ! -e "$T/hf_$mlp"
    expect_exit 1 "convert --to-gguf refuses the $mlp model" \
        "$MINIGPT" convert --checkpoint "$M" --to-gguf "$T/$mlp.gguf"
    expect "... naming the option ($LAST_ERR)" grep -q -- "--mlp $mlp" <<<"$LAST_ERR"
    expect "... and writes nothing" bash -c "! ls '$T' | grep -q gguf"
done

echo "mlp: checkpoints without the keys, and bad values"
G=$T/gelu
mg train --data "$T/s.txt" --preset micro --steps 2 --batch 2 --threads 2 --out "$G" >/dev/null 2>&1
/usr/bin/python3 tests/ckpt_edit.py "$G/mini_gpt.safetensors" "$T/old.safetensors" no-mlp
a=$(mg generate --checkpoint "$G/mini_gpt.safetensors" --prompt "Era" --max-tokens 8 --temperature 0 --threads 2 2>/dev/null)
b=$(mg generate --checkpoint "$T/old.safetensors" --prompt "Era" --max-tokens 8 --temperature 0 --threads 2 2>/dev/null)
expect "a checkpoint without 'mlp' and 'ffn_hidden' loads as GELU (the same text)" test "$a" = "$b"
expect "... and --show-metadata says gelu" bash -c \
    "'$MINIGPT' load --checkpoint '$T/old.safetensors' --show-metadata | grep -qE '^  mlp +gelu$'"
/usr/bin/python3 tests/ckpt_edit.py "$G/mini_gpt.safetensors" "$T/bad.safetensors" unknown-mlp
expect_exit 1 "an unknown 'mlp' value is refused" \
    "$MINIGPT" generate --checkpoint "$T/bad.safetensors" --prompt "Era"
expect "... naming the key ($LAST_ERR)" grep -q "'mlp'" <<<"$LAST_ERR"
expect_exit 2 "train --mlp tanh is refused" "$MINIGPT" train --mlp tanh --out "$T/x"
