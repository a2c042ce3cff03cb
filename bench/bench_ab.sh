#!/usr/bin/env bash
# bench_ab.sh - two minigpt binaries, the same `minigpt benchmark --json`,
# run in turn (A B A B ...) so that drift in the machine's speed hits both
# alike; prints the median training, prefill and decode tokens/s of each and
# the ratio B/A. For "the refactor changed no speed": A the binary before,
# B after. OMP_WAIT_POLICY is passed through as set (unset: each binary's
# own default).
# Usage: bench/bench_ab.sh A_BINARY B_BINARY [rounds] [benchmark flags...]
#   e.g. bench/bench_ab.sh /tmp/old/minigpt ./minigpt 5 --preset mini
set -eu
a=$1 b=$2 rounds=${3:-5}
shift 3 2>/dev/null || shift $#
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--preset mini)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$rounds"); do
    for who in a b; do
        bin=$a; [ "$who" = b ] && bin=$b
        "$bin" benchmark --device cpu --threads 2 --json "${flags[@]}" >"$out/$who.$i.json" 2>/dev/null
    done
done
/usr/bin/python3 - "$out" "$rounds" "$a" "$b" "${flags[*]}" <<'PY'
import json, statistics, sys
out, rounds, a, b, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def med(who, part):
    return statistics.median(json.load(open(f"{out}/{who}.{i}.json"))[part]["tokens_per_s"] for i in range(1, rounds + 1))
print(f"benchmark {flags}, {rounds} rounds each, medians (tokens/s)")
print(f"{'':10} {'A':>12} {'B':>12} {'B/A':>7}")
for part in ("train", "prefill", "decode"):
    x, y = med("a", part), med("b", part)
    print(f"{part:10} {x:12,.0f} {y:12,.0f} {y / x:7.3f}")
print(f"A: {a}\nB: {b}")
PY
