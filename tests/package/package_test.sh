#!/usr/bin/env bash
# The Debian package end to end: builds it from BUILD_DIR (`--target package`), installs it with
# dpkg, runs the installed binary with the installed configuration as the service user, verifies
# the installed systemd unit, then removes and purges it, checking that the machine is left as it
# was. Needs root and a Debian system with no streamgate package, user or /etc/streamgate of its
# own (CI: a fresh Debian 12, as root); anywhere else it exits 77, which ctest reports as skipped.
set -euo pipefail

build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
command -v dpkg >/dev/null && command -v systemd-analyze >/dev/null ||
  skip "needs dpkg and systemd-analyze (scripts/install-deps.sh)"
if dpkg-query -W -f='${Status}' streamgate 2>/dev/null | grep -q "ok installed"; then
  skip "a streamgate package is already installed here; leaving it alone"
fi
if getent passwd streamgate >/dev/null || getent group streamgate >/dev/null || [ -e /etc/streamgate ]; then
  skip "this machine already has a streamgate user, group or /etc/streamgate; leaving them alone"
fi

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
version=$(cache_value CMAKE_PROJECT_VERSION)
source_dir=$(cache_value CMAKE_HOME_DIRECTORY)
[ -n "$version" ] || fail "no project version in $build/CMakeCache.txt"

echo "== cmake --build $build --target package"
rm -f "$build"/streamgate_*.deb
cmake --build "$build" --target package >"$build/package_test.log" 2>&1 ||
  { tail -n 40 "$build/package_test.log"; fail "building the package failed"; }
deb="$build/streamgate_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || fail "expected $deb; the build made: $(ls "$build"/*.deb 2>/dev/null)"

purge() { dpkg --purge streamgate >/dev/null 2>&1 || true; }
trap purge EXIT

echo "== dpkg -i $(basename "$deb")"
dpkg -i "$deb"
for f in /usr/bin/streamgate /usr/lib/systemd/system/streamgate.service \
  /etc/streamgate/streamgate.toml /usr/share/doc/streamgate/README.md \
  /usr/share/doc/streamgate/LICENSE /usr/share/doc/streamgate/configuration.md; do
  [ -e "$f" ] || fail "$f is not installed"
done
dpkg-query -W -f='${Conffiles}\n' streamgate | grep -q "^ /etc/streamgate/streamgate.toml " ||
  fail "/etc/streamgate/streamgate.toml is not a conffile"
getent passwd streamgate >/dev/null || fail "postinst did not create the streamgate user"
perms=$(stat -c '%a %U %G' /etc/streamgate/streamgate.toml)
[ "$perms" = "640 root streamgate" ] || fail "streamgate.toml is '$perms', expected '640 root streamgate'"

echo "== /usr/bin/streamgate --version"
got=$(/usr/bin/streamgate --version)
echo "$got"
expected="streamgate $version"
if commit=$(git -C "$source_dir" rev-parse --short=12 HEAD 2>/dev/null); then
  expected="$expected (commit $commit)"
fi
[ "$got" = "$expected" ] || fail "--version printed '$got', expected '$expected'"

echo "== streamgate --config /etc/streamgate/streamgate.toml --print-config (as the service user)"
# The shipped file leaves the token key and API key to the operator; the environment supplies
# them here, which also shows that --print-config redacts them.
secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
key="package-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printed=$(runuser -u streamgate -- env STREAMGATE_JWT_SECRET="$secret" STREAMGATE_API_KEY="$key" \
  /usr/bin/streamgate --config /etc/streamgate/streamgate.toml --print-config) ||
  fail "--print-config failed with the installed configuration"
echo "$printed"
grep -qx 'listen = "0.0.0.0:4000"' <<<"$printed" || fail "--print-config lacks the file's listen"
grep -qx 'upload-dir = "/var/lib/streamgate/uploads"' <<<"$printed" ||
  fail "--print-config lacks the file's upload-dir"
if grep -qe "$secret" -e "$key" <<<"$printed"; then fail "--print-config printed a secret"; fi

echo "== systemd-analyze verify"
verify=$(systemd-analyze verify /usr/lib/systemd/system/streamgate.service 2>&1) ||
  fail "systemd-analyze verify failed: $verify"
# verify also reports problems it does not fail on; this unit has none.
[ -z "$(grep streamgate.service <<<"$verify")" ] || fail "systemd-analyze verify: $verify"

echo "== dpkg -r, then dpkg --purge"
dpkg -r streamgate
[ ! -e /usr/bin/streamgate ] || fail "dpkg -r left /usr/bin/streamgate"
[ -e /etc/streamgate/streamgate.toml ] || fail "dpkg -r removed the conffile (only purge may)"
dpkg --purge streamgate
trap - EXIT
status=$(dpkg-query -W -f='${Status}' streamgate 2>/dev/null || true)
case "$status" in
  "" | *not-installed) ;;
  *) fail "dpkg still has streamgate after purge: $status" ;;
esac
[ ! -e /etc/streamgate ] || fail "purge left /etc/streamgate"
[ ! -e /var/lib/streamgate ] || fail "purge left /var/lib/streamgate"
! getent passwd streamgate >/dev/null || fail "purge left the streamgate user"
! getent group streamgate >/dev/null || fail "purge left the streamgate group"
echo "OK: package $(basename "$deb") installed, ran, verified and purged"
