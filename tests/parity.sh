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
# the architecture options (model/gpt.h), one at a time and all together
variant() { # NAME FLAGS...
    local name=$1
    shift
    mkdir -p "$T/$name"
    "$DUMP" "$T/$name" "$@" && /usr/bin/python3 tests/parity.py "$T/$name" >"$T/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || sed 's/^/  | /' "$T/$name.log"
    expect "... with $*" test $rc -eq 0
}
variant rope --pos rope
variant rmsnorm --norm rmsnorm
variant qknorm --qk-norm
variant untied --untie-head
variant zeroinit --zero-init
# all together; zero-init apart from the gradient check's model, where a zero
# head would zero every gradient but the head's (its own run checks the 10
# AdamW steps that move the model off zero)
variant all --pos rope --norm rmsnorm --qk-norm --untie-head
sed 's/^/  | /' "$T/all.log"
variant all_zero --pos rope --norm rmsnorm --qk-norm --untie-head --zero-init
mkdir -p "$T/allbad"
"$DUMP" "$T/allbad" --perturb --pos rope --norm rmsnorm --qk-norm --untie-head
/usr/bin/python3 tests/parity.py "$T/allbad" >"$T/allbad.log" 2>&1
expect "... and a perturbed gradient fails it with all of them" test $? -eq 1
# the same with the flash attention kernel forced (the default picks by T)
mkdir -p "$T/flash"
MINIGPT_ATTENTION=flash "$DUMP" "$T/flash" && /usr/bin/python3 tests/parity.py "$T/flash" >"$T/flash.log" 2>&1
expect "... and with the flash attention kernel (MINIGPT_ATTENTION=flash)" test $? -eq 0
# Muon (train --optimizer muon): 10 steps against a PyTorch Muon; a momentum
# other than the reference's 0.95 must be caught
mkdir -p "$T/muon" "$T/muon_bad"
"$DUMP" "$T/muon" --muon && /usr/bin/python3 tests/parity.py "$T/muon" >"$T/muon.log" 2>&1
rc=$?
grep -E 'muon losses|muon_losses|FAIL' "$T/muon.log" | sed 's/^/  | /'
expect "10 Muon steps: losses and final weights match a PyTorch Muon" test $rc -eq 0
"$DUMP" "$T/muon_bad" --muon --muon-momentum 0.9 && /usr/bin/python3 tests/parity.py "$T/muon_bad" >"$T/muon_bad.log" 2>&1
expect "... and Muon with momentum 0.9 fails that comparison" test $? -eq 1
expect "... naming the final weights of a hidden matrix" grep -q "FAIL muon.final.transformer.layers.0.attn.qkv.weight" "$T/muon_bad.log"
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
