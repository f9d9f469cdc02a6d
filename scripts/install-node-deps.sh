#!/usr/bin/env bash
# Installs the npm packages the tests use (lock files pin them). Skips folders already current.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in tests/integration; do
  [ -f "$dir/package.json" ] || continue
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$dir/node_modules"
  fi
done
