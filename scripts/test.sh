#!/usr/bin/env bash
# Runs every test: installs what is missing, builds Release with warnings as errors (the build a
# packager makes), runs the unit, integration and package tests on it, then the suites again under
# AddressSanitizer + UndefinedBehaviorSanitizer in a second build directory, then each libFuzzer
# target for a bounded time. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
./scripts/install-deps.sh
./scripts/install-node-deps.sh

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Release (-O3, no debug info) is both the build CI must prove warning-free and the cheapest of the
# three to compile and link; the package test (ctest "package", as root) builds the .deb from it.
echo "== build (Release, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
echo "== tests (unit, integration, package)"
ctest --test-dir build --output-on-failure -j1

if [ -x clients/js/test.sh ]; then
  echo "== browser client (unit tests, then headless Chromium against the real binary)"
  STREAMGATE_BIN="$PWD/build/streamgate" ./clients/js/test.sh
fi

echo "== build (ASan + UBSan)"
# -g1: line tables, enough for sanitizer stack traces, without the full debug info that made the
# ASan objects twice as large and their compiles up to a third slower. -O1, as the sanitizers'
# documentation suggests: it finds the same errors, and GCC spends far less on inlining the
# instrumented Asio/Beast handlers (net/http_session.cpp: 55 CPU-s instead of 98 at -O2).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTREAMGATE_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" >/dev/null
ninja -C build-asan -j"$jobs"
echo "== tests under ASan + UBSan"
ctest --test-dir build-asan --output-on-failure -j1

echo "== fuzz (libFuzzer, ${STREAMGATE_FUZZ_SECONDS:-20}s per target)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTREAMGATE_FUZZ=ON -DBUILD_TESTING=OFF \
  -DSTREAMGATE_FUZZ_SECONDS="${STREAMGATE_FUZZ_SECONDS:-20}" >/dev/null
ninja -C build-fuzz -j"$jobs" fuzzers
# A libFuzzer run is one thread: one target per core gives each its full time, in half the wall.
ctest --test-dir build-fuzz --output-on-failure -j"$jobs"
