// WebSocket helpers over the `ws` package (a real third-party client): connect, handshake,
// wait for the next message matching a predicate, collect N events, wait for the close code.
// Every message is buffered from the moment the socket exists, so nothing is missed between
// "open" and the first wait.

import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { EVENT_ID, RFC3339, ms, withTimeout } from './env.mjs';
import { claims as makeClaims, mintHS256 } from './tokens.mjs';

export { WebSocket };

function summarize(list, max = 5) {
  const tail = list.slice(-max).map((m) => JSON.stringify(m).slice(0, 200));
  return `${list.length} message(s)${tail.length ? `, last: ${tail.join(' | ')}` : ''}`;
}

export class Client {
  constructor(ws) {
    this.ws = ws;
    this.received = []; // every message, in arrival order, never consumed
    this.inbox = []; // messages no wait has taken yet
    this.pings = 0;
    this.errors = [];
    this.closeInfo = undefined;
    this.waiters = new Set();
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        resolve(this.closeInfo);
        this.wake();
      });
    });
    ws.on('message', (data, isBinary) => {
      let m;
      if (isBinary) {
        m = { binary: Buffer.from(data) };
      } else {
        const text = data.toString('utf8');
        try {
          m = JSON.parse(text);
        } catch {
          m = { unparsed: text };
        }
      }
      this.received.push(m);
      this.inbox.push(m);
      this.wake();
    });
    ws.on('ping', () => {
      this.pings += 1;
      this.wake();
    });
    ws.on('error', (e) => {
      this.errors.push(e);
    });
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    this.ws.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message));
  }

  // Resolves with the first value other than undefined that `take()` returns, tried now and
  // after every message, ping and close. Rejects with `closedError()` once the connection is
  // closed without one, or with `timeoutError()` after `timeout` ms.
  until(take, timeout, closedError, timeoutError) {
    return new Promise((resolve, reject) => {
      let timer;
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = () => {
        const value = take();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closeInfo) {
          finish();
          reject(closedError());
        }
      };
      timer = setTimeout(() => {
        finish();
        reject(timeoutError());
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  // Resolves with (and removes from the inbox) the first buffered or future message matching
  // `pred`. Rejects on timeout, or at once if the connection closes without one.
  next(pred = () => true, { timeout = ms(5000), what = 'a matching message' } = {}) {
    return this.until(
      () => {
        const i = this.inbox.findIndex((m) => pred(m));
        return i >= 0 ? this.inbox.splice(i, 1)[0] : undefined;
      },
      timeout,
      () =>
        new Error(
          `connection closed (code ${this.closeInfo.code} "${this.closeInfo.reason}") before ${what}; ` +
            `received ${summarize(this.received)}`,
        ),
      () => new Error(`timed out after ${timeout} ms waiting for ${what}; received ${summarize(this.received)}`),
    );
  }

  nextEvent(opts = {}) {
    return this.next((m) => m.type === 'event', { what: 'an event', ...opts });
  }

  // The next `n` messages matching `pred`, in order, within one overall timeout.
  async collect(n, pred = () => true, { timeout = ms(5000), what = 'messages' } = {}) {
    const deadline = Date.now() + timeout;
    const out = [];
    while (out.length < n) {
      const left = Math.max(1, deadline - Date.now());
      out.push(await this.next(pred, { timeout: left, what: `${what} (${out.length + 1} of ${n})` }));
    }
    return out;
  }

  collectEvents(n, opts = {}) {
    return this.collect(n, (m) => m.type === 'event', { what: 'events', ...opts });
  }

  // Events until (and including) the first one for which `stop` is true.
  async eventsUntil(stop, { timeout = ms(5000) } = {}) {
    const deadline = Date.now() + timeout;
    const out = [];
    for (;;) {
      const left = Math.max(1, deadline - Date.now());
      const m = await this.next((x) => x.type === 'event', { timeout: left, what: 'events up to the sentinel' });
      out.push(m);
      if (stop(m)) return out;
    }
  }

  async waitClose(timeout = ms(5000)) {
    return withTimeout(this.closed, timeout, `close (received ${summarize(this.received)})`);
  }

  waitPings(n, timeout = ms(5000)) {
    return this.until(
      () => (this.pings >= n ? this.pings : undefined),
      timeout,
      () => new Error(`closed (${this.closeInfo.code}) after ${this.pings} ping(s), waiting for ${n}`),
      () => new Error(`timed out waiting for ${n} pings, got ${this.pings}`),
    );
  }

  // Orderly client close; resolves with the close info.
  async close(code = 1000, timeout = ms(5000)) {
    if (!this.closeInfo) {
      try {
        this.ws.close(code);
      } catch {
        this.ws.terminate();
      }
    }
    return this.waitClose(timeout);
  }

  terminate() {
    this.ws.terminate();
  }
}

// Error thrown when the server answers the upgrade with something other than 101.
export class UpgradeRejected extends Error {
  constructor(status, headers, body) {
    super(`upgrade rejected with HTTP ${status}: ${body.slice(0, 300)}`);
    this.status = status;
    this.headers = headers;
    this.body = body;
    try {
      this.json = JSON.parse(body);
    } catch {
      this.json = undefined;
    }
  }
}

// Opens a WebSocket to the stream endpoint. token via "query" (access_token) or "header"
// (Authorization: Bearer). Resolves with a Client once open; rejects with UpgradeRejected.
export function connect(server, { token, via = 'query', headers = {}, origin, autoPong = true, path, timeout = ms(5000), maxPayload } = {}) {
  let url = server.wsUrl;
  if (path !== undefined) url = `ws://127.0.0.1:${server.port}${path}`;
  const h = { ...headers };
  if (token !== undefined) {
    if (via === 'query') url += `${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
    else h.authorization = `Bearer ${token}`;
  }
  const options = { headers: h, autoPong, handshakeTimeout: timeout, perMessageDeflate: false };
  if (origin !== undefined) options.origin = origin;
  if (maxPayload !== undefined) options.maxPayload = maxPayload;
  const ws = new WebSocket(url, options);
  const client = new Client(ws);
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(client));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        reject(new UpgradeRejected(res.statusCode, res.headers, body));
        req.destroy();
      });
      res.on('error', () => {
        reject(new UpgradeRejected(res.statusCode, res.headers, body));
      });
    });
    ws.on('error', (e) => reject(e));
  });
}

// A token for (org, user) signed with the server's HS256 secret.
export function tokenFor(server, claimOpts = {}) {
  return mintHS256(makeClaims(claimOpts), server.secret);
}

// Connects, sends the handshake and waits for the ack. Returns {client, ack, token}.
// opts: org, user, services, resume, token, via, version, claims (extra claim options), origin.
export async function openStream(server, opts = {}) {
  const { org = 456, user = 'user-1', services = ['finance'], resume, via, origin, autoPong, claimOpts = {} } = opts;
  const token = opts.token ?? tokenFor(server, { org, user, ...claimOpts });
  const client = await connect(server, { token, via, origin, autoPong });
  const hs = { services, version: opts.version ?? 1 };
  if (resume) hs.resume = resume;
  client.send(hs);
  const ack = await client.next((m) => m.type === 'ack' || m.type === 'error', { what: 'the ack' });
  if (ack.type !== 'ack') throw new Error(`handshake ${JSON.stringify(hs)} answered with ${JSON.stringify(ack)}`);
  return { client, ack, token };
}

// Asserts an event frame has exactly the contract's fields with the right types; returns it.
export function assertEventFrame(m, expected = {}) {
  assert.equal(m.type, 'event', `expected an event frame, got ${JSON.stringify(m)}`);
  assert.deepEqual(
    Object.keys(m).sort(),
    ['data', 'event', 'id', 'seq', 'service', 'timestamp', 'type'],
    `event frame fields: ${JSON.stringify(m)}`,
  );
  assert.ok(Number.isInteger(m.seq) && m.seq >= 1, `seq ${m.seq}`);
  assert.match(m.id, EVENT_ID);
  assert.match(m.timestamp, RFC3339);
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(m[k], v, `event field ${k}`);
  return m;
}

export async function closeAll(clients, timeout = ms(10000)) {
  await Promise.all(clients.map((c) => c.close(1000, timeout).catch(() => c.terminate())));
}
