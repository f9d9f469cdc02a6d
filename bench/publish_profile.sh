#!/usr/bin/env bash
# User-space cost of one publish request (docs/benchmarks.md, "The publish path, round 3"):
# streamgate under callgrind (--workers 1 --io-uring off), streamgate-bench publish with 64
# keep-alive producers, one event per request, no subscribers; 1 s of warm-up, counters zeroed,
# `seconds` more, then a dump. Prints instructions and allocations (calls of malloc, calloc,
# realloc, aligned allocations) per request, counted from streamgate_publish_requests_total
# read at the zero and at the dump, and the allocating callers by calls per request.
# Usage: bench/publish_profile.sh [build-dir=build] [seconds=6]. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-6}
sg_bin=$build/streamgate
gen_bin=$build/tools/bench/streamgate-bench
out=$(mktemp -d /tmp/publish-profile.XXXXXX)
secret=profile-secret-0123456789abcdef0123; key=profile-api-key-0123456789
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" --dump-instr=no \
  "$sg_bin" --listen "127.0.0.1:$port" --jwt-secret "$secret" --api-key "$key" \
  --log-level warn --workers 1 --io-uring off --drain-period 0 2>"$out/valgrind.log" &
vpid=$!
stop() { kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
requests() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '$1 == "streamgate_publish_requests_total" { print $2 }'
}
"$gen_bin" publish --producers 64 --connections 0 --duration $((seconds + 3)) --warmup 0 \
  --drain 1 --peer streamgate --port "$port" --publish-port "$port" --secret "$secret" \
  --api-key "$key" >"$out/bench.log" 2>&1 &
gpid=$!
sleep 2
callgrind_control -z "$vpid" >/dev/null
first=$(requests)
sleep "$seconds"
last=$(requests)
callgrind_control -d "$vpid" >/dev/null
wait "$gpid" || true
file=$(ls -t "$out"/callgrind.out.* | head -1)
n=$((last - first))
# The two /metrics reads are counted in too: under 0.1 % of the figures at thousands of publishes.
/usr/bin/python3 - "$file" "$n" <<'EOF'
import re, subprocess, sys
path, n = sys.argv[1], int(sys.argv[2])
text = subprocess.run(["callgrind_annotate", "--inclusive=no", path], capture_output=True,
                      text=True).stdout
total = int(re.search(r"([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
tree = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=caller", "--threshold=100", path],
                      capture_output=True, text=True).stdout
star = re.compile(r"^\s*[\d,]+\s+\(\s*[\d.]+%\)\s+\*\s+\S*?:(.*?)(?: \[.*\])?$")
caller = re.compile(r"^\s*[\d,]+\s+\(\s*[\d.]+%\)\s+<\s+\S*?:(.*) \(([\d,]+)x\)(?: \[.*\])?$")
allocators = re.compile(r"(malloc|calloc|realloc|aligned_alloc|posix_memalign|_mid_memalign.*"
                        r"|operator new\(unsigned long.*\)|operator new\[\]\(unsigned long.*\))$")
callers, block = {}, []
for line in tree.splitlines():
    if not line.strip():
        block = []
        continue
    m = star.match(line)
    if not m:
        block.append(line)
        continue
    if allocators.match(m.group(1)):
        for c in block:
            cm = caller.match(c)
            if cm and not allocators.match(cm.group(1)):
                callers[cm.group(1)] = callers.get(cm.group(1), 0) + int(cm.group(2).replace(",", ""))
    block = []
allocs = sum(callers.values())
print(f"requests {n}, instructions per request {total / n:,.0f}, allocations per request {allocs / n:.2f}")
for name, calls in sorted(callers.items(), key=lambda kv: -kv[1]):
    if calls / n >= 0.05:
        print(f"  {calls / n:6.2f}  {name[:150]}")
EOF
echo "callgrind output: $file"
