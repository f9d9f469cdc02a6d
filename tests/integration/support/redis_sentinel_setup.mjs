// A private Redis Sentinel deployment for the Sentinel-mode tests: one primary and one replica
// (redis-servers on free loopback ports, each with its own temporary directory) and three
// Sentinels (`redis-server <conf> --sentinel`: Debian's redis-server package ships no separate
// redis-sentinel binary) watching the primary as "mymaster" with quorum 2, a short
// down-after-milliseconds and failover-timeout so a failover takes a few seconds. Resolves once
// every Sentinel sees the primary, the replica in sync, and the two other Sentinels — what
// SENTINEL FAILOVER and an automatic failover need. Every process is killed by its own PID.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ms, waitFor, withTimeout } from './env.mjs';
import { Redis, findRedisServer, freePort, killOnExit, redisCommand } from './redis.mjs';

export const MASTER_NAME = 'mymaster';
// The ACL user streamgate logs in as on the data nodes. The Sentinels have no users, as is
// common, so they get (and refuse) the same AUTH; the default user stays open for the helpers.
export const USER = 'streamgate';
export const PASSWORD = 's3cret';

// "SENTINEL replicas|sentinels" answer arrays of flat [field, value, …] lists.
function records(reply) {
  return (Array.isArray(reply) ? reply : []).map((flat) => {
    const out = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1];
    return out;
  });
}

class Sentinel {
  constructor(bin, port, dir) {
    this.bin = bin;
    this.port = port;
    this.dir = dir;
    this.child = undefined;
    this.exited = undefined;
  }

