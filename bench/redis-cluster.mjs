// A private Redis Cluster (3 primaries + 3 replicas on loopback, as the cluster-mode tests use)
// for bench/cluster-100k.sh --broker: prints its redis-cluster:// URL on one line, keeps it
// until SIGINT or SIGTERM, then removes it.
//
//   node bench/redis-cluster.mjs [--node-timeout 5000] > /tmp/url &
//   bench/cluster-100k.sh --broker "$(cat /tmp/url)" …
//
// cluster-100k.sh runs its nodes and generators at a real-time priority (chrt -f 20) on both
// cores; a redis-server below them gets only the few percent the kernel leaves to the rest, so
// during the connect phase the primaries missed each other's heartbeats, the cluster failed
// over (CLUSTERDOWN, "redis stopped answering") and events waited tens of seconds. So each
// redis-server gets the same scheduling as the nodes (chrt -f 20, else nice -15, as
// bench/lib.sh), and --node-timeout (ms, cluster-node-timeout; the tests use 1000 to fail over
// fast) is long enough that a busy second is not taken for a dead primary.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { startRedisCluster } from '../tests/integration/support/redis_cluster_setup.mjs';

let nodeTimeout = 5000;
for (let i = 2; i < process.argv.length; i += 2) {
  const value = Number(process.argv[i + 1]);
  if (process.argv[i] !== '--node-timeout' || !Number.isInteger(value) || value < 100) {
    console.error(`redis-cluster.mjs: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  nodeTimeout = value;
}

const cluster = await startRedisCluster({ nodeTimeout });
let sched = 'default';
for (const s of cluster.servers) {
  const pid = String(s.child.pid);
  try {
    execFileSync('chrt', ['-a', '-f', '-p', '20', pid], { stdio: 'ignore' });
    sched = 'SCHED_FIFO 20 (chrt)';
  } catch {
    try {
      os.setPriority(s.child.pid, -15);
      sched = 'nice -15';
    } catch {
      // left at the default priority
    }
  }
}
console.error(`redis-cluster.mjs: cluster-node-timeout ${nodeTimeout} ms, scheduling ${sched}`);
console.log(cluster.url);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await cluster.cleanup();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => {}, 1 << 30);
