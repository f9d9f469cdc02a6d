#!/usr/bin/env bash
# Runs the benchmark of docs/benchmarks.md: streamgate, a Node.js `ws` server and nats-server's
# WebSocket listener, each pinned to CPU 0 and driven by streamgate-bench on CPU 1, through the
# scenarios idle (memory, connects/s), fanout (capacity, batched and one event per request),
# publish (the publish API's requests/s), latency, tenants and churn, then the
# seed's artillery scenario against streamgate. Writes raw JSON lines to bench/results/<time>/,
# the plots to docs/bench-*.png and the results block of docs/benchmarks.md.
#
#   bench/run.sh [--quick] [--no-peers] [--no-artillery] [--no-doc]
#
# Safe on a fresh Debian 12 machine (installs its Debian and npm packages itself); talks only to
# 127.0.0.0/8. A full run takes about 10 minutes, --quick about 5.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0 peers=1 artillery=1 doc=1
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --no-peers) peers=0 ;;
    --no-artillery) artillery=0 ;;
    --no-doc) doc=0 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/lib.sh
source bench/lib.sh

# ---- dependencies ----
say "dependencies"
./scripts/install-deps.sh
need=()
for p in nats-server gnuplot-nox jq util-linux procps; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# npm ci writes node_modules/.package-lock.json last: an empty or half-written node_modules
# (an install cut short) has none, and is installed again.
if [ ! -f bench/node_modules/.package-lock.json ] ||
  [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  # bench/.npmrc sets ignore-scripts: no install script (playwright's browser download) runs.
  (cd bench && npm ci --loglevel=error)
  touch bench/node_modules/.package-lock.json
fi

bench_build

out=$root/bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
all=$out/all.jsonl
: >"$all"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

if [ $quick = 1 ]; then
  idle_sizes="1000 5000"; fan_sizes="1000 5000"; dur=3; lat_dur=5; churn_dur=4; tenants_conns=2000
else
  idle_sizes="1000 5000 10000 19000"; fan_sizes="1000 5000 10000"; dur=5; lat_dur=10; churn_dur=8; tenants_conns=10000
fi
servers="streamgate"
[ $peers = 1 ] && servers="streamgate node-ws nats"

# ---- servers ----
spid="" port="" pubport=""
wait_listening() {  # log file → port
  local log=$1 p=""
  for _ in $(seq 1 200); do
    p=$(grep -m1 '"message":"listening"' "$log" 2>/dev/null | sed -n 's/.*"port":\([0-9]*\).*/\1/p' || true)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05
  done
  echo "run.sh: server never said listening:" >&2; cat "$log" >&2; return 1
}
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "run.sh: nothing listens on port $1" >&2; return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo $((20000 + RANDOM % 20000)); }
start_server() {  # peer
  local log=$out/server-$1-$(date +%s%N).log
  case $1 in
    streamgate)
      # warn: per-connection info lines would cost the server time in every connect; so the
      # "listening" line is not printed either, and the port is chosen here.
      port=$(free_port); pubport=$port
      "${srv[@]}" "$sg_bin" --listen "127.0.0.1:$port" --jwt-secret "$secret" --api-key "$key" \
        --log-level warn --workers 1 --drain-period 0 2>"$log" &
      spid=$!; wait_port "$port" ;;
    node-ws)
      "${srv[@]}" node "$root/bench/peers/node-ws-server.mjs" --port 0 --secret "$secret" \
        --api-key "$key" 2>"$log" &
      spid=$!; port=$(wait_listening "$log"); pubport=$port ;;
    nats)
      pubport=$(free_port); port=$(free_port)
      printf 'listen: "127.0.0.1:%s"\nwebsocket { listen: "127.0.0.1:%s", no_tls: true }\n' \
        "$pubport" "$port" >"$out/nats.conf"
      "${srv[@]}" nats-server -c "$out/nats.conf" 2>"$log" &
      spid=$!; wait_port "$port" ;;
  esac
  sleep 0.3
}
stop_server() {
  [ -n "$spid" ] || return 0
  kill "$spid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  spid=""
}
gen_pids=()
cleanup() {
  for p in "${gen_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_server
}
trap cleanup EXIT

