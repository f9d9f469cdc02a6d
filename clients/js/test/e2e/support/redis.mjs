// A private redis-server for the Redis-broker tests, after tests/integration/support/redis.mjs:
// a free loopback port, its own temporary data directory, never a system service. Kept inside the
// package so the client's tests don't depend on the server's test tree.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './harness.mjs';

export function findRedisServer() {
  const env = process.env.STREAMGATE_TEST_REDIS_SERVER;
  if (env) return env;
  for (const dir of (process.env.PATH || '/usr/bin').split(':')) {
    const candidate = path.join(dir, 'redis-server');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// PING over a fresh socket; true on +PONG.
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(), 500);
    let reply = '';
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(reply.startsWith('+PONG'));
    });
  });
}

export class Redis {
  /** Starts a fresh redis-server and resolves once it answers PING. */
  static async start() {
    const bin = findRedisServer();
    if (!bin)
      throw new Error('redis-server not found (install Debian redis-server or set STREAMGATE_TEST_REDIS_SERVER)');
    let lastError;
    // A free port can be taken between probing and binding: try again on another.
    for (let attempt = 0; attempt < 3; attempt++) {
      const redis = new Redis(bin, await freePort(), mkdtempSync(path.join(os.tmpdir(), 'sg-e2e-redis-')));
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

  constructor(bin, port, dir) {
    this.bin = bin;
    this.port = port;
    this.dir = dir;
    this.child = undefined;
    this.exited = undefined;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async launch() {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--appendonly',
      'no',
      '--save',
      '',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
      '--logfile',
      path.join(this.dir, 'redis.log'),
    ];
    const child = spawn(this.bin, args, { stdio: 'ignore' });
    live.add(child);
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        live.delete(child);
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      }),
    );
    await waitFor(
      async () => {
        if (!this.child) throw new Error(`redis-server exited at start; log:\n${this.logTail()}`);
        return ping(this.port);
      },
      { timeout: 10000, what: 'redis-server to answer PING', describe: () => this.logTail() },
    );
  }

  logTail() {
    try {
      return readFileSync(path.join(this.dir, 'redis.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  /** Kills the server and removes its data. */
  async cleanup() {
    if (this.child) {
      const exited = this.exited;
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
