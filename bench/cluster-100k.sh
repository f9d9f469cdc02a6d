#!/usr/bin/env bash
# 100,000 idle, subscribed WebSocket connections across several streamgate nodes on this one
# machine, sharing a private redis-server as the broker. Every connection is a user of one org on
# one service, so an event published through node 0 must reach all of them through Redis. Records
# per-node RSS and connects/s, publishes a few events, checks that every connection got every
# one (zero loss, no duplicates), and tears everything down. Results: bench/results/cluster-<time>/.
#
#   bench/cluster-100k.sh [--nodes 6] [--connections 100000] [--events 5] [--gap 1] [--no-build]
#                         [--broker URL]
#
# --broker: use this broker (e.g. a Redis Cluster, redis-cluster://127.0.0.1:7000) instead of a
# private redis-server; bench/redis-cluster.mjs starts a private one on loopback.
# --gap: seconds between the published events; one event to 100,000 sockets takes about a
# second of the nodes' one shared core (one sendmsg per socket), so a shorter gap queues them.
#
# Each process here may hold 20,000 descriptors (ulimit -Hn, not raisable), so each node gets
# connections/nodes (~16,700) and one generator process of its own. Nodes run on CPU 0, the
# generators on CPU 1, as in bench/run.sh. Talks only to 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

nodes=6 conns=100000 events=5 gap=1 build=1 broker=""
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes=$2; shift ;;
    --connections) conns=$2; shift ;;
    --events) events=$2; shift ;;
    --gap) gap=$2; shift ;;
    --no-build) build=0 ;;
    --broker) broker=$2; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "cluster-100k.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
per_node=$(( (conns + nodes - 1) / nodes ))
if [ "$per_node" -ge 19500 ]; then
  echo "cluster-100k.sh: $per_node connections per node is over the 20,000-descriptor cap; add nodes" >&2
  exit 2
fi
for tool in redis-server jq curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "cluster-100k.sh: needs $tool (scripts/install-deps.sh)" >&2; exit 2; }
done

# shellcheck source=bench/lib.sh
source bench/lib.sh

if [ $build = 1 ]; then bench_build; fi

