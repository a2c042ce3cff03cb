#!/usr/bin/env bash
# cli.sh - the one option table: every command's --help and README.md's
# flag tables come from it, the llama.cpp aliases mean what the long names
# mean, unknown or misplaced options are one line and exit 2 in every
# command, --version, --max-tokens 0, seeds up to 2^53-1, make install.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "cli"
cmds=$("$MINIGPT" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
expect "minigpt --help lists 11 commands" test "$(echo "$cmds" | wc -l)" -eq 11

# every long option of the whole table, for the misplaced-option checks
"$MINIGPT" help --markdown >"$T/all.md"
first_names() { grep -oE -- '^\| (`-[a-z]`, )?`--[a-z0-9-]+' "$1" | grep -oE -- '--[a-z0-9-]+' | sort -u; }
all_opts=$(first_names "$T/all.md")
for c in $cmds; do
    "$MINIGPT" "$c" --help >"$T/$c.help"
    expect "$c --help: exit 0, 'usage: minigpt $c'" bash -c "head -1 '$T/$c.help' | grep -q '^usage: minigpt $c'"
    expect "... the same text as 'minigpt help $c'" bash -c "'$MINIGPT' help '$c' | cmp -s - '$T/$c.help'"
    # each row of the command's table is a line of its --help, and no other option is
    "$MINIGPT" help --markdown "$c" >"$T/$c.md"
    first_names "$T/$c.md" >"$T/$c.md.opts"
    grep -oE -- '^  (-[a-z], )?--[a-z0-9-]+' "$T/$c.help" | grep -oE -- '--[a-z0-9-]+' | sort -u |
        grep -vx -- --help >"$T/$c.help.opts"
    expect "... its option lines are the rows of its table" cmp -s "$T/$c.md.opts" "$T/$c.help.opts"
    expect_exit 2 "$c: an unknown option: one line, exit 2" "$MINIGPT" "$c" --bogus
    expect "... the same message in every command" \
        grep -qx -- "minigpt: $c: unknown option '--bogus' (see 'minigpt $c --help')" <<<"$LAST_ERR"
    other=$(comm -23 <(echo "$all_opts") "$T/$c.md.opts" | head -1)
    expect_exit 2 "$c: $other (another command's): one line, exit 2" "$MINIGPT" "$c" "$other" 1
    expect "... saying so the same way" \
        grep -q -- "^minigpt: $c: unknown option '$other' (an option of .*; see 'minigpt $c --help')$" <<<"$LAST_ERR"
    takes_value=$(grep -oE -- '^\| (`-[a-z]`, )?`--[a-z0-9-]+ [^`]' "$T/$c.md" | grep -oE -- '--[a-z0-9-]+' | head -1)
    if [ -n "$takes_value" ]; then
        expect_exit 2 "$c: $takes_value without its value: exit 2" "$MINIGPT" "$c" "$takes_value"
        expect "... saying it needs one" grep -q "needs a value" <<<"$LAST_ERR"
    fi
done
expect_exit 2 "help for an unknown command: exit 2" "$MINIGPT" help --markdown fly

echo "cli: README.md"
expect "README's flag tables are 'minigpt help --markdown'" \
    env MINIGPT="$MINIGPT" scripts/readme_flags.sh --check README.md
expect "... for every command" bash -c "[ \$(grep -c '^<!-- minigpt help --markdown [a-z]* -->' README.md) -eq 9 ]"
# the check can fail: one changed cell in a copy
sed 's/^| `--data FILE` | training text/| `--data FILE` | the training text/' README.md >"$T/README.md"
expect "... and a README that differs is caught" \
    bash -c "! MINIGPT='$MINIGPT' scripts/readme_flags.sh --check '$T/README.md' 2>/dev/null"
expect "README: no bare 'minigpt CMD' command line in a code block" \
    bash -c "! awk '/^\`\`\`/ {c = !c; next} c' README.md | grep -E '^minigpt (train|generate|eval|plot|list|load|chat|serve|benchmark|convert|tokenize) '"

echo "cli: --version"
"$MINIGPT" --version >"$T/v" 2>&1
expect "--version: version, commit and backends" \
    grep -qE '^minigpt [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,}(-dirty)?|unknown); backends: cpu' "$T/v"

echo "cli: aliases and values"
head -c 200000 data/corpus_pt_br.txt >"$T/slice.txt"
"$MINIGPT" train --data "$T/slice.txt" --preset micro --steps 4 --threads 2 --out "$T/m" >/dev/null 2>&1
M=$T/m/mini_gpt.safetensors
"$MINIGPT" generate --checkpoint "$M" --prompt "O Brasil" --max-tokens 8 --seed 3 --threads 2 \
    --temperature 0.9 >"$T/long" 2>"$T/long.err"
"$MINIGPT" generate -m "$M" -p "O Brasil" -n 8 -s 3 -t 2 --temp 0.9 >"$T/short" 2>"$T/short.err"
expect "generate: -m -p -n -s -t --temp = the long names" \
    bash -c "test -s '$T/long' && cmp -s '$T/long' '$T/short' && grep -q 'seed 3' '$T/short.err'"
"$MINIGPT" generate -m "$M" -p "O Brasil" -n 8 -s 3 -t 2 --temp=0.2 >"$T/other" 2>/dev/null
expect "... and --temp changes what --temperature changes" bash -c "! cmp -s '$T/short' '$T/other'"
"$MINIGPT" eval -m "$M" --data "$T/slice.txt" -c 32 -t 2 >"$T/e1" 2>/dev/null
"$MINIGPT" eval --checkpoint "$M" --data "$T/slice.txt" --ctx 32 --threads 2 >"$T/e2" 2>/dev/null
expect "eval: -c = --ctx" bash -c "grep -q 'window 32' '$T/e1' && diff <(grep -v ' in [0-9.]* s' '$T/e1') <(grep -v ' in [0-9.]* s' '$T/e2')"
"$MINIGPT" generate -m "$M" -p "O Brasil é" -n 0 -t 2 >"$T/g0" 2>"$T/g0.err"
expect "generate -n 0: the prompt only, exit 0" bash -c "[ \"\$(cat '$T/g0')\" = 'O Brasil é' ]"
expect "... and the stats line says 0 new tokens" grep -q ', 0 new tokens in ' "$T/g0.err"
"$MINIGPT" load -m "$M" -p "O Brasil é" -n 0 -t 2 >"$T/l0" 2>"$T/l0.err"
expect "load -n 0: the same" bash -c "cmp -s '$T/g0' '$T/l0' && grep -q ', 0 new tokens in ' '$T/l0.err'"
expect_exit 0 "generate --seed 2^53-1 is taken" "$MINIGPT" generate -m "$M" -p x -n 1 -t 2 -s 9007199254740991
expect_exit 2 "generate --seed 2^53: exit 2" "$MINIGPT" generate -m "$M" -p x -s 9007199254740992
expect "... 'out of range [0, 9007199254740991]'" grep -q 'out of range \[0, 9007199254740991\]' <<<"$LAST_ERR"
expect_exit 2 "chat -n 0: exit 2 (an answer needs a token)" "$MINIGPT" chat -m "$M" -n 0
expect_exit 2 "range errors print integers as integers" "$MINIGPT" generate -p x -n 20000000
expect "... '--max-tokens: 20000000 is out of range [0, 16777216]'" \
    grep -qx -- 'minigpt: --max-tokens: 20000000 is out of range \[0, 16777216\]' <<<"$LAST_ERR"
expect_exit 2 "... floats' bounds too" "$MINIGPT" train --minutes 2000000
expect "... '--minutes: 2000000 is out of range [0.01, 1000000]'" \
    grep -qx -- 'minigpt: --minutes: 2000000 is out of range \[0.01, 1000000\]' <<<"$LAST_ERR"

echo "cli: make install"
# what is built is installed, nothing rebuilt (-o: take those as up to date)
cuda=0; [ -e minigpt_cuda.so ] && cuda=1
timeout 60 make -s --no-print-directory -o minigpt -o minigpt_cuda.so CUDA=$cuda install \
    DESTDIR="$T/dest" PREFIX=/opt/mg >/dev/null 2>&1
expect "make install DESTDIR=... PREFIX=/opt/mg: bin/minigpt runs" \
    bash -c "'$T/dest/opt/mg/bin/minigpt' --version | grep -q '^minigpt '"
expect "... the CUDA plugin beside it when built" \
    bash -c "[ $cuda = 0 ] || [ -x '$T/dest/opt/mg/bin/minigpt_cuda.so' ]"
timeout 60 make -s --no-print-directory uninstall DESTDIR="$T/dest" PREFIX=/opt/mg >/dev/null 2>&1
expect "... make uninstall removes it" test ! -e "$T/dest/opt/mg/bin/minigpt"
