// Scenario 9: the WebSocket can't open (a proxy in front of the server answers every upgrade with
// 404, as some corporate proxies do), so after 3 attempts the client streams over SSE through the
// same proxy. Events arrive; a second tab shares the one stream; the proxy ends the stream (as
// the server does on a drain) while events are published, and the client resumes from its cursor
// with no gap and no repeat, a quiet service included. When upgrades pass again, a WebSocket
// retry opens and the stream is closed, still without a gap.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Streamgate, WebServer, launchBrowser, publishMany, waitFor } from './support/harness.mjs';

// Forwards HTTP to the server; refuses upgrades until `allowUpgrades`; can end the event streams
// it carries.
class Proxy {
  static async start(target) {
    const proxy = new Proxy(target);
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  constructor(target) {
    this.target = new URL(target);
    this.upgrades = 0;
    this.allowUpgrades = false;
    this.sseRequests = [];
    this.live = new Set();
    this.sockets = new Set();
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  forward(req, res) {
    if (req.url.startsWith('/v2/realtime/sse')) {
      if (this.sseRequests.length === 0) this.upgradesBeforeSse = this.upgrades;
      this.sseRequests.push(new URL(req.url, 'http://x').searchParams);
    }
    const up = http.request(
      { host: this.target.hostname, port: this.target.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
        const entry = { res, answer };
        this.live.add(entry);
        answer.on('close', () => this.live.delete(entry));
        res.on('close', () => {
          this.live.delete(entry);
          answer.destroy();
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  upgrade(req, socket, head) {
    this.upgrades += 1;
    if (!this.allowUpgrades) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const up = net.connect(Number(this.target.port), this.target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    socket.on('close', () => up.destroy());
  }

  /** Ends every event stream with the last chunk, as a server that ends it does. */
  endStreams() {
    const n = this.live.size;
    for (const { res, answer } of [...this.live]) {
      answer.unpipe(res);
      answer.destroy();
      res.end();
    }
    return n;
  }

  close() {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

let server;
let proxy;
let web;
let browser;

before(async () => {
  [server, web, browser] = await Promise.all([
    Streamgate.start({ flags: { 'sse-retry': 200 } }),
    WebServer.start(),
    launchBrowser(),
  ]);
  proxy = await Proxy.start(server.httpUrl);
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await web?.close();
  await server?.stop();
});

async function openTab(wsUrl) {
  const page = await browser.newTab(`${web.origin}/pages/blank`);
  await page.evaluate(async (url) => {
    const log = { events: [], states: [] };
    window.s9 = log;
    const { RealtimeClient } = await import('/dist/index.js');
    const client = new RealtimeClient({
      url,
      name: 's9',
      services: ['finance', 'crm'],
      reconnect: { baseDelayMs: 100, maxDelayMs: 400 },
      websocketRetry: { baseDelayMs: 1000, maxDelayMs: 2000 },
      getToken: async () => (await fetch('/token?org=901&user=sse-user')).text(),
    });
    window.client = client;
    client.onStateChange((s) => log.states.push(`${s.state}/${s.transport ?? ''}`));
    client.on('*', '*', (e) => log.events.push(`${e.service}/${e.id}`));
  }, wsUrl);
  return page;
}

// A replay sends each service's missed events in order, one service after another: the order
// that holds is per service.
const byService = (events) => ({
  finance: events.filter((e) => e.startsWith('finance/')),
  crm: events.filter((e) => e.startsWith('crm/')),
  count: events.length,
});

const read = (page) =>
  page.evaluate(() => ({
    ...window.s9,
    state: window.client.state,
    transport: window.client.transport,
    leader: window.client.isLeader,
  }));

test('no WebSocket: SSE after 3 attempts, shared by tabs, resumed across a stream end, and back to the WebSocket', async () => {
  const wsUrl = `ws://127.0.0.1:${proxy.port}/v2/realtime/stream`;
  const tab1 = await openTab(wsUrl);
  await waitFor(async () => (await read(tab1)).transport === 'sse' && (await read(tab1)).state === 'open', {
    what: 'open over SSE',
    describe: () => read(tab1),
  });
  // (A WebSocket retry may already have followed: the first comes within a second.)
  assert.equal(proxy.upgradesBeforeSse, 3);
  assert.equal(proxy.sseRequests.length, 1);
  assert.equal(proxy.sseRequests[0].get('services'), 'finance,crm');
  assert.equal(proxy.sseRequests[0].get('lastEventId'), null);

  const tab2 = await openTab(wsUrl);
  await waitFor(async () => (await read(tab2)).state === 'open', { what: 'tab 2 open', describe: () => read(tab2) });
  assert.equal((await read(tab2)).transport, 'sse');
  assert.equal((await read(tab2)).leader, false);

  const expected = [];
  const publish = async (service, n) => {
    for (const id of await publishMany(server, 901, service, n)) expected.push(`${service}/${id}`);
  };
  const allArrived = async () => {
    const [a, b] = await Promise.all([read(tab1), read(tab2)]);
    return a.events.length >= expected.length && b.events.length >= expected.length;
  };
  await publish('finance', 5);
  await waitFor(allArrived, { what: 'the first 5 events in both tabs', describe: () => read(tab1) });

  // The stream ends while events keep coming; crm has had none yet (its place is in the cursor).
  assert.equal(proxy.endStreams(), 1);
  await publish('crm', 2);
  await publish('finance', 3);
  await waitFor(async () => proxy.sseRequests.length === 2, { what: 'the stream reopened' });
  assert.notEqual(proxy.sseRequests[1].get('lastEventId'), null);
  await publish('finance', 2);
  await waitFor(allArrived, { what: 'every event after the stream end', describe: () => read(tab1) });
  for (const tab of [tab1, tab2]) assert.deepEqual(byService((await read(tab)).events), byService(expected));
  // Still one stream for both tabs, and the proxy never saw a WebSocket from tab 2.
  assert.equal(proxy.sseRequests.length, 2);
  assert.ok((await read(tab1)).states.includes('open/sse'));

  // Upgrades pass again: a WebSocket retry opens and the stream goes.
  proxy.allowUpgrades = true;
  await waitFor(async () => (await read(tab1)).transport === 'websocket', {
    what: 'back on the WebSocket',
    timeout: 15000,
    describe: async () => ({ upgrades: proxy.upgrades, ...(await read(tab1)) }),
  });
  await waitFor(async () => proxy.live.size === 0, { what: 'the stream closed' });
  await publish('finance', 3);
  await waitFor(allArrived, { what: 'events over the WebSocket', describe: () => read(tab1) });
  for (const tab of [tab1, tab2]) assert.deepEqual(byService((await read(tab)).events), byService(expected));
  assert.equal((await read(tab2)).transport, 'websocket');
  await tab2.close();
  await tab1.close();
});
