#!/usr/bin/env bash
# format.sh - the C sources follow .clang-format (clang-format 14, Debian
# 12's): `make format` applies it; this check fails on any file that differs,
# naming the file.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
echo "format: clang-format --dry-run over the C sources"
if ! command -v clang-format >/dev/null; then
    fail "format: clang-format is installed (scripts/deps.sh test)"
    return 0 2>/dev/null || exit 0
fi
bad=$(for f in $(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/tools/*.c' 'tests/fuzz/*.c' 'bench/*.c'); do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
expect "format: every C source is as clang-format writes it${bad:+ (not: $(echo $bad))}" test -z "$bad"
