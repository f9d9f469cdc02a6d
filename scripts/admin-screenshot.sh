#!/usr/bin/env bash
# Makes docs/admin.png: runs the admin page's browser test (tests/integration/admin_page.test.mjs)
# against ./build/streamgate with ADMIN_SCREENSHOT set, so the picture is of a real run with
# clients connected and events flowing. Needs Chromium and clients/js's packages (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMGATE_BIN="${STREAMGATE_BIN:-$PWD/build/streamgate}" ADMIN_SCREENSHOT="$PWD/docs/admin.png" \
  node --test --test-name-pattern='numbers move' tests/integration/admin_page.test.mjs
echo "wrote docs/admin.png"
