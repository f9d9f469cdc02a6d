#!/usr/bin/env bash
# Turns one bench/run.sh result folder into the plots docs/bench-*.png and the block between
# the results markers of docs/benchmarks.md (the rest of that page is written by hand).
#   bench/report.sh <results dir> <quick 0|1> <scheduling> <load average> <versions> <artillery>
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 quick=$2 sched=$3 load_start=$4 versions=$5 art_result=$6
all=$out/all.jsonl
doc=docs/benchmarks.md

# Passing fan-out step: nothing lost, no slow-consumer closes, p99 under a second.
pass='(.lost == 0 and .closed_by_server == 0 and .publish_errors == 0 and .p99_ms < 1000 and .acked == .connections)'

# ---- plot data ----
for peer in streamgate node-ws nats; do
  jq -r --arg p "$peer" 'select(.bench == "idle-combined" and .peer == $p) |
    "\(.connections) \((.rss_after_kib - .rss_before_kib) / 1024)"' "$all" >"$out/mem-$peer.dat"
  jq -r --arg p "$peer" 'select(.bench == "streamgate-bench" and .peer == $p and (.label | startswith("fanout-")) and .step == 0) |
    "\(.connections) \(.p50_ms) \(.p99_ms)"' "$all" >"$out/lat-$peer.dat"
  jq -r -s --arg p "$peer" "map(select(.bench == \"streamgate-bench\" and .peer == \$p and (.label | startswith(\"fanout-\")))) |
    group_by(.connections)[] | \"\\(.[0].connections) \\(map(select($pass)) | map(.deliveries_per_s) | max // 0)\"" \
    "$all" >"$out/tput-$peer.dat"
done

plot() {  # file title xlabel ylabel logscale-y series…
  local file=$1 title=$2 xl=$3 yl=$4 logy=$5; shift 5
  {
    echo "set terminal pngcairo size 800,480 noenhanced font 'sans,10'"
    echo "set output '$file'"
    echo "set title '$title'"; echo "set xlabel '$xl'"; echo "set ylabel '$yl'"
    echo "set grid"; echo "set key top left"
    [ "$logy" = 1 ] && echo "set logscale y"
    printf 'plot %s\n' "$(IFS=,; echo "$*")"
  } | gnuplot
}
s=$out
plot docs/bench-memory.png "Server RSS growth vs idle subscribed connections" "connections" "MiB" 0 \
  "'$s/mem-streamgate.dat' u 1:2 w lp lw 2 t 'streamgate'" "'$s/mem-node-ws.dat' u 1:2 w lp t 'node ws'" \
  "'$s/mem-nats.dat' u 1:2 w lp t 'nats-server'"
plot docs/bench-throughput.png "Fan-out: best deliveries/s with zero loss and p99 < 1 s (one server core)" \
  "subscribers on one channel" "deliveries/s" 0 \
  "'$s/tput-streamgate.dat' u 1:2 w lp lw 2 t 'streamgate'" "'$s/tput-node-ws.dat' u 1:2 w lp t 'node ws'" \
  "'$s/tput-nats.dat' u 1:2 w lp t 'nats-server'"
plot docs/bench-latency.png "Fan-out latency at 100,000 deliveries/s offered" "subscribers on one channel" "ms" 1 \
  "'$s/lat-streamgate.dat' u 1:3 w lp lw 2 t 'streamgate p99'" "'$s/lat-streamgate.dat' u 1:2 w lp lw 2 t 'streamgate p50'" \
  "'$s/lat-node-ws.dat' u 1:3 w lp t 'node ws p99'" "'$s/lat-node-ws.dat' u 1:2 w lp t 'node ws p50'" \
  "'$s/lat-nats.dat' u 1:3 w lp t 'nats p99'" "'$s/lat-nats.dat' u 1:2 w lp t 'nats p50'"

