#!/usr/bin/env bash
# Three streamgate nodes and one redis-server on this machine, for trying out scale-out:
# an event published to any node reaches clients of every node, and a client can resume on
# another node. Everything listens on 127.0.0.1 and lives in a temporary directory that is
# removed on exit (Ctrl-C stops it all).
#
#   examples/cluster/run.sh [path/to/streamgate]
#
# Environment: REDIS_PORT (6390), BASE_PORT (4001: nodes on 4001, 4002, 4003),
# STREAMGATE_BIN (default: build/streamgate, else streamgate from PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${STREAMGATE_BIN:-}}"
if [ -z "$bin" ]; then
  if [ -x "$root/build/streamgate" ]; then bin="$root/build/streamgate"; else bin="$(command -v streamgate || true)"; fi
fi
[ -x "$bin" ] || { echo "streamgate binary not found; build it (ninja -C build streamgate) or pass its path" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl not found (used to mint a sample token)" >&2; exit 1; }

redis_port="${REDIS_PORT:-6390}"
base_port="${BASE_PORT:-4001}"
work="$(mktemp -d -t streamgate-cluster-XXXXXX)"
pids=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A redis-server restarted by hand (daemonized) is not among the pids.
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# One secret and one API key shared by the nodes: a token or key works on any of them.
secret="$(openssl rand -hex 32)"
api_key="$(openssl rand -hex 16)"

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --save '' \
  --daemonize no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start; see $work/redis.log" >&2; exit 1; }

for i in 0 1 2; do
  port=$((base_port + i))
  "$bin" --listen "127.0.0.1:$port" --broker "redis://127.0.0.1:$redis_port" \
    --jwt-secret "$secret" --api-key "$api_key" 2>"$work/node$i.log" &
  pids+=($!)
done
for i in 0 1 2; do
  port=$((base_port + i))
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] ||
    { echo "node $i on port $port is not ready; see $work/node$i.log" >&2; exit 1; }
done

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
exp=$(( $(date +%s) + 86400 ))
header="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)"
payload="$(printf '{"sub":"demo-user","org_id":456,"exp":%s}' "$exp" | b64url)"
signature="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)"
token="$header.$payload.$signature"

cat <<INFO

redis-server on 127.0.0.1:$redis_port; streamgate nodes on ports $base_port, $((base_port + 1)), $((base_port + 2)).
Logs: $work/node{0,1,2}.log and $work/redis.log (removed on exit).

Subscribe on node 2 (org 456, user demo-user, 24 h token):
  npx --yes wscat -c 'ws://127.0.0.1:$((base_port + 1))/v2/realtime/stream?access_token=$token'
    > {"services":["finance"],"version":1}

Publish through node 1; the event reaches every node's clients:
  curl -s -H 'Authorization: Bearer $api_key' \\
    -d '{"orgId":456,"service":"finance","event":"invoice.paid","data":{"amount":42}}' \\
    http://127.0.0.1:$base_port/v2/realtime/publish

Each node's own pool (one Redis subscription per org and service it has clients for):
  curl -s -H 'Authorization: Bearer $api_key' http://127.0.0.1:$((base_port + 2))/v2/realtime/metrics

Faults to try:
  kill -9 <a node pid>                 # its clients resume on another node, nothing lost
  redis-cli -p $redis_port shutdown      # /readyz and publish → 503; WebSockets stay open
  redis-server --port $redis_port --bind 127.0.0.1 --dir $work --appendonly yes --save '' --daemonize yes --logfile $work/redis.log
                                       # back: nodes redial, resubscribe and catch up

Node pids: ${pids[*]:1}   redis-server pid: ${pids[0]}
Ctrl-C stops everything.
INFO

# Until Ctrl-C or SIGTERM; redis-server or a node exiting (a fault being tried) doesn't end the
# demo. `wait` on a background sleep, so the trap runs at once rather than after the sleep.
while true; do
  sleep 3600 &
  pids+=($!)
  wait $! || true
done
