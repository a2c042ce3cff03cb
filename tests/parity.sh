#!/usr/bin/env bash
# parity.sh - minigpt vs PyTorch (tests/parity.py), and proof that the
# comparison can fail: a perturbed gradient must be caught.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
DUMP=${DUMP:-build/tools/parity_dump}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "parity with PyTorch"
mkdir -p "$T/ok" "$T/bad"
"$DUMP" "$T/ok" && "$DUMP" "$T/bad" --perturb
/usr/bin/python3 tests/parity.py "$T/ok" >"$T/ok.log" 2>&1
rc=$?
sed 's/^/  | /' "$T/ok.log"
expect "logits, loss, gradients, 10 AdamW steps match PyTorch" test $rc -eq 0
/usr/bin/python3 tests/parity.py "$T/bad" >"$T/bad.log" 2>&1
rc=$?
expect "a perturbed gradient makes the parity test fail" test $rc -eq 1
expect "... and it names the perturbed tensor" grep -q "FAIL grad.transformer.layers.1.mlp.fc.weight" "$T/bad.log"
# the same with the flash attention kernel forced (the default picks by T)
mkdir -p "$T/flash"
MINIGPT_ATTENTION=flash "$DUMP" "$T/flash" && /usr/bin/python3 tests/parity.py "$T/flash" >"$T/flash.log" 2>&1
expect "... and with the flash attention kernel (MINIGPT_ATTENTION=flash)" test $? -eq 0
# the other MLPs (--mlp): the model_config's "mlp" and "ffn_hidden" tell
# parity.py which one to build
for mlp in relu2 swiglu; do
    mkdir -p "$T/$mlp" "$T/$mlp-bad"
    "$DUMP" "$T/$mlp" --mlp $mlp && "$DUMP" "$T/$mlp-bad" --perturb --mlp $mlp
    /usr/bin/python3 tests/parity.py "$T/$mlp" >"$T/$mlp.log" 2>&1
    rc=$?
    sed 's/^/  | /' "$T/$mlp.log" | grep -v '^  |   ok'
    expect "--mlp $mlp: logits, loss, gradients, 10 AdamW steps match PyTorch" test $rc -eq 0
    expect "... and it is the $mlp MLP" grep -q "^parity: $mlp MLP" "$T/$mlp.log"
    /usr/bin/python3 tests/parity.py "$T/$mlp-bad" >"$T/$mlp-bad.log" 2>&1
    rc=$?
    expect "... a perturbed gradient makes it fail" test $rc -eq 1
    expect "... naming the perturbed tensor" grep -q "FAIL grad.transformer.layers.1.mlp.fc.weight" "$T/$mlp-bad.log"
done
