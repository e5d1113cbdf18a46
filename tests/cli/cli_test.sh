#!/usr/bin/env bash
# The pixmend program as a user meets it: exit codes, one-line errors, probe,
# and inpaint refusing bad inputs without writing anything.
# usage: cli_test.sh PIXMEND FAKE_NVML_SO
set -u
PIXMEND=$1
FAKE_NVML=$2
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
contains() {
    if grep -qF -- "$2" "$work/$3"; then ok "$1"; else bad "$1 ('$2' not in $3: $(head -c 300 "$work/$3"))"; fi
}

# --- dispatch and options
expect "help" 0 "$PIXMEND" --help
for c in version probe; do contains "help lists $c" "$c" out; done
expect "no command" 2 "$PIXMEND"
expect "unknown command" 2 "$PIXMEND" frobnicate
one_line "unknown command"
contains "unknown command named" "frobnicate" err
expect "unknown flag" 2 "$PIXMEND" version --bogus
one_line "unknown flag"
contains "unknown flag named" "--bogus" err
expect "unexpected argument" 2 "$PIXMEND" probe extra
one_line "unexpected argument"
for c in version probe; do expect "$c --help" 0 "$PIXMEND" "$c" --help; contains "$c --help shows usage" "usage: pixmend $c" out; done
expect "version" 0 "$PIXMEND" version
contains "version names oneDNN" "oneDNN" out

# --- probe
expect "probe" 0 "$PIXMEND" probe
contains "probe shows cores" "Cores:" out
contains "probe shows ISA" "avx512_bf16" out
PIXMEND_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 expect "probe without NVML" 0 "$PIXMEND" probe --json
if $PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
assert d["gpus"]==[], d
assert "not found" in d["gpu_status"], d
assert d["cpu"]["logical_cores"]>=1 and d["cpu"]["physical_cores"]>=1
assert d["memory"]["total_bytes"]>=d["memory"]["available_bytes"]>0
' "$work/out"; then ok "probe --json without a GPU"; else bad "probe --json without a GPU: $(cat "$work/out")"; fi
echo "2 3221225472 17179869184 42" >"$work/nvml"
PM_FAKE_NVML_FILE=$work/nvml PIXMEND_NVML_LIBRARY=$FAKE_NVML expect "probe with fake NVML" 0 "$PIXMEND" probe --json
if $PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
g=d["gpus"]
assert len(g)==2, g
assert g[1]["name"]=="Fake GPU 1", g
assert g[0]["memory_total_bytes"]==17179869184 and g[0]["memory_used_bytes"]==3221225472, g
assert g[0]["utilization_percent"]==42, g
' "$work/out"; then ok "probe --json reads GPUs through NVML"; else bad "probe --json with fake NVML: $(cat "$work/out")"; fi
PM_FAKE_NVML_FILE=$work/nvml PIXMEND_NVML_LIBRARY=$FAKE_NVML expect "probe text with fake NVML" 0 "$PIXMEND" probe
contains "probe text lists the GPU" "Fake GPU 0, 16.0 GiB, 3.0 GiB used, 42 % busy" out

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
