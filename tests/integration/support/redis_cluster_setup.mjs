// A private Redis Cluster for the cluster-mode tests: six redis-servers on free loopback ports
// (each with its own temporary directory, cluster-enabled, a short cluster-node-timeout so a
// killed primary's replica is promoted within a few seconds), joined by
// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`: three primaries with one
// replica each. Resolves once every node says cluster_state:ok and agrees on the slots.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ms, waitFor } from './env.mjs';
import { Redis, freePort, redisCommand } from './redis.mjs';

const run = promisify(execFile);

function findBin(name, envName) {
  const env = process.env[envName];
  if (env) return env;
  for (const dir of (process.env.PATH || '/usr/bin').split(':')) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} not found: run scripts/install-deps.sh or set ${envName}`);
}

// "CLUSTER NODES" → [{id, port, flags, master (id or '-'), slots: [[a, b], …]}].
function parseNodes(text) {
  return text.trim().split('\n').map((line) => {
    const f = line.split(' ');
    const slots = f.slice(8).filter((s) => /^\d/.test(s)).map((s) => {
      const [a, b] = s.split('-').map(Number);
      return [a, b ?? a];
    });
    return { id: f[0], port: Number(f[1].split(':')[1].split('@')[0]), flags: f[2].split(','), master: f[3], slots };
  });
}

export class RedisCluster {
  constructor(servers) {
    this.servers = servers; // Redis instances, by port
  }

  get url() {
    return `redis-cluster://${this.servers.slice(0, 2).map((s) => `127.0.0.1:${s.port}`).join(',')}`;
  }

  server(port) {
    return this.servers.find((s) => s.port === port);
  }

  // A command on any node that is up (or on `port`).
  async command(args, port) {
    if (port) return redisCommand(port, args);
    let lastError;
    for (const s of this.servers) {
      if (!s.running) continue;
      try {
        return await redisCommand(s.port, args);
      } catch (e) {
        lastError = e;
      }
    }
    throw lastError ?? new Error('no redis-server of the cluster is running');
  }

  async nodes() {
    return parseNodes(await this.command(['CLUSTER', 'NODES']));
  }

  async keySlot(key) {
    return this.command(['CLUSTER', 'KEYSLOT', key]);
  }

  // The port of the primary serving `slot`, by CLUSTER NODES of a live node.
  async ownerPort(slot) {
    const nodes = await this.nodes();
    const owner = nodes.find((n) => n.flags.includes('master') && !n.flags.includes('fail') &&
      n.slots.some(([a, b]) => slot >= a && slot <= b));
    return owner?.port;
  }

  async primaries() {
    return (await this.nodes()).filter((n) => n.flags.includes('master') && n.slots.length > 0);
  }

  // Waits until every running node says cluster_state:ok.
  async waitOk(timeout = ms(20000)) {
    await waitFor(async () => {
      for (const s of this.servers) {
        if (!s.running) continue;
        try {
          const info = await redisCommand(s.port, ['CLUSTER', 'INFO'], { timeout: 500 });
          if (!/cluster_state:ok/.test(info)) return false;
        } catch {
          return false;
        }
      }
      return true;
    }, { timeout, interval: 50, what: 'cluster_state:ok on every node' });
  }

  // Moves one slot from its primary to `toPort`'s the way redis-cli --cluster reshard does:
  // CLUSTER SETSLOT … IMPORTING/MIGRATING, MIGRATE of the slot's keys ten at a time, then
  // SETSLOT … NODE on every primary. Traffic may flow meanwhile: commands on keys already
  // moved get -ASK, scripts whose keys are split get -TRYAGAIN.
  async moveSlot(slot, toPort) {
    const nodes = await this.nodes();
    const from = nodes.find((n) => n.flags.includes('master') && n.slots.some(([a, b]) => slot >= a && slot <= b));
    const to = nodes.find((n) => n.port === toPort);
    await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id]);
    await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id]);
    for (let round = 0; round < 10000; round++) {
      const keys = await redisCommand(from.port, ['CLUSTER', 'GETKEYSINSLOT', slot, 10]);
      if (keys.length === 0) break;
      const reply = await redisCommand(from.port, ['MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys]);
      if (reply?.error) throw new Error(`MIGRATE: ${reply.error}`);
    }
    await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    for (const n of nodes) {
      if (n.port !== to.port && n.port !== from.port && n.flags.includes('master')) {
        await redisCommand(n.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]).catch(() => {});
      }
    }
  }

  async cleanup() {
    for (const s of this.servers) await s.cleanup();
  }
}

// Starts 3 primaries + 3 replicas. `nodeTimeout`: cluster-node-timeout in ms.
export async function startRedisCluster({ nodeTimeout = 1000 } = {}) {
  const server = findBin('redis-server', 'STREAMGATE_TEST_REDIS_SERVER');
  const cli = findBin('redis-cli', 'STREAMGATE_TEST_REDIS_CLI');
  const servers = [];
  try {
    const ports = [];
    while (ports.length < 6) {
      const p = await freePort();
      // The cluster bus listens on port + 10000: keep both below 65536 and distinct.
      if (p + 10000 < 65536 && !ports.includes(p)) ports.push(p);
    }
    for (const port of ports) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-itest-rcluster-'));
      const s = new Redis(server, port, dir, [
        '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'),
        '--cluster-node-timeout', String(nodeTimeout), '--appendonly', 'no',
        // A replica may take over however stale it is: the test kills primaries on purpose.
        '--cluster-replica-validity-factor', '0',
      ]);
      servers.push(s);
    }
    await Promise.all(servers.map((s) => s.launch()));
    await run(cli, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '1', '--cluster-yes'], { timeout: ms(20000) });
    const cluster = new RedisCluster(servers);
    await cluster.waitOk();
    // Every node sees three primaries with slots and three replicas.
    await waitFor(async () => {
      for (const s of servers) {
        const nodes = parseNodes(await redisCommand(s.port, ['CLUSTER', 'NODES']));
        const primaries = nodes.filter((n) => n.flags.includes('master') && n.slots.length > 0);
        const replicas = nodes.filter((n) => n.flags.includes('slave'));
        if (primaries.length !== 3 || replicas.length !== 3) return false;
      }
      return true;
    }, { timeout: ms(15000), interval: 50, what: 'every node to see 3 primaries and 3 replicas' });
    return cluster;
  } catch (e) {
    for (const s of servers) await s.cleanup();
    throw e;
  }
}
