// A private redis-server for multi-node tests: a free loopback port, its own temporary data
// directory, `appendonly yes`; never a system service. It can be stopped (SIGTERM: the
// append-only file is flushed), killed, paused (SIGSTOP) and restarted on the same port and
// data. `command()` speaks RESP over a fresh socket, for checks such as PUBSUB NUMSUB.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ms, waitFor, withTimeout } from './env.mjs';

export function findRedisServer() {
  const env = process.env.STREAMGATE_TEST_REDIS_SERVER;
  if (env) return env;
  for (const dir of (process.env.PATH || '/usr/bin').split(':')) {
    const candidate = path.join(dir, 'redis-server');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('redis-server not found: run scripts/install-deps.sh or set STREAMGATE_TEST_REDIS_SERVER');
}

// Every redis-server (or Sentinel) a test file starts is killed when the file's process exits,
// whatever the test did.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function killOnExit(child) {
  live.add(child);
  child.on('exit', () => live.delete(child));
}

// A loopback TCP port free at the time of asking (for a server that can't be given port 0).
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a), 'utf8');
    out += `$${b.length}\r\n${b.toString('utf8')}\r\n`;
  }
  return out;
}

// Parses one RESP2 reply at buf[pos]; returns {value, pos} or undefined when incomplete.
// Errors become {error: "…"}.
function parse(buf, pos = 0) {
  const end = buf.indexOf('\r\n', pos);
  if (end < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, end);
  const next = end + 2;
  if (type === '+') return { value: line, pos: next };
  if (type === '-') return { value: { error: line }, pos: next };
  if (type === ':') return { value: Number(line), pos: next };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, pos: next };
    if (buf.length < next + n + 2) return undefined;
    return { value: buf.toString('utf8', next, next + n), pos: next + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, pos: next };
    const items = [];
    let at = next;
    for (let i = 0; i < n; i++) {
      const r = parse(buf, at);
      if (!r) return undefined;
      items.push(r.value);
      at = r.pos;
    }
    return { value: items, pos: at };
  }
  throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
}

// Sends one command on a fresh connection; resolves with the parsed reply.
export function redisCommand(port, args, { timeout = ms(3000) } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let buf = Buffer.alloc(0);
      socket.on('connect', () => socket.write(encode(args)));
      socket.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const r = parse(buf);
        if (r) {
          socket.destroy();
          resolve(r.value);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('redis closed the connection without a reply')));
    }),
    timeout,
    `redis ${args[0]}`,
  );
}

export class Redis {
  constructor(bin, port, dir, extraArgs = []) {
    this.bin = bin;
    this.port = port;
    this.dir = dir;
    this.extraArgs = extraArgs;
    this.child = undefined;
    this.exited = undefined;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running() {
    return this.child !== undefined;
  }

  async launch() {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--save', '', '--protected-mode', 'no', '--daemonize', 'no',
      '--logfile', path.join(this.dir, 'redis.log'),
      ...this.extraArgs,
    ];
    const child = spawn(this.bin, args, { stdio: 'ignore' });
    killOnExit(child);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      });
    });
    await waitFor(
      async () => {
        if (!this.child) throw new Error(`redis-server exited at start; log:\n${this.logTail()}`);
        try {
          return (await redisCommand(this.port, ['PING'], { timeout: 500 })) === 'PONG';
        } catch {
          return false;
        }
      },
      { timeout: ms(10000), interval: 20, what: 'redis-server to answer PING', describe: () => this.logTail() },
    );
  }

  logTail() {
    try {
      return readFileSync(path.join(this.dir, 'redis.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  command(...args) {
    return redisCommand(this.port, args);
  }

  // SIGTERM and wait: Redis flushes its append-only file before it exits.
  async stop() {
    if (!this.child) return;
    const exited = this.exited;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    await withTimeout(exited, ms(10000), 'redis-server to exit');
  }

  async kill() {
    if (!this.child) return;
    const exited = this.exited;
    this.child.kill('SIGKILL');
    await exited;
  }

  // Starts again on the same port and data directory.
  async restart() {
    await this.stop();
    await this.launch();
  }

  pause() {
    this.child?.kill('SIGSTOP');
  }

  resume() {
    this.child?.kill('SIGCONT');
  }

  // Kills the server and removes its data.
  async cleanup() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts a fresh redis-server and resolves once it answers PING (on its plain port, which the
// tests use for inspection even when `extraArgs` adds a TLS port).
export async function startRedis({ extraArgs = [] } = {}) {
  const bin = findRedisServer();
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-itest-redis-'));
    const redis = new Redis(bin, await freePort(), dir, extraArgs);
    try {
      await redis.launch();
      return redis;
    } catch (e) {
      lastError = e;
      await redis.cleanup();
    }
  }
  throw lastError;
}

// The Pub/Sub channel (and key stem) streamgate uses for (org, service) with the default
// key prefix: sg:{<org length>:<org>/<service>}.
export function channelName(org, service) {
  const o = String(org);
  return `sg:{${Buffer.byteLength(o, 'utf8')}:${o}/${service}}`;
}