  async launch(primaryPort, { downAfter, failoverTimeout }) {
    // Sentinel rewrites its config file as it learns the deployment: one per Sentinel.
    const conf = path.join(this.dir, 'sentinel.conf');
    writeFileSync(conf, [
      `port ${this.port}`, 'bind 127.0.0.1', 'protected-mode no', 'daemonize no',
      `dir ${this.dir}`, `logfile ${path.join(this.dir, 'sentinel.log')}`,
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${downAfter}`,
      `sentinel failover-timeout ${MASTER_NAME} ${failoverTimeout}`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`, '',
    ].join('\n'));
    const child = spawn(this.bin, [conf, '--sentinel'], { stdio: 'ignore' });
    killOnExit(child);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      });
    });
    await waitFor(async () => {
      if (!this.child) throw new Error(`redis sentinel exited at start; log:\n${this.logTail()}`);
      try {
        return (await redisCommand(this.port, ['PING'], { timeout: 500 })) === 'PONG';
      } catch {
        return false;
      }
    }, { timeout: ms(10000), interval: 20, what: 'redis sentinel to answer PING', describe: () => this.logTail() });
  }

  logTail() {
    try {
      return readFileSync(path.join(this.dir, 'sentinel.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  get running() {
    return this.child !== undefined;
  }

  command(...args) {
    return redisCommand(this.port, args);
  }

  async kill() {
    if (!this.child) return;
    const exited = this.exited;
    this.child.kill('SIGKILL');
    await withTimeout(exited, ms(10000), 'redis sentinel to exit');
  }

  async cleanup() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class RedisSentinelSetup {
  constructor(servers, sentinels) {
    this.servers = servers; // Redis instances: [first primary, first replica]
    this.sentinels = sentinels;
  }

  get url() {
    return `redis-sentinel://${USER}:${PASSWORD}@${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER_NAME}`;
  }

  server(port) {
    return this.servers.find((s) => s.port === port);
  }

  // The primary's port as a Sentinel that is up names it.
  async primaryPort() {
    let lastError;
    for (const s of this.sentinels) {
      try {
        const reply = await s.command('SENTINEL', 'get-master-addr-by-name', MASTER_NAME);
        return Number(reply[1]);
      } catch (e) {
        lastError = e;
      }
    }
    throw lastError;
  }

  // Waits until every Sentinel names a primary other than `oldPort` and that server says it is
  // a master; resolves with its port.
  async waitNewPrimary(oldPort, timeout = ms(20000)) {
    let seen;
    return waitFor(async () => {
      const ports = [];
      for (const s of this.sentinels) {
        if (!s.running) continue;
        try {
          const reply = await s.command('SENTINEL', 'get-master-addr-by-name', MASTER_NAME);
          ports.push(Number(reply[1]));
        } catch {
          return false;
        }
      }
      seen = ports.join(',');
      if (ports.some((p) => p === oldPort || p !== ports[0])) return false;
      try {
        const role = await redisCommand(ports[0], ['ROLE'], { timeout: 500 });
        return role[0] === 'master' ? ports[0] : false;
      } catch {
        return false;
      }
    }, { timeout, interval: 50, what: `the Sentinels to agree on a primary other than ${oldPort}`, describe: () => seen });
  }

  // SENTINEL FAILOVER on the first running Sentinel: a failover without asking the others.
  async failover() {
    const reply = await this.sentinels.find((s) => s.running).command('SENTINEL', 'FAILOVER', MASTER_NAME);
    if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER: ${JSON.stringify(reply)}`);
  }

  // Makes the server on `port` a replica of `primaryPort` and waits until it is in sync: what
  // Sentinel does itself to a former primary, but only 8 s after it sees it again (four of its
  // 2 s publish periods); a restart when the server is not running, as its supervisor would.
  async makeReplica(port, primaryPort, timeout = ms(20000)) {
    const s = this.server(port);
    const args = ['--replicaof', '127.0.0.1', String(primaryPort)];
    if (s.running) {
      await s.command('REPLICAOF', '127.0.0.1', primaryPort);
    } else {
      s.extraArgs = [...s.baseArgs, ...args];
      await s.launch();
    }
    await waitFor(async () => {
      try {
        const info = await redisCommand(port, ['INFO', 'replication'], { timeout: 500 });
        return /master_link_status:up/.test(info);
      } catch {
        return false;
      }
    }, { timeout, interval: 50, what: `${port} to sync from ${primaryPort}` });
  }

  async cleanup() {
    for (const s of this.sentinels) await s.cleanup();
    for (const s of this.servers) await s.cleanup();
  }
}

// Starts the primary, its replica and three Sentinels.
export async function startRedisSentinel({ downAfter = 1000, failoverTimeout = 3000 } = {}) {
  const bin = findRedisServer();
  const servers = [];
  const sentinels = [];
  try {
    const ports = [];
    while (ports.length < 5) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    // A replica syncs at once (no 5 s wait for more replicas to join a diskless transfer).
    const baseArgs = ['--repl-diskless-sync-delay', '0', '--appendonly', 'no',
      '--user', USER, 'on', `>${PASSWORD}`, '~*', '&*', '+@all'];
    for (const [i, port] of ports.slice(0, 2).entries()) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-itest-rsentinel-'));
      const extra = i === 0 ? baseArgs : [...baseArgs, '--replicaof', '127.0.0.1', String(ports[0])];
      const s = new Redis(bin, port, dir, extra);
      s.baseArgs = baseArgs;
      servers.push(s);
    }
    await servers[0].launch();
    await servers[1].launch();
    for (const port of ports.slice(2)) {
      sentinels.push(new Sentinel(bin, port, mkdtempSync(path.join(os.tmpdir(), 'sg-itest-rsentinel-s-'))));
    }
    await Promise.all(sentinels.map((s) => s.launch(ports[0], { downAfter, failoverTimeout })));
    let last;
    await waitFor(async () => {
      for (const s of sentinels) {
        const replicas = records(await s.command('SENTINEL', 'replicas', MASTER_NAME));
        const peers = records(await s.command('SENTINEL', 'sentinels', MASTER_NAME));
        last = `sentinel ${s.port}: replicas ${JSON.stringify(replicas.map((r) => [r.port, r.flags, r['master-link-status']]))}, peers ${peers.length}`;
        if (replicas.length !== 1 || replicas[0].flags !== 'slave' || replicas[0]['master-link-status'] !== 'ok') return false;
        if (peers.length !== 2) return false;
      }
      return true;
    }, { timeout: ms(20000), interval: 100, what: 'every Sentinel to see the replica and two peers', describe: () => last });
    return new RedisSentinelSetup(servers, sentinels);
  } catch (e) {
    for (const s of sentinels) await s.cleanup();
    for (const s of servers) await s.cleanup();
    throw e;
  }
}
