# lib.sh - tiny helpers for the shell test suites: each check records one
# result line in $RESULTS, which tests/run_all.sh counts.
RESULTS=${RESULTS:-$(mktemp)}
MINIGPT=${MINIGPT:-./minigpt}

pass() { echo "  ok   $1"; echo "pass $1" >>"$RESULTS"; }
fail() { echo "  FAIL $1"; echo "fail $1" >>"$RESULTS"; }

# expect NAME CMD...: the command must succeed
expect() {
    local name=$1; shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# expect_exit CODE NAME CMD...: exits with CODE and, on failure, prints
# exactly one line on stderr (kept in $LAST_ERR)
expect_exit() {
    local code=$1 name=$2; shift 2
    local errf; errf=$(mktemp)
    "$@" >/dev/null 2>"$errf" </dev/null
    local rc=$?
    LAST_ERR=$(cat "$errf"); rm -f "$errf"
    local lines; lines=$(printf '%s' "$LAST_ERR" | grep -c '')
    if [ "$rc" -eq "$code" ] && { [ "$code" -eq 0 ] || [ "$lines" -eq 1 ]; }; then
        pass "$name"
    else
        fail "$name (exit $rc, want $code; stderr: $(printf '%s' "$LAST_ERR" | head -c 300))"
    fi
}
