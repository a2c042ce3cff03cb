#!/usr/bin/env bash
# deps.sh - install what minigpt needs, if any of it is missing.
# Usage: scripts/deps.sh build|test
#   build: compiler, OpenBLAS (OpenMP build), PCRE2, cJSON, libedit, libmicrohttpd,
#          Open MPI (data-parallel training under mpirun: docs/distributed.md)
#   test:  the above plus cmocka, PyTorch with OpenBLAS (parity tests and
#          benchmarks), clang with its sanitizer runtime (fuzzing), Chromium
#          (the web app's browser test, tests/web.sh), and the
#          real clients the tests talk to, from npm at the versions pinned in
#          tests/node/package-lock.json (nothing is downloaded at test time)
set -eu
cd "$(dirname "$0")/.."
want="gcc make libopenblas-openmp-dev libpcre2-dev libcjson-dev libedit-dev libmicrohttpd-dev libopenmpi-dev openmpi-bin"
if [ "${1:-build}" = test ]; then
    want="$want libcmocka-dev python3-torch python3-numpy libopenblas0-pthread clang libclang-rt-14-dev clang-format chromium"
    command -v node >/dev/null && command -v npm >/dev/null || want="$want nodejs npm"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "minigpt: installing missing packages:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "minigpt: not root; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
if [ "${1:-build}" = test ]; then
    # npm install follows the lock file (direct dependencies are pinned exactly); the stamp skips it when nothing changed.
    # Optional dependencies are left out: node-llama-cpp's CPU build for
    # linux-x64 is listed explicitly, its GPU variants are not wanted.
    stamp=tests/node/node_modules/.minigpt-stamp
    if [ ! -f "$stamp" ] || ! cmp -s tests/node/package-lock.json "$stamp"; then
        echo "minigpt: installing the npm test clients (tests/node)"
        (cd tests/node && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --ignore-scripts \
            --no-audit --no-fund --loglevel=error >/dev/null)
        cp tests/node/package-lock.json "$stamp"
    fi
fi
