// Everything the browser tests share: the real streamgate binary on loopback, a tiny static web
// server (test pages, the built package, a token endpoint), headless Chromium through
// playwright-core, and publishing/metrics over HTTP. No fixed sleeps: tests wait on conditions.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = path.resolve(here, '../../..');
export const BIN = process.env.STREAMGATE_BIN || path.resolve(PACKAGE_DIR, '../../build/streamgate');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SECRET = 'e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz';
export const API_KEY = 'e2e-api-key-7f3k9q2m5x';

// ---- waiting ----

/** Polls `probe` until it returns something truthy; fails naming `what` and the last value seen. */
export async function waitFor(probe, { timeout = 10000, interval = 25, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) {
      let detail = '';
      if (describe) {
        try {
          detail = `; last seen: ${JSON.stringify(await describe())}`;
        } catch (e) {
          detail = `; describe failed: ${e.message}`;
        }
      }
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
    }
    await delay(interval);
  }
}

// ---- tokens ----

export function mintToken({ org = 456, user = 'user-1', ttl = 3600, secret = SECRET } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: user, org_id: org, iat: now, exp: now + Number(ttl) })).toString(
    'base64url',
  );
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

// ---- the server ----

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export class Streamgate {
  /** Starts the binary and resolves once it logs "listening". `port` 0 picks a free one. */
  static async start({ port = 0, args = [] } = {}) {
    if (!existsSync(BIN)) throw new Error(`streamgate binary not found at ${BIN} (set STREAMGATE_BIN)`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STREAMGATE_')));
    const child = spawn(
      BIN,
      [
        '--listen',
        `127.0.0.1:${port}`,
        '--jwt-secret',
        SECRET,
        '--api-key',
        API_KEY,
        '--jwt-leeway',
        '0',
        '--workers',
        '2',
        // A restart here stands for a crash or a deploy without a balancer: exit at once on
        // SIGTERM rather than draining (the drain has its own tests in tests/integration).
        '--drain-period',
        '0',
        ...args,
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.add(child);
    const server = new Streamgate(child);
    await waitFor(() => server.port !== undefined || server.exit, { timeout: 10000, what: 'streamgate to listen' });
    if (server.port === undefined) throw new Error(`streamgate exited at start-up: ${server.stderr}`);
    return server;
  }

  constructor(child) {
    this.child = child;
    this.stderr = '';
    this.port = undefined;
    this.exit = null;
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        children.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    child.stderr.setEncoding('utf8');
    let partial = '';
    child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        try {
          const entry = JSON.parse(line);
          if (entry.message === 'listening' && this.port === undefined) this.port = entry.port;
        } catch {
          // not a JSON log line
        }
      }
    });
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v2/realtime/stream`;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** SIGTERM (clients get 1001) and wait for the process to exit. */
  async stop() {
    if (!this.exit) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
    return this.exit;
  }

  async api(method, pathname, body) {
    const res = await fetch(`${this.httpUrl}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${pathname} → ${res.status} ${text}`);
    return JSON.parse(text);
  }

  /** Publishes one event; returns its id. */
  async publish(orgId, service, event, data) {
    return (await this.api('POST', '/v2/realtime/publish', { orgId, service, event, data })).id;
  }

  async connections() {
    return (await this.api('GET', '/v2/realtime/metrics')).connectionPoolStats.totalConnections;
  }
}

// ---- the web server for test pages ----

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' };

export class WebServer {
  static async start() {
    const web = new WebServer();
    await new Promise((resolve) => web.server.listen(0, '127.0.0.1', resolve));
    web.origin = `http://127.0.0.1:${web.server.address().port}`;
    return web;
  }

  constructor() {
    /** Every /token request, in order: { org, user, ttl, bad }. */
    this.tokenRequests = [];
    this.roots = {
      '/dist/': path.join(PACKAGE_DIR, 'dist'),
      '/pages/': path.join(here, '../pages'),
      '/out/': path.join(here, '../.out'),
    };
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  handle(req, res) {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/token') {
      const q = Object.fromEntries(url.searchParams);
      this.tokenRequests.push(q);
      const token = mintToken({ org: q.org ?? 456, user: q.user ?? 'user-1', ttl: q.ttl ?? 3600 });
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end(q.bad ? `${token}x` : token);
      return;
    }
    for (const [prefix, dir] of Object.entries(this.roots)) {
      if (!url.pathname.startsWith(prefix)) continue;
      const file = path.normalize(path.join(dir, url.pathname.slice(prefix.length)));
      if (!file.startsWith(dir) || !existsSync(file)) break;
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  /** URL of the plain test page for one tab. */
  tabUrl(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
      if (v !== undefined && v !== false) q.set(k, v === true ? '1' : String(v));
    return `${this.origin}/pages/tab.html?${q}`;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

// ---- the browser ----

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One headless Chromium with a fresh profile; its pages are tabs of one origin's session. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'sg-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  const consoleLines = [];
  context.on('page', (page) => watchConsole(page, consoleLines));
  for (const page of context.pages()) watchConsole(page, consoleLines);
  return {
    context,
    consoleLines,
    async newTab(url) {
      const page = await context.newPage();
      await page.goto(url);
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

function watchConsole(page, lines) {
  page.on('console', (m) => lines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`[pageerror] ${e.message}`));
}

// ---- reading a tab ----

/** The test page's record: events, states, token requests, resume failures, errors, leadership. */
export function record(page) {
  return page.evaluate(() => ({
    ids: window.sg.events.map((e) => e.id),
    state: window.sg.client.state,
    leader: window.sg.client.isLeader,
    tokens: window.sg.tokens,
    failures: window.sg.failures,
    states: window.sg.states,
    leaderSince: window.sg.leaderSince,
  }));
}

export async function isLeader(page) {
  return page.evaluate(() => window.sg.client.isLeader).catch(() => false);
}

/** Publishes `count` events one after another; returns their ids in order. */
export async function publishMany(server, org, service, count, { from = 0, event = 'tick' } = {}) {
  const ids = [];
  for (let i = 0; i < count; i++) ids.push(await server.publish(org, service, event, { n: from + i }));
  return ids;
}
