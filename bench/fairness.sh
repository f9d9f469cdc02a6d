#!/usr/bin/env bash
# Fair fan-out across orgs (issue 18; docs/benchmarks.md, "Fair fan-out across orgs"): 20 small
# orgs (10 users each, one service) publish at a normal rate, one event per request, and their
# p99 latency is measured twice on the same server build: alone, then while tenant A publishes
# at 10 times an org's rate to a channel of A_MEMBERS subscribers. One worker, so A's burst and
# the small orgs' events share one thread; same pinning and priority as bench/run.sh, except
# that the small orgs' generator (the instrument) runs one real-time priority above A's.
#
#   bench/fairness.sh [A_MEMBERS=10000] [ORG_RATE=5] [DURATION=10] [BUILD_DIR]
#
# BUILD_DIR: take streamgate and streamgate-bench from an existing build (e.g. build) instead of
# building build-bench (Release). Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
a_members=${1:-10000}
org_rate=${2:-5}
duration=${3:-10}
build_dir=${4:-}
source bench/lib.sh
if [ -n "$build_dir" ]; then
  sg_bin=$PWD/$build_dir/streamgate
  gen_bin=$PWD/$build_dir/tools/bench/streamgate-bench
else
  bench_build >/dev/null
fi
secret=fairness-secret-0123456789abcdef0123; key=fairness-api-key-0123456789
orgs=20 users=10
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; }
spid="" apid=""
stop() {
  [ -z "$apid" ] || { kill "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; apid=""; }
  [ -z "$spid" ] || { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; spid=""; }
}
trap stop EXIT
start() {
  port=$(free_port)
  "${srv[@]}" "$sg_bin" --listen "127.0.0.1:$port" --jwt-secret "$secret" --api-key "$key" \
    --log-level warn --workers 1 --drain-period 0 \
    2>/dev/null &
  spid=$!; wait_port "$port"
}
gen_args=(--peer streamgate --secret "$secret" --api-key "$key")
# The small orgs' generator is the instrument and tenant A's generator is load on the same CPU:
# the instrument runs one priority above, so it reads an event when the event arrives rather than
# when A's generator (at SCHED_FIFO, which never yields to an equal priority) next blocks.
case "$sched" in
  SCHED_FIFO*) meter=(chrt -f 30 taskset -c 1) ;;
  nice*) meter=(nice -n -19 taskset -c 1) ;;
  *) meter=("${gen[@]}") ;;
esac
small_orgs() {  # label → "p50 p99 lost" of the 20 orgs' events
  "${meter[@]}" "$gen_bin" tenants --connections $((orgs * users)) --users-per-org $users \
    --services 1 --org-base 2000 --rate $((orgs * org_rate)) --batch 1 --duration "$duration" \
    --warmup 1 --drain 5 --port "$port" --server-pid "$spid" --label "$1" "${gen_args[@]}" |
    grep '^{"bench"' | jq -r '"\(.p50_ms) \(.p99_ms) \(.lost // 0)"'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); scheduling: $sched"
echo "$orgs orgs x $users users at $org_rate events/s each; tenant A: $a_members members at" \
  "$((10 * org_rate)) events/s; $duration s"

start
read -r p50 p99 lost < <(small_orgs without-a)
echo "without A: the 20 orgs' p50 $p50 ms, p99 $p99 ms, lost $lost"
stop

start
# Tenant A: connects its members, then publishes for longer than the small orgs' run, so the
# whole measured window has A's load in it.
"${gen[@]}" "$gen_bin" fanout --connections "$a_members" --org-base 1000 \
  --rate $((10 * org_rate)) --batch 1 --duration $((duration + 30)) --warmup 0 --drain 2 \
  --port "$port" --label tenant-a "${gen_args[@]}" >/tmp/fairness-a.$$ 2>&1 &
apid=$!
for _ in $(seq 1 600); do
  conns=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v2/realtime/metrics" |
    jq '.activeConnections // 0')
  [ "$conns" -ge "$a_members" ] && break
  sleep 0.1
done
sleep 2  # A's publishing starts once its members are connected
read -r p50 p99 lost < <(small_orgs with-a)
echo "with A:    the 20 orgs' p50 $p50 ms, p99 $p99 ms, lost $lost"
stop
grep '^{"bench"' /tmp/fairness-a.$$ | jq -r '"tenant A: \(.deliveries_per_s // "-") deliveries/s, p99 \(.p99_ms) ms, lost \(.lost // 0)"' || true
rm -f /tmp/fairness-a.$$
