// Everything the browser tests share: the real streamgate binary on loopback, a tiny static web
// server (test pages, the built package, a token endpoint), headless Chromium through
// playwright-core, and publishing/metrics over HTTP. No fixed sleeps: tests wait on conditions.
// Launching the binary, redis-server, minting tokens, polling and HTTP come from the server's
// integration test helpers (tests/integration/support, plain node modules without packages), so
// both suites start and stop the server the same way.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor as poll } from '../../../../../tests/integration/support/env.mjs';
import { metricsJson, publishOk } from '../../../../../tests/integration/support/http.mjs';
import { startServer } from '../../../../../tests/integration/support/server.mjs';
import { claims, mintHS256 } from '../../../../../tests/integration/support/tokens.mjs';

export { startRedis } from '../../../../../tests/integration/support/redis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = path.resolve(here, '../../..');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SECRET = 'e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz';
export const API_KEY = 'e2e-api-key-7f3k9q2m5x';

// ---- waiting ----

/** Polls `probe` until it returns something truthy; fails naming `what` and the last value seen. */
export function waitFor(probe, { timeout = 10000, interval = 25, describe, ...rest } = {}) {
  return poll(probe, {
    timeout,
    interval,
    ...rest,
    describe: describe && (async () => JSON.stringify(await describe())),
  });
}

// ---- tokens ----

export function mintToken({ org = 456, user = 'user-1', ttl = 3600, secret = SECRET } = {}) {
  return mintHS256(claims({ org, user, ttl: Number(ttl) }), secret);
}

// ---- the server ----

export class Streamgate {
  /**
   * Starts the binary ($STREAMGATE_BIN) with the browser tests' secret and API key, plus `flags`
   * (e.g. `{ broker: url }`), and resolves once it listens. `port` 0 picks a free one.
   */
  static async start({ port = 0, flags = {} } = {}) {
    const server = await startServer({
      flags: { listen: `127.0.0.1:${port}`, 'jwt-secret': SECRET, 'api-key': API_KEY, 'jwt-leeway': 0, ...flags },
    });
    return new Streamgate(server);
  }

  constructor(server) {
    this.server = server;
  }

  get port() {
    return this.server.port;
  }

  get wsUrl() {
    return this.server.wsUrl;
  }

  get httpUrl() {
    return this.server.httpUrl;
  }

  /**
   * SIGTERM (clients get 1001; the server drains for 0 s) and wait for the process to exit;
   * throws unless it exits 0 without a sanitizer report. Resolves {code, signal}.
   */
  stop() {
    return this.server.stop();
  }

  /** Publishes one event; returns its id. */
  publish(orgId, service, event, data) {
    return publishOk(this.server, { orgId, service, event, data });
  }

  async connections() {
    return (await metricsJson(this.server)).connectionPoolStats.totalConnections;
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
