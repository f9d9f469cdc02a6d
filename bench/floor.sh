#!/usr/bin/env bash
# The kernel's floor on this machine, next to streamgate, alternating (docs/benchmarks.md, "The
# floor under issue 13's last two targets"):
#   - the publish API (64 keep-alive producers, one event per request, no subscribers) against
#     bench/floor/http_floor.cpp, an epoll server that answers every request with a fixed 200;
#   - the latency step (1,000 subscribers, one event per request, 20 and 100 events/s) against
#     bench/floor/fanout_floor.cpp, which only writes each event to 1,000 loopback sockets.
# Same pinning and priority as bench/run.sh. Usage: bench/floor.sh [rounds=2]. About 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${1:-2}
bench_build >/dev/null
mkdir -p build-bench/floor
for f in http_floor fanout_floor; do
  g++ -std=c++20 -O2 -Wall -Wextra -Wpedantic -Werror -o "build-bench/floor/$f" \
    "bench/floor/$f.cpp" -luring
done
secret=floor-secret-0123456789abcdef0123; key=floor-api-key-0123456789
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; }
spid=""
stop() { [ -z "$spid" ] || { kill "$spid"; wait "$spid" 2>/dev/null || true; spid=""; }; }
trap stop EXIT
start() {  # streamgate|http_floor
  port=$(free_port)
  if [ "$1" = streamgate ]; then
    "${srv[@]}" "$sg_bin" --listen "127.0.0.1:$port" --jwt-secret "$secret" --api-key "$key" \
      --log-level warn --workers 1 --drain-period 0 2>/dev/null &
  else
    "${srv[@]}" build-bench/floor/http_floor "$port" &
  fi
  spid=$!; wait_port "$port"
}
gen_run() {  # scenario args… → the JSON line's key figures
  "${gen[@]}" "$gen_bin" "$@" --peer streamgate --port "$port" --publish-port "$port" \
    --secret "$secret" --api-key "$key" --server-pid "$spid" |
    grep '^{"bench"' | jq -r '"requests/s \(.requests_per_s // .publish_requests_per_s // "-") p50 \(.p50_ms) p99 \(.p99_ms) ms, server CPU \(.server_cpu), lost \(.lost // 0)"'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); scheduling: $sched"
for r in $(seq 1 "$rounds"); do
  for s in streamgate http_floor; do
    start "$s"
    printf 'publish API, %-10s ' "$s:"
    gen_run publish --producers 64 --connections 0 --duration 5 --warmup 1 --drain 2
    stop
  done
  for rate in 20 100; do
    start streamgate
    printf 'latency %3s/s, streamgate: ' "$rate"
    gen_run fanout --connections 1000 --rates "$rate" --batch 1 --duration 10 --warmup 1 --drain 5
    stop
    printf 'latency %3s/s, floor:      ' "$rate"
    "${prio[@]}" build-bench/floor/fanout_floor 1000 "$rate" $((rate * 10)) uring | tr '\n' ' '
    echo
  done
done
