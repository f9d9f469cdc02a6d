#!/usr/bin/env bash
# Installs everything, builds streamgate, and runs it on 127.0.0.1:4000. With no arguments it
# starts in --dev mode: a generated secret and API key, and an `export TOKEN=… API_KEY=…` line
# with wscat and curl commands to paste into other terminals (README, "Try it in five minutes").
# Any arguments are passed to streamgate instead.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# Release, as scripts/test.sh builds it, so the two share the build directory.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build streamgate
if [ $# -eq 0 ]; then set -- --dev; fi
exec ./build/streamgate "$@"
