#!/usr/bin/env bash
# ctest's bench_smoke: starts the real server on a free port and runs streamgate-bench once per
# scenario at a tiny size with --strict (every connection acked, nothing lost or duplicated).
# Speed is never asserted. Usage: smoke.sh <streamgate> <streamgate-bench>
set -euo pipefail
server_bin=$1
bench_bin=$2
secret=smoke-secret-0123456789abcdef0123456789
key=smoke-key
log=$(mktemp)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

"$server_bin" --listen 127.0.0.1:0 --jwt-secret "$secret" --api-key "$key" --log-level info \
  --workers 1 2>"$log" &
server_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(grep -m1 '"message":"listening"' "$log" | sed -n 's/.*"port":\([0-9]*\).*/\1/p' || true)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log"; echo "smoke: server exited"; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { cat "$log"; echo "smoke: server never said listening"; exit 1; }

common=(--port "$port" --secret "$secret" --api-key "$key" --server-pid "$server_pid" --strict)
run() {
  echo "== streamgate-bench $*"
  "$bench_bin" "$@" "${common[@]}"
}
run idle --connections 20 --settle 0.2
run fanout --connections 20 --rate 200 --batch 10 --duration 1 --warmup 0.2 --drain 5
run tenants --connections 40 --users-per-org 4 --services 3 --rate 300 --duration 1 --warmup 0.2
run churn --concurrency 4 --duration 0.5

# idle --expect-events, as bench/cluster-100k.sh uses it: the generator holds its connections
# until each has the events this script publishes, and fails (--strict) unless all got all.
echo "== streamgate-bench idle --expect-events 2 (events published by this script)"
gen_log=$(mktemp)
"$bench_bin" idle --connections 10 --org-base 4242 --users-per-org 100 --hold 20 \
  --expect-events 2 --label smoke-expect "${common[@]}" >"$gen_log" &
gen_pid=$!
for _ in $(seq 1 200); do grep -q '^{"bench":"streamgate-bench"' "$gen_log" && break; sleep 0.05; done
for c in 1 2; do
  curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"orgId":4242,"service":"s0","event":"smoke","data":{"t":1,"c":'"$c"'}}' \
    "http://127.0.0.1:$port/v2/realtime/publish" >/dev/null
done
gen_rc=0
wait "$gen_pid" || gen_rc=$?
cat "$gen_log"
grep -q '^{"bench":"streamgate-bench-delivery".*"complete":10,' "$gen_log" || gen_rc=1
rm -f "$gen_log"
[ "$gen_rc" = 0 ] || { echo "smoke: idle --expect-events failed"; exit 1; }
echo "smoke: 5 passed, 0 failed"
