#!/usr/bin/env bash
# dist.sh - data-parallel training under mpirun (docs/distributed.md): two
# ranks of --batch 4 against one process of --batch 8 (also with
# --grad-accum 2 and --zero 1), resume bit-identical to the uninterrupted
# two-rank run, a world-size change refused, mismatched ranks refused with
# nothing written, and the faults: a rank killed with kill -9, SIGUSR1 and
# SIGTERM to mpirun. Without Open MPI (mpirun, or a minigpt built without
# it) every check reports itself skipped, by name.
#
# Tolerance of the equivalence checks: losses and validation to 2e-5
# relative, weights to 5e-5 absolute after 8 steps (measured: 0 and 6e-6). Two ranks add two
# half-batch gradients where one process sums all eight rows at once, and
# average two half-batch losses: the same sums in another order, so float
# rounding differs in the last bits and AdamW (which divides by sqrt(v))
# carries that into the weights at about lr x 1e-3.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
echo "== distributed training (mpirun)"
names=("2 ranks x batch 4 = 1 process x batch 8" "the same with --grad-accum 2"
       "the same with --zero 1" "resume under -np 2 is bit-identical" "resume with --zero 1 is bit-identical"
       "another world size is refused" "mismatched ranks: one line, nothing written"
       "kill -9 of a rank: bounded stop" "SIGUSR1 to mpirun: graceful stop" "SIGTERM to mpirun: bounded stop")
corpus="$d/corpus.txt"
head -c 200000 data/corpus_pt_br.txt >"$corpus"
common=(train --preset micro --data "$corpus" --threads 1 --steps 8 --eval-every 4 --log-every 1)
# with or without MPI: --zero needs several processes
expect_exit 2 "--zero 1 without mpirun: one line, exit 2" "$MINIGPT" "${common[@]}" --zero 1 \
    --out "$d/z1"
if ! command -v mpirun >/dev/null; then
    for t in "${names[@]}"; do echo "  skip $t (mpirun not installed: scripts/deps.sh)"; done
    exit 0
fi
if ! $MINIGPT --version | grep -q 'backends:.* mpi'; then
    for t in "${names[@]}"; do echo "  skip $t (minigpt built without MPI)"; done
    exit 0
fi
# CI runs as root on two cores: shared memory between ranks, no network
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi() { timeout 60 mpirun -q -np 2 "$@"; }
one() { timeout 60 "$MINIGPT" "${common[@]}" "$@" >/dev/null 2>&1; }
two() { mpi "$MINIGPT" "${common[@]}" "$@" >/dev/null 2>&1; }

# compare DIR_A DIR_B MODE: MODE=close (tolerances above) or exact (the
# weights' bytes, and every logged loss, identical)
compare() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, struct, sys
from array import array
a, b, mode = sys.argv[1:]
def weights(path):
    raw = open(path + "/mini_gpt.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = array("f", raw[8 + n + s:8 + n + e])
    return out
def log(path):
    return {r["step"]: r for r in map(json.loads, open(path + "/train_log.jsonl"))}
wa, wb, la, lb = weights(a), weights(b), log(a), log(b)
ok = sorted(wa) == sorted(wb) and sorted(la) == sorted(lb)
worst = {"loss": 0.0, "weight": 0.0}
for s in la:
    for k in ("train_loss", "val_loss", "val_bpb"):
        if (k in la[s]) != (k in lb[s]): ok = False; continue
        if k not in la[s]: continue
        x, y = la[s][k], lb[s][k]
        worst["loss"] = max(worst["loss"], abs(x - y) / abs(x))
        if mode == "exact" and x != y: ok = False
for k in wa:
    diff = max(abs(x - y) for x, y in zip(wa[k], wb[k])) if len(wa[k]) == len(wb[k]) else 1e9
    worst["weight"] = max(worst["weight"], diff)
    if mode == "exact" and wa[k].tobytes() != wb[k].tobytes(): ok = False
if mode == "close" and (worst["loss"] > 2e-5 or worst["weight"] > 5e-5): ok = False
print("    %s: loss rel diff %.2e, weight max diff %.2e" % (mode, worst["loss"], worst["weight"]))
sys.exit(0 if ok else 1)
EOF
}

# the gradient norms the two runs printed (3 decimals) must agree

equal_norms() { diff <(grep -o 'grad-norm [0-9.]*' "$1") <(grep -o 'grad-norm [0-9.]*' "$2"); }
check_plain() {
    grep -q 'global batch 8 sequences' "$d/p2.log" && equal_norms "$d/p2.log" "$d/s1.log" &&
        compare "$d/s1" "$d/p2" close
}
check_zero() {
    grep -q 'MB saved per rank' "$d/p2z.log" && equal_norms "$d/p2z.log" "$d/s1a.log" &&
        compare "$d/s1a" "$d/p2z" close
}
$MINIGPT "${common[@]}" --batch 8 --out "$d/s1" >"$d/s1.log" 2>&1
# --zero 1 shards AdamW (Muon, the default otherwise, is not sharded): its reference is AdamW's
$MINIGPT "${common[@]}" --batch 8 --optimizer adamw --out "$d/s1a" >"$d/s1a.log" 2>&1
mpi "$MINIGPT" "${common[@]}" --batch 4 --out "$d/p2" --save-every 4 >"$d/p2.log" 2>&1
expect "${names[0]}" check_plain
one --batch 8 --grad-accum 2 --out "$d/s1k"
two --batch 4 --grad-accum 2 --out "$d/p2k"
expect "${names[1]}" compare "$d/s1k" "$d/p2k" close
mpi "$MINIGPT" "${common[@]}" --batch 4 --zero 1 --save-every 4 --out "$d/p2z" >"$d/p2z.log" 2>&1
grep -o 'zero 1: .*' "$d/p2z.log" | sed 's/^/    /'
expect "${names[2]}" check_zero

