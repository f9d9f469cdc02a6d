// Streamgate nodes sharing one private redis-server as their broker (--broker), for the
// multi-node tests.

import { startRedis } from './redis.mjs';
import { startServer } from './server.mjs';

// Starts a redis-server and `count` nodes on it, each with `flags` added. Resolves {redis, nodes}.
export async function startCluster(count, flags = {}) {
  const redis = await startRedis();
  try {
    const nodes = await Promise.all(
      Array.from({ length: count }, () => startServer({ flags: { broker: redis.url, ...flags } })),
    );
    return { redis, nodes };
  } catch (e) {
    await redis.cleanup();
    throw e;
  }
}

// Stops every node, each of which must exit cleanly (Server.stop), except those the test
// killed itself with SIGKILL; then removes the redis-server. For an `after` hook: takes what
// startCluster gave, or nothing when it failed.
export async function stopCluster({ redis, nodes = [] } = {}) {
  try {
    for (const node of nodes) if (!node.killed) await node.stop();
  } finally {
    await redis?.cleanup();
  }
}
