# Shared by bench/run.sh and bench/cluster-100k.sh (sourced, from the repository root).

say() { printf '\n== %s\n' "$*"; }

# The Release build both scripts measure; sets sg_bin and gen_bin. STREAMGATE_BENCH_BUILD names
# another build directory (with --no-build: one that already has both binaries).
bench_dir=${STREAMGATE_BENCH_BUILD:-$PWD/build-bench}
bench_build() {
  say "build (Release)"
  cmake -S . -B "$bench_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  ninja -C "$bench_dir" -j2 streamgate streamgate-bench
}
sg_bin=$bench_dir/streamgate
gen_bin=$bench_dir/tools/bench/streamgate-bench

# Scheduling: servers on CPU 0, generators on CPU 1. Other work on a shared machine preempts the
# server and the generator for tens of ms at a time, which then shows up as latency. A real-time
# priority (when allowed) keeps them on their core; the kernel still leaves 5 % of each second
# to everything else (sched_rt_runtime_us). Sets prio, sched, srv and gen.
if chrt -f 20 true 2>/dev/null; then prio=(chrt -f 20); sched="SCHED_FIFO 20 (chrt)"
elif nice -n -15 true 2>/dev/null; then prio=(nice -n -15); sched="nice -15"
else prio=(); sched="default"; fi
srv=("${prio[@]}" taskset -c 0)
gen=("${prio[@]}" taskset -c 1)