# resume: the uninterrupted runs above saved step 4; continue copies of them
for v in p2 p2z; do
    mkdir "$d/r$v"
    cp "$d/$v"/checkpoint_step_4.* "$d/r$v/"
    head -n 4 "$d/$v/train_log.jsonl" >"$d/r$v/train_log.jsonl"
done
two --resume "$d/rp2/checkpoint_step_4.safetensors" --out "$d/rp2"
expect "${names[3]}" compare "$d/p2" "$d/rp2" exact
two --resume "$d/rp2z/checkpoint_step_4.safetensors" --out "$d/rp2z" --zero 1
expect "${names[4]}" compare "$d/p2z" "$d/rp2z" exact
expect_exit 1 "${names[5]}" "$MINIGPT" "${common[@]}" --resume "$d/p2/checkpoint_step_4.safetensors" \
    --out "$d/p2"
echo "    $LAST_ERR"

# mismatched ranks (MPMD: rank 1 gets other flags or another binary): one
# line on stderr (mpirun -q adds none), non-zero, no --out created
mismatch() { # NAME ARGS-OF-RANK-1... ; rank 0 runs the common flags
    local what=$1 out="$d/mm$RANDOM" errf="$d/mm.err"
    shift
    timeout 60 mpirun -q -np 1 "$MINIGPT" "${common[@]}" --batch 4 --out "$out" : \
        -np 1 "$@" --out "$out" >/dev/null 2>"$errf"
    local rc=$?
    echo "    $(cat "$errf")"
    [ $rc -ne 0 ] && [ "$(grep -c '' "$errf")" -eq 1 ] && grep -q "different $what" "$errf" && [ ! -e "$out" ]
}
head -c 150000 data/corpus_pt_br.txt >"$d/other.txt"
cp "$MINIGPT" "$d/minigpt2" && printf 'x' >>"$d/minigpt2"
expect "${names[6]} (--batch)" mismatch hyperparameters "$MINIGPT" "${common[@]}" --batch 2
expect "${names[6]} (--preset)" mismatch "model shape" "$MINIGPT" "${common[@]}" --batch 4 --preset tiny
expect "${names[6]} (--data)" mismatch corpus "$MINIGPT" "${common[@]}" --batch 4 --data "$d/other.txt"
expect "${names[6]} (binary)" mismatch binary "$d/minigpt2" "${common[@]}" --batch 4

# faults: a long run saving every 5 steps, stopped from outside (without
# mpirun -q: its line on a rank's death is the reason given)
long=(train --preset micro --data "$corpus" --threads 1 --steps 100000 --batch 4 --save-every 5
      --keep 2 --log-every 1000)
start_long() { # OUT: starts mpirun in the background (timeout's pid $pid, mpirun's $mpid)
    timeout 60 mpirun -np 2 "$MINIGPT" "${long[@]}" --out "$1" >"$1.log" 2>"$1.err" &
    pid=$!
    for _ in $(seq 300); do # until a checkpoint exists
        ls "$1"/checkpoint_step_*.optim.safetensors >/dev/null 2>&1 && break
        sleep 0.1
    done
    mpid=$(pgrep -P "$pid" -x mpirun)
}
rank_pid() { # the pid of rank $1 of the run writing to $2
    for p in $(pgrep -f -- "--out $2\$"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && echo "$p"
    done | head -n 1
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
resumes() { # the latest checkpoint continues for 3 steps under -np 2
    local ck step
    ck=$(ls "$1"/checkpoint_step_*.safetensors | grep -v optim | sort -t_ -k3 -n | tail -n 1)
    step=$(sed 's/.*_\([0-9]*\)\.safetensors/\1/' <<<"$ck")
    mpi "$MINIGPT" "${long[@]}" --resume "$ck" --steps $((step + 3)) --out "$1" >/dev/null 2>&1
}
check_kill() { [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$ms" -lt 20000 ] &&
    grep -q 'exited on signal 9' "$d/k9.err" && resumes "$d/k9"; }
check_usr1() { [ "$rc" -eq 0 ] && grep -q 'stopped at step' "$d/u1.log" && resumes "$d/u1"; }
check_term() { [ "$rc" -ne 124 ] && [ "$ms" -lt 20000 ] && resumes "$d/t1"; }
start_long "$d/k9"
t0=$(date +%s%N)
kill -9 "$(rank_pid 1 "$d/k9")"
wait $pid
rc=$? ms=$(ms_since "$t0")
echo "    kill -9 of rank 1: mpirun exit $rc after $ms ms: $(grep -m1 -o 'process rank 1.*' "$d/k9.err")"
expect "${names[7]}" check_kill
start_long "$d/u1"
kill -USR1 "$mpid"
wait $pid
rc=$?
echo "    SIGUSR1: mpirun exit $rc; $(grep -o 'stopped at step [0-9]*' "$d/u1.log")"
expect "${names[8]}" check_usr1
start_long "$d/t1"
t0=$(date +%s%N)
kill -TERM "$mpid"
wait $pid
rc=$? ms=$(ms_since "$t0")
echo "    SIGTERM: mpirun exit $rc after $ms ms; $(grep -o 'stopped at step [0-9]*' "$d/t1.log")"
expect "${names[9]}" check_term
