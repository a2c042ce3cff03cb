#!/usr/bin/env bash
# deps.sh - install the Debian packages minigpt needs, if any are missing.
# Usage: scripts/deps.sh build|test
#   build: compiler, OpenBLAS (OpenMP build), PCRE2, cJSON, libedit, libmicrohttpd
#   test:  the above plus cmocka, PyTorch with OpenBLAS (parity tests and
#          benchmarks) and clang with its sanitizer runtime (fuzzing)
set -eu
want="gcc make libopenblas-openmp-dev libpcre2-dev libcjson-dev libedit-dev libmicrohttpd-dev"
if [ "${1:-build}" = test ]; then
    want="$want libcmocka-dev python3-torch python3-numpy libopenblas0-pthread clang libclang-rt-14-dev"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "minigpt: installing missing packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "minigpt: not root; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
