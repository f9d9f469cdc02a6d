#!/usr/bin/env bash
# Installs every Debian package streamgate needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so re-running is cheap.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang clang-format libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev
  libssl-dev libcli11-dev libgtest-dev libhiredis-dev liburing-dev libtomlplusplus-dev
  redis-server nginx-light curl openssl
  systemd adduser  # the package test: systemd-analyze verify, and the package's postinst
)
# The machine image ships Node.js 20 with npm bundled; Debian's npm conflicts with it.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
