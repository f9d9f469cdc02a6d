#!/usr/bin/env bash
# Tests the browser client: installs what is missing (Chromium from Debian, the npm packages the
# lock file pins), builds (tsc, and esbuild for the single-file minified build), runs the unit
# tests (fake WebSocket, virtual clock), then the end-to-end tests in headless Chromium against
# the real streamgate binary ($STREAMGATE_BIN, default: build/streamgate of this repository).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

export STREAMGATE_BIN="${STREAMGATE_BIN:-$(cd ../.. && pwd)/build/streamgate}"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (Debian package)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: /usr/bin/chromium is missing; install the Debian package chromium (as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$STREAMGATE_BIN" ]; then
  echo "test.sh: no streamgate binary at $STREAMGATE_BIN (build it, or set STREAMGATE_BIN)" >&2
  exit 1
fi

echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "== format check (prettier)"
npx --no-install prettier --check . >/dev/null

echo "== build (tsc, esbuild)"
rm -rf dist
npm run build --silent
# The React test page, type-checked against the built declarations as an app would use them.
npx --no-install tsc -p test/e2e/pages/tsconfig.json

echo "== unit tests"
node --test --test-reporter=spec test/unit/

echo "== end-to-end tests (headless Chromium, $STREAMGATE_BIN)"
node --test --test-reporter=spec --test-concurrency=1 --test-timeout=120000 test/e2e/
