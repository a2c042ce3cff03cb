#!/usr/bin/env bash
# readme_flags.sh - README.md's flag tables are `minigpt help --markdown CMD`:
# each block between "<!-- minigpt help --markdown CMD -->" and
# "<!-- end of generated flags -->" is rewritten from the option table
# (src/cli/args.c). With --check, rewrites nothing and exits 1 naming the
# first table that differs (tests/cli.sh).
#   scripts/readme_flags.sh [--check] [README.md]
set -eu
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
readme=${1:-README.md}
MINIGPT=${MINIGPT:-./minigpt}
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.t"' EXIT
skip=0
while IFS= read -r line || [ -n "$line" ]; do
    if [ "$skip" = 1 ]; then
        [ "$line" = "<!-- end of generated flags -->" ] || continue
        skip=0
    fi
    printf '%s\n' "$line" >>"$tmp"
    case $line in
    "<!-- minigpt help --markdown "*" -->")
        cmd=${line#<!-- minigpt help --markdown }; cmd=${cmd% -->}
        "$MINIGPT" help --markdown "$cmd" >>"$tmp"
        skip=1 ;;
    esac
done <"$readme"
if [ "$skip" = 1 ]; then echo "$readme: a flag table has no '<!-- end of generated flags -->'" >&2; exit 1; fi
if cmp -s "$tmp" "$readme"; then exit 0; fi
if [ "$check" = 1 ]; then
    echo "$readme: the flag tables differ from 'minigpt help --markdown' (run make readme-flags):" >&2
    diff "$readme" "$tmp" | head -20 >&2
    exit 1
fi
cp "$tmp" "$tmp.t" && mv -f "$tmp.t" "$readme"
echo "rewrote the flag tables of $readme"