# ---- tables ----
num() { awk -v v="$1" -v d="${2:-0}" 'BEGIN{ if (v == "" || v == "null") print "–"; else printf "%\047.*f", d, v }'; }
q() { jq -r -s "$1" "$all"; }
block=$out/results.md
{
  echo "Run $(basename "$out") ($( [ "$quick" = 1 ] && echo "--quick" || echo "full" )): $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)."
  echo "Load average at the start: $load_start (other jobs share this machine). Scheduling: $sched;"
  echo "server on CPU 0, generators on CPU 1. Versions: $versions."
  echo "Source: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- src 2>/dev/null || echo ' with uncommitted changes under src/')."
  echo
  echo "### Memory and connects (idle, authenticated, subscribed connections)"
  echo
  echo "| server | connections | acked | RSS growth | per connection | connects/s |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  q '.[] | select(.bench == "idle-combined") | [.peer, .connections, .acked, ((.rss_after_kib - .rss_before_kib) / 1024), .rss_per_conn_bytes, .connects_per_s] | @tsv' |
    while IFS=$'\t' read -r p n a mib per cps; do
      echo "| $p | $(num "$n") | $(num "$a") | $(num "$mib" 1) MiB | $(num "$per") B | $(num "$cps") |"
    done
  echo
  echo "### Fan-out capacity (one channel, batches of up to 100 events per publish)"
  echo
  echo "Each row is one step of offered load; a server's run stops at its first failing step."
  echo
  echo "| server | subscribers | events/s | deliveries/s | lost | p50 ms | p99 ms | max ms | server CPU | generator CPU | pass |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  q ".[] | select(.bench == \"streamgate-bench\" and (.label | startswith(\"fanout-\"))) | [.peer, .connections, .rate, .deliveries_per_s, .lost, .p50_ms, .p99_ms, .max_ms, .server_cpu, .gen_cpu, (if $pass then \"yes\" else \"no\" end)] | @tsv" |
    while IFS=$'\t' read -r p n r d l p50 p99 mx sc gc ok; do
      echo "| $p | $(num "$n") | $(num "$r") | $(num "$d") | $(num "$l") | $(num "$p50" 1) | $(num "$p99" 1) | $(num "$mx" 1) | $(num "$(awk -v v="$sc" 'BEGIN{print v*100}')") % | $(num "$(awk -v v="$gc" 'BEGIN{print v*100}')") % | $ok |"
    done
  echo
  echo "### Fan-out capacity, one event per publish request (nats: one PUB per event)"
  echo
  echo "| server | subscribers | events/s | requests/s | deliveries/s | lost | p50 ms | p99 ms | max ms | server CPU | pass |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  q ".[] | select(.bench == \"streamgate-bench\" and (.label | startswith(\"fanout1-\"))) | [.peer, .connections, .rate, (.publish_requests / .duration), .deliveries_per_s, .lost, .p50_ms, .p99_ms, .max_ms, .server_cpu, (if $pass then \"yes\" else \"no\" end)] | @tsv" |
    while IFS=$'\t' read -r p n r rq d l p50 p99 mx sc ok; do
      echo "| $p | $(num "$n") | $(num "$r") | $(num "$rq") | $(num "$d") | $(num "$l") | $(num "$p50" 1) | $(num "$p99" 1) | $(num "$mx" 1) | $(num "$(awk -v v="$sc" 'BEGIN{print v*100}')") % | $ok |"
    done
  echo
  echo "### Publish API (64 keep-alive producers, one event per request, as fast as answered)"
  echo
  echo "| server | subscribers | requests/s | p50 ms | p99 ms | max ms | errors | lost | server CPU |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  q '.[] | select(.bench == "streamgate-bench" and .scenario == "publish") | [.peer, .connections, .requests_per_s, .p50_ms, .p99_ms, .max_ms, .publish_errors, .lost, .server_cpu] | @tsv' |
    while IFS=$'\t' read -r p n r a b m e l sc; do
      echo "| $p | $(num "$n") | $(num "$r") | $(num "$a" 2) | $(num "$b" 2) | $(num "$m" 1) | $(num "$e") | $(num "$l") | $(num "$(awk -v v="$sc" 'BEGIN{print v*100}')") % |"
    done
  echo
  echo "### Latency (1,000 subscribers, one event per publish request)"
  echo
  echo "| server | events/s | delivered | lost | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  q '.[] | select(.label == "latency") | [.peer, .rate, .delivered, .lost, .p50_ms, .p90_ms, .p99_ms, .p999_ms, .max_ms] | @tsv' |
    while IFS=$'\t' read -r p r d l a b c e m; do
      echo "| $p | $(num "$r") | $(num "$d") | $(num "$l") | $(num "$a" 2) | $(num "$b" 2) | $(num "$c" 2) | $(num "$e" 2) | $(num "$m" 2) |"
    done
  echo
  echo "### Tenants (orgs × 10 services × 10 users, events round robin over every channel)"
  echo
  echo "| server | connections | subscriptions (metrics) | events/s | deliveries/s | lost | p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  q '.[] | select(.label == "tenants") | [.peer, .acked, .subscriptions, .rate, .deliveries_per_s, .lost, .p99_ms] | @tsv' |
    while IFS=$'\t' read -r p a sub r d l c; do
      [ "$sub" = "-1" ] && sub=""
      echo "| $p | $(num "$a") | $(num "$sub") | $(num "$r") | $(num "$d") | $(num "$l") | $(num "$c" 1) |"
    done
  echo
  echo "### Churn (64 clients looping connect → handshake with resume → ack → close)"
  echo
  echo "| server | cycles/s | resumed acks | connect p50 ms | connect p99 ms | failed |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  q '.[] | select(.label == "churn") | [.peer, .cycles_per_s, .resumed, .connect_p50_ms, .connect_p99_ms, (.connect_failed + .http_rejected)] | @tsv' |
    while IFS=$'\t' read -r p c r a b f; do
      echo "| $p | $(num "$c") | $(num "$r") | $(num "$a" 2) | $(num "$b" 2) | $(num "$f") |"
    done
  echo
  echo "### Against the targets of issue 3"
  echo
  mem_sg=$(q 'map(select(.bench == "idle-combined" and .peer == "streamgate")) | max_by(.connections) | .rss_per_conn_bytes // empty')
  mem_peer=$(q 'map(select(.bench == "idle-combined" and .peer != "streamgate")) | group_by(.peer) | map(max_by(.connections)) | min_by(.rss_per_conn_bytes) | "\(.rss_per_conn_bytes) \(.peer)" // empty')
  conn_sg=$(q 'map(select(.bench == "idle-combined" and .peer == "streamgate")) | max_by(.connections) | .acked // empty')
  cps_sg=$(q 'map(select(.bench == "idle-combined" and .peer == "streamgate")) | map(.connects_per_s) | max // empty')
  cps_peer=$(q 'map(select(.bench == "idle-combined" and .peer != "streamgate")) | max_by(.connects_per_s) | "\(.connects_per_s) \(.peer)" // empty')
  fan_sg=$(q "map(select(.peer == \"streamgate\" and .label == \"fanout-10000\" and $pass)) | map(.deliveries_per_s) | max // empty")
  fan_peer=$(q "map(select(.peer != \"streamgate\" and .label == \"fanout-10000\" and $pass)) | max_by(.deliveries_per_s) | \"\\(.deliveries_per_s) \\(.peer)\" // empty")
  fan1_sg=$(q "map(select(.peer == \"streamgate\" and .label == \"fanout1-10000\" and $pass)) | map(.deliveries_per_s) | max // empty")
  fan1_peer=$(q "map(select(.peer != \"streamgate\" and .label == \"fanout1-10000\" and $pass)) | max_by(.deliveries_per_s) | \"\\(.deliveries_per_s) \\(.peer)\" // empty")
  pub_sg=$(q 'map(select(.peer == "streamgate" and .scenario == "publish" and .connections == 0)) | .[0] | "\(.requests_per_s) \(.p99_ms)" // empty')
  l20=$(q 'map(select(.peer == "streamgate" and .label == "latency" and .step == 0)) | .[0].p99_ms // empty')
  l100=$(q 'map(select(.peer == "streamgate" and .label == "latency" and .step == 1)) | .[0] | "\(.p99_ms) \(.lost)" // empty')
  l20p=$(q 'map(select(.peer != "streamgate" and .label == "latency" and .step == 0)) | min_by(.p99_ms) | "\(.p99_ms) \(.peer)" // empty')
  l100p=$(q 'map(select(.peer != "streamgate" and .label == "latency" and .step == 1 and .lost == 0)) | min_by(.p99_ms) | "\(.p99_ms) \(.peer)" // empty')
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "–"; else printf "%.1f×", a / b }'; }
  ok() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN{ if (v == "") print "not measured"; else if ((dir == "le" && v <= t) || (dir == "ge" && v >= t)) print "met"; else print "**missed**" }'; }
  echo "| target | streamgate | best peer | streamgate vs peer | status |"
  echo "| --- | ---: | ---: | ---: | --- |"
  echo "| idle connection ≤ 2 KiB RSS | $(num "$mem_sg") B | $(num "${mem_peer%% *}") B (${mem_peer##* }) | $(ratio "${mem_peer%% *}" "$mem_sg") less | $(ok "$mem_sg" 2048 le) |"
  echo "| 19,000 connections per process | $(num "$conn_sg") | | | $(ok "$conn_sg" 19000 ge) |"
  echo "| ≥ 10,000 connects/s | $(num "$cps_sg") | $(num "${cps_peer%% *}") (${cps_peer##* }) | $(ratio "$cps_sg" "${cps_peer%% *}") | $(ok "$cps_sg" 10000 ge) |"
  echo "| ≥ 1,000,000 deliveries/s at 10,000 subscribers | $(num "$fan_sg") | $(num "${fan_peer%% *}") (${fan_peer##* }) | $(ratio "$fan_sg" "${fan_peer%% *}") | $(ok "$fan_sg" 1000000 ge) |"
  echo "| ≥ 1,000,000 deliveries/s at 10,000 subscribers, one event per request | $(num "$fan1_sg") | $(num "${fan1_peer%% *}") (${fan1_peer##* }) | $(ratio "$fan1_sg" "${fan1_peer%% *}") | $(ok "$fan1_sg" 1000000 ge) |"
  echo "| publish API ≥ 100,000 requests/s (64 producers, no subscribers), p99 ≤ 5 ms | $(num "${pub_sg%% *}") /s, p99 $(num "${pub_sg##* }" 2) ms | | | $(ok "${pub_sg%% *}" 100000 ge) |"
  echo "| p99 ≤ 8 ms, 1,000 subscribers at 20 events/s | $(num "$l20" 2) ms | $(num "${l20p%% *}" 2) ms (${l20p##* }) | $(ratio "${l20p%% *}" "$l20") lower | $(ok "$l20" 8 le) |"
  echo "| p99 ≤ 15 ms and no loss, 1,000 subscribers at 100 events/s | $(num "${l100%% *}" 2) ms, lost $(num "${l100##* }") | $(num "${l100p%% *}" 2) ms (${l100p##* }) | $(ratio "${l100p%% *}" "${l100%% *}") lower | $(ok "${l100%% *}" 15 le) |"
  echo
  echo "Artillery (\`bench/load-test.yml\`, 1,000 users of one org on the same 10 services): $art_result."
  echo
  echo "![memory](bench-memory.png)"
  echo "![throughput](bench-throughput.png)"
  echo "![latency](bench-latency.png)"
  echo
  echo "Raw JSON lines: \`bench/results/$(basename "$out")/all.jsonl\` (not committed; rerun to reproduce)."
} >"$block"

begin='<!-- bench:results:begin -->'
end='<!-- bench:results:end -->'
if [ ! -f "$doc" ] || ! grep -q "$begin" "$doc"; then
  printf '# Benchmarks\n\n%s\n%s\n' "$begin" "$end" >>"$doc"
fi
awk -v b="$begin" -v e="$end" -v f="$block" '
  $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
echo "report: wrote $doc and docs/bench-*.png from $out"
