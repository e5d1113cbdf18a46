# Shared by the CLI test scripts (sourced after `work` is set): counters and
# the checks that print one "ok   - ..." or "FAIL - ..." line each.
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; }

# expect NAME STATUS CMD...: runs CMD, checks the exit status, keeps stdout/stderr.
expect() {
    local name=$1 want=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok "$name"; else bad "$name (exit $got, wanted $want; stderr: $(head -c 300 "$work/err"))"; fi
}
# one_line NAME: stderr of the last command is exactly one non-empty line.
one_line() {
    if [ "$(wc -l <"$work/err")" -eq 1 ] && [ -s "$work/err" ]; then ok "$1: one-line error"; else bad "$1: stderr is not one line: $(cat "$work/err")"; fi
}
# contains NAME TEXT out|err: the last command's stdout or stderr holds TEXT.
contains() {
    if grep -qF -- "$2" "$work/$3"; then ok "$1"; else bad "$1 ('$2' not in $3: $(head -c 400 "$work/$3"))"; fi
}