out=$root/bench/results/cluster-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
org=7000
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "cluster-100k.sh: nothing listens on port $1" >&2; return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
metrics() { curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$1/v2/realtime/metrics" || echo '{}'; }

redis_pid="" redis_dir=""
node_pids=() node_ports=() gen_pids=()
cleanup() {
  for p in "${gen_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${gen_pids[@]}" "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  [ -n "$redis_dir" ] && rm -rf "$redis_dir"
  return 0
}
trap cleanup EXIT

if [ -z "$broker" ]; then
  say "redis-server (private, no persistence)"
  redis_dir=$(mktemp -d /tmp/sg-cluster-redis.XXXXXX)
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' --appendonly no \
    --protected-mode no --daemonize no --logfile "$redis_dir/redis.log" &
  redis_pid=$!
  wait_port "$redis_port"
  broker=redis://127.0.0.1:$redis_port
fi

say "$nodes streamgate nodes with --broker $broker"
for k in $(seq 0 $((nodes - 1))); do
  port=$(free_port)
  "${srv[@]}" "$sg_bin" --listen "127.0.0.1:$port" --broker "$broker" \
    --jwt-secret "$secret" --api-key "$key" --log-level warn --workers 1 --drain-period 0 2>"$out/node-$k.log" &
  node_pids+=($!) node_ports+=("$port")
done
for port in "${node_ports[@]}"; do wait_port "$port"; done
sleep 0.5
rss_before=()
for p in "${node_pids[@]}"; do rss_before+=("$(rss_kib "$p")"); done

say "$conns connections: one generator per node, $per_node each, all users of org $org on service s0"
left=$conns
for k in $(seq 0 $((nodes - 1))); do
  n=$(( left < per_node ? left : per_node )); left=$((left - n))
  # --users-per-org above the total puts every connection in one org; --proc-index keeps the
  # users (bench-<k>-<i>) and the source addresses of the generators apart.
  "${gen[@]}" "$gen_bin" idle --connections "$n" --proc-index "$k" --org-base "$org" \
    --users-per-org 1000000 --hold 900 --expect-events "$events" --port "${node_ports[$k]}" \
    --server-pid "${node_pids[$k]}" --secret "$secret" --api-key "$key" --label "cluster-node-$k" \
    >"$out/gen-$k.log" 2>&1 &
  gen_pids+=($!)
done
deadline=$((SECONDS + 600))
while :; do
  ready=0
  for k in $(seq 0 $((nodes - 1))); do
    grep -q '^{"bench":"streamgate-bench"' "$out/gen-$k.log" && ready=$((ready + 1))
  done
  [ $ready -eq "$nodes" ] && break
  if [ $SECONDS -ge $deadline ]; then echo "cluster-100k.sh: connect phase timed out" >&2; exit 1; fi
  sleep 1
done
sleep 2
rss_after=() node_metrics=()
for k in $(seq 0 $((nodes - 1))); do
  rss_after+=("$(rss_kib "${node_pids[$k]}")")
  node_metrics+=("$(metrics "${node_ports[$k]}")")
done

say "publish $events events through node 0 (port ${node_ports[0]})"
for i in $(seq 1 "$events"); do
  # data.t is CLOCK_MONOTONIC ns, the generators' clock, so they can measure latency.
  t=$(python3 -c 'import time; print(time.monotonic_ns())')
  body=$(printf '{"orgId":%s,"service":"s0","event":"cluster.check","data":{"t":%s,"c":%s,"i":%s}}' \
    "$org" "$t" "$i" "$i")
  curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "$body" "http://127.0.0.1:${node_ports[0]}/v2/realtime/publish" >>"$out/publish.log"
  echo >>"$out/publish.log"
  sleep "$gap"
done

deadline=$((SECONDS + 120))
while :; do
  done_n=0
  for k in $(seq 0 $((nodes - 1))); do
    grep -q '^{"bench":"streamgate-bench-delivery"' "$out/gen-$k.log" && done_n=$((done_n + 1))
  done
  [ $done_n -eq "$nodes" ] && break
  if [ $SECONDS -ge $deadline ]; then
    echo "cluster-100k.sh: not every connection got every event within 120 s; stopping the generators" >&2
    for p in "${gen_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 2
    break
  fi
  sleep 0.5
done
for p in "${gen_pids[@]}"; do wait "$p" 2>/dev/null || true; done
gen_pids=()

# One JSON line per node, then the summary.
: >"$out/nodes.jsonl"
for k in $(seq 0 $((nodes - 1))); do
  idle=$(grep -m1 '^{"bench":"streamgate-bench"' "$out/gen-$k.log")
  delivery=$(grep -m1 '^{"bench":"streamgate-bench-delivery"' "$out/gen-$k.log" || echo '{}')
  jq -n -c --argjson node "$k" --argjson idle "$idle" --argjson d "$delivery" \
    --argjson before "${rss_before[$k]}" --argjson after "${rss_after[$k]}" --argjson m "${node_metrics[$k]}" \
    '{node: $node, connections: $idle.acked, failed: ($idle.connect_failed + $idle.http_rejected),
      connects_per_s: $idle.connects_per_s, phase_start_ns: $idle.phase_start_ns,
      connect_seconds: $idle.connect_seconds, rss_before_kib: $before, rss_after_kib: $after,
      rss_per_conn_bytes: ((($after - $before) * 1024) / ([$idle.acked, 1] | max)),
      active_connections: ($m.activeConnections // null),
      subscriptions: ($m.connectionPoolStats.totalSubscriptions // null),
      complete: ($d.complete // 0), delivered: ($d.delivered // 0), expected: ($d.expected // null),
      lost: ($d.lost // null), duplicates: ($d.duplicates // null), seq_gaps: ($d.seq_gaps // null),
      p50_ms: ($d.p50_ms // null), p99_ms: ($d.p99_ms // null), max_ms: ($d.max_ms // null)}' \
    >>"$out/nodes.jsonl"
done
published=$(grep -c '"id"' "$out/publish.log" || true)
jq -s -c --argjson nodes "$nodes" --argjson conns "$conns" --argjson events "$events" \
  --argjson published "$published" --arg sched "$sched" --arg load "$load_start" \
  --arg broker "$broker" \
  '{bench: "cluster", broker: $broker, nodes: $nodes, target: $conns, connections: (map(.connections) | add),
    failed: (map(.failed) | add), events: $events, published: $published,
    complete: (map(.complete) | add), delivered: (map(.delivered) | add),
    expected: ((map(.connections) | add) * $events),
    lost: (((map(.connections) | add) * $events) - (map(.delivered) | add)),
    duplicates: (map(.duplicates // 0) | add), seq_gaps: (map(.seq_gaps // 0) | add),
    p99_ms_max: (map(.p99_ms // 0) | max), max_ms: (map(.max_ms // 0) | max),
    connects_per_s: ((map(.connections) | add) /
      (((map(.phase_start_ns + .connect_seconds * 1e9) | max) - (map(.phase_start_ns) | min)) / 1e9)),
    rss_total_mib: ((map(.rss_after_kib) | add) / 1024),
    rss_per_conn_bytes: (((map(.rss_after_kib - .rss_before_kib) | add) * 1024) / (map(.connections) | add)),
    scheduling: $sched, load_start: $load}' "$out/nodes.jsonl" | tee "$out/summary.json"

say "per node"
printf '| node | connections | connects/s | RSS after | per connection | subscriptions | got all %s events | lost | p99 ms |\n' "$events"
printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
jq -r '"| \(.node) | \(.connections) | \(.connects_per_s | floor) | \(.rss_after_kib / 1024 * 10 | floor / 10) MiB | \(.rss_per_conn_bytes | floor) B | \(.subscriptions) | \(.complete) | \(.lost) | \(.p99_ms) |"' \
  "$out/nodes.jsonl"
echo "results in $out"

ok=$(jq -r --argjson conns "$conns" --argjson events "$events" \
  'if .connections == $conns and .complete == $conns and .lost == 0 and .duplicates == 0 and
      .seq_gaps == 0 and .published == $events then "yes" else "no" end' "$out/summary.json")
if [ "$ok" != yes ]; then
  echo "cluster-100k.sh: FAILED (see $out)" >&2
  exit 1
fi
echo "cluster-100k.sh: every one of $conns connections got all $events events"
