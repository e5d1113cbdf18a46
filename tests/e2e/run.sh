#!/bin/sh
# Runs a browser end-to-end test file (default e2e.test.mjs) under CTest.
# Exit 77 (CTest's SKIP_RETURN_CODE) only when a tool is genuinely missing:
# node, openssl, Debian's chromium, or playwright-core when `npm ci` cannot install it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

if ! command -v node >/dev/null 2>&1; then
    echo "e2e: SKIP: node is not installed (apt-get install nodejs npm)"
    exit 77
fi
if ! command -v openssl >/dev/null 2>&1; then
    echo "e2e: SKIP: openssl is not installed (the test serves HTTPS with a certificate it makes)"
    exit 77
fi
if [ ! -x "$chromium" ]; then
    echo "e2e: SKIP: no chromium at $chromium (apt-get install chromium, or set CHROMIUM)"
    exit 77
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "e2e: installing playwright-core (npm ci) into $here/node_modules"
        (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || echo "e2e: npm ci failed"
    fi
    if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
        echo "e2e: SKIP: playwright-core is not installed and npm ci could not install it"
        exit 77
    fi
fi

export CHROMIUM="$chromium"
export PM_E2E_OUT="${PM_E2E_OUT:-$here/out}"
cd "$here" && exec node --test --test-concurrency=1 --test-reporter=spec "${1:-e2e.test.mjs}"