bench() {  # peer label scenario args… — one generator, its JSON lines appended to all.jsonl
  local peer=$1 label=$2; shift 2
  local log=$out/$label-$peer.log
  "${gen[@]}" "$gen_bin" "$@" --peer "$peer" --port "$port" --publish-port "$pubport" \
    --secret "$secret" --api-key "$key" --server-pid "$spid" --label "$label" | tee "$log" |
    grep -v '^{"bench"' || true
  grep '^{"bench"' "$log" >>"$all" || true
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# idle: N connections over P generator processes (each under the 20,000-descriptor cap), held
# open while the server's RSS is read; one combined JSON line.
idle_run() {  # peer N
  local peer=$1 n=$2 procs=1 k
  [ "$n" -gt 10000 ] && procs=2
  start_server "$peer"
  local before; before=$(rss_kib "$spid")
  gen_pids=()
  for k in $(seq 0 $((procs - 1))); do
    "${gen[@]}" "$gen_bin" idle --connections $((n / procs)) --proc-index "$k" \
      --org-base $((1000 + k * n)) --hold 600 --peer "$peer" --port "$port" \
      --publish-port "$pubport" --secret "$secret" --api-key "$key" --label "idle-$n" \
      >"$out/idle-$n-$peer-$k.log" &
    gen_pids+=($!)
  done
  local deadline=$((SECONDS + 180)) done=0
  while [ $SECONDS -lt $deadline ]; do
    done=0
    for k in $(seq 0 $((procs - 1))); do grep -q '^{"bench"' "$out/idle-$n-$peer-$k.log" && done=$((done + 1)); done
    [ $done -eq $procs ] && break
    sleep 0.5
  done
  sleep 2
  local after; after=$(rss_kib "$spid")
  local metrics='{}'
  if [ "$peer" = streamgate ]; then
    metrics=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v2/realtime/metrics" || echo '{}')
  fi
  for p in "${gen_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  gen_pids=()
  cat "$out"/idle-"$n"-"$peer"-*.log | grep '^{"bench"' >"$out/idle-$n-$peer.jsonl" || true
  jq -s -c --arg peer "$peer" --argjson n "$n" --argjson before "$before" --argjson after "$after" \
    --argjson m "$metrics" '{bench: "idle-combined", peer: $peer, connections: $n, procs: length,
      acked: (map(.acked) | add), failed: (map(.connect_failed + .http_rejected) | add),
      connects_per_s: ((map(.acked) | add) / (((map(.phase_start_ns + .connect_seconds * 1e9) | max) - (map(.phase_start_ns) | min)) / 1e9)),
      rss_before_kib: $before, rss_after_kib: $after,
      rss_per_conn_bytes: ((($after - $before) * 1024) / ([(map(.acked) | add), 1] | max)),
      active_connections: ($m.activeConnections // null),
      subscriptions: ($m.connectionPoolStats.totalSubscriptions // null)}' \
    "$out/idle-$n-$peer.jsonl" | tee -a "$all"
  stop_server
}

# ---- scenarios ----
for s in $servers; do
  say "$s: idle (RSS per connection, connects/s) at $idle_sizes connections"
  for n in $idle_sizes; do idle_run "$s" "$n"; done

  say "$s: fan-out capacity (one channel; steps of offered deliveries/s until one fails)"
  for n in $fan_sizes; do
    rates=$(for d in 100000 250000 500000 1000000 1500000; do awk -v d=$d -v n=$n 'BEGIN{printf "%g,", d/n}'; done)
    start_server "$s"
    bench "$s" "fanout-$n" fanout --connections "$n" --rates "${rates%,}" --batch 100 \
      --duration "$dur" --warmup 1 --drain 5
    stop_server
  done

  # The way most producers publish: one event per request (nats: one PUB per event, each in its
  # own write). Same ramp of offered deliveries/s, on the largest size.
  n=${fan_sizes##* }
  say "$s: fan-out capacity at $n subscribers, one event per publish request"
  rates=$(for d in 100000 200000 300000 500000 750000 1000000 1500000; do awk -v d=$d -v n=$n 'BEGIN{printf "%g,", d/n}'; done)
  start_server "$s"
  bench "$s" "fanout1-$n" fanout --connections "$n" --rates "${rates%,}" --batch 1 \
    --duration "$dur" --warmup 1 --drain 5
  stop_server

  if [ "$s" != nats ]; then
    say "$s: publish API (64 keep-alive producers, one event per request; 0 and 100 subscribers)"
    for subs in 0 100; do
      start_server "$s"
      bench "$s" "publish-$subs" publish --producers 64 --connections "$subs" --duration "$dur" \
        --warmup 1 --drain 5
      stop_server
    done
  fi

  say "$s: latency (1,000 subscribers, 20 and 100 events/s, one event per publish)"
  start_server "$s"
  bench "$s" latency fanout --connections 1000 --rates 20,100 --batch 1 --duration "$lat_dur" \
    --warmup 1 --drain 5
  stop_server

  say "$s: tenants (orgs x 10 services x 10 users)"
  start_server "$s"
  bench "$s" tenants tenants --connections "$tenants_conns" --rates 2000,10000 --duration "$dur" \
    --warmup 1 --drain 5
  stop_server

  say "$s: churn (64 clients: connect, resume, ack, close)"
  start_server "$s"
  bench "$s" churn churn --concurrency 64 --duration "$churn_dur"
  stop_server
done

art_result="not run"
if [ $artillery = 1 ]; then
  say "artillery: bench/load-test.yml against streamgate"
  start_server streamgate
  art_log=$out/artillery.log
  (cd bench && STREAMGATE_JWT_SECRET=$secret NODE_OPTIONS="-r $root/bench/telemetry-off.cjs" \
    timeout 180 npx --no-install artillery run -t "ws://127.0.0.1:$port" load-test.yml) >"$art_log" 2>&1 &
  art_pid=$!
  peak_conn=0 subs_at_peak=-1
  while kill -0 "$art_pid" 2>/dev/null; do
    m=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v2/realtime/metrics" || echo '{}')
    c=$(echo "$m" | jq '.activeConnections // 0')
    if [ "$c" -ge "$peak_conn" ]; then
      peak_conn=$c; subs_at_peak=$(echo "$m" | jq '.connectionPoolStats.totalSubscriptions // -1')
    fi
    sleep 1
  done
  art_rc=0; wait "$art_pid" || art_rc=$?
  sleep 1
  subs_after=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v2/realtime/metrics" |
    jq '.connectionPoolStats.totalSubscriptions')
  stop_server
  blocked=$(grep -c 'telemetry-off: blocked' "$art_log" || true)
  vusers_failed=$(grep -m1 'vusers.failed' "$art_log" | grep -o '[0-9]*$' || echo '?')
  jq -n -c --argjson peak "$peak_conn" --argjson subs "$subs_at_peak" --argjson after "${subs_after:-null}" \
    --argjson rc "$art_rc" --argjson blocked "$blocked" --arg failed "$vusers_failed" \
    '{bench: "artillery", peak_connections: $peak, subscriptions_at_peak: $subs, subscriptions_after: $after,
      exit_code: $rc, blocked_outside_connects: $blocked, vusers_failed: $failed}' | tee -a "$all"
  if [ "$subs_at_peak" = 10 ] && [ "$subs_after" = 0 ] && [ "$art_rc" = 0 ]; then
    art_result="passed: $peak_conn connections at peak, totalSubscriptions 10 while connected, 0 after"
  else
    art_result="FAILED: peak $peak_conn connections, totalSubscriptions $subs_at_peak at peak, $subs_after after, exit $art_rc"
  fi
  echo "artillery: $art_result"
fi

say "results in $out"
if [ $doc = 1 ]; then
  versions=$(printf '%s; node %s, ws %s; %s; artillery %s; %s; %s' \
    "$("$sg_bin" --version 2>/dev/null | head -1)" "$(node --version)" \
    "$(node -p "require('$root/bench/node_modules/ws/package.json').version")" \
    "$(nats-server --version 2>/dev/null | head -1)" \
    "$(node -p "require('$root/bench/node_modules/artillery/package.json').version")" \
    "$(gcc --version | head -1)" "Boost 1.81")
  bash "$root/bench/report.sh" "$out" "$quick" "$sched" "$load_start" "$versions" "$art_result"
fi
