// A private Redis Cluster (3 primaries + 3 replicas on loopback, as the cluster-mode tests use)
// for bench/cluster-100k.sh --broker: prints its redis-cluster:// URL on one line, keeps it
// until SIGINT or SIGTERM, then removes it.
//
//   node bench/redis-cluster.mjs > /tmp/url & bench/cluster-100k.sh --broker "$(cat /tmp/url)" …
import { startRedisCluster } from '../tests/integration/support/redis_cluster_setup.mjs';

const cluster = await startRedisCluster();
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
