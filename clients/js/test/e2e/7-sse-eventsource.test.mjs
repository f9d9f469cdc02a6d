// Scenario 7: Chromium's native EventSource on /v2/realtime/sse (cross-origin, token in the URL).
// It gets the ack and events by name; when the server ends the stream (the node restarts on the
// same port, history in Redis) it reconnects by itself after the stream's `retry:`, sends its
// Last-Event-ID, and gets everything published meanwhile: every event once, in order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Streamgate,
  WebServer,
  launchBrowser,
  mintToken,
  publishMany,
  startRedis,
  waitFor,
} from './support/harness.mjs';

let redis;
let server;
let web;
let browser;

const FLAGS = { 'sse-retry': 300 };

before(async () => {
  redis = await startRedis();
  [server, web, browser] = await Promise.all([
    Streamgate.start({ flags: { broker: redis.url, ...FLAGS } }),
    WebServer.start(),
    launchBrowser(),
  ]);
});

after(async () => {
  await browser?.close();
  await web?.close();
  await server?.stop();
  await redis?.cleanup();
});

test('native EventSource: events by name, a server-side close, automatic reconnect with no gap', async () => {
  // Any page of the test origin will do: the EventSource is made by the test.
  const page = await browser.newTab(`${web.origin}/blank`);
  const url = `${server.httpUrl}/v2/realtime/sse?services=finance,crm&access_token=${mintToken({ org: 707 })}`;
  await page.evaluate((u) => {
    const sse = { events: [], acks: [], failed: [], opens: 0, errors: 0, lastEventIds: [] };
    window.sse = sse;
    const es = new EventSource(u);
    window.es = es;
    es.onopen = () => sse.opens++;
    es.onerror = () => sse.errors++;
    es.addEventListener('ack', (e) => sse.acks.push(JSON.parse(e.data)));
    es.addEventListener('resume_failed', (e) => sse.failed.push(JSON.parse(e.data)));
    es.addEventListener('tick', (e) => {
      const frame = JSON.parse(e.data);
      sse.events.push({ id: frame.id, type: frame.type, service: frame.service, n: frame.data.n });
      sse.lastEventIds.push(e.lastEventId);
    });
  }, url);
  const state = () => page.evaluate(() => ({ ...window.sse, readyState: window.es.readyState }));
  await waitFor(async () => (await state()).acks.length === 1, { what: 'the ack', describe: state });

  const before = await publishMany(server, 707, 'finance', 5);
  const crm = await publishMany(server, 707, 'crm', 1, { from: 100 });
  await waitFor(async () => (await state()).events.length === 6, { what: '6 events', describe: state });

  const port = server.port;
  assert.equal((await server.stop()).code, 0);
  await waitFor(async () => (await state()).errors >= 1, { what: 'the stream to end', describe: state });

  // Published while the page's server is down, through another node on the same Redis.
  const other = await Streamgate.start({ flags: { broker: redis.url, ...FLAGS } });
  let during;
  try {
    during = await publishMany(other, 707, 'finance', 3, { from: 5 });
  } finally {
    assert.equal((await other.stop()).code, 0);
  }
  server = await Streamgate.start({ port, flags: { broker: redis.url, ...FLAGS } });
  await waitFor(async () => (await state()).acks.length === 2, {
    what: 'the reconnect',
    describe: state,
    timeout: 20000,
  });
  const after = await publishMany(server, 707, 'finance', 2, { from: 8 });
  const all = [...before, ...crm, ...during, ...after];
  await waitFor(async () => (await state()).events.length >= all.length, {
    what: `${all.length} events`,
    describe: state,
  });

  const s = await state();
  assert.deepEqual(
    s.events.map((e) => e.id),
    all,
    'every event once, in order',
  );
  assert.ok(s.events.every((e) => e.type === 'event'));
  assert.deepEqual(s.acks[1].resume, { finance: { recovered: true }, crm: { recovered: true } });
  assert.deepEqual(s.failed, []);
  assert.equal(s.opens, 2);
  assert.equal(s.readyState, 1);
  // EventSource's lastEventId is the cursor, the same for every service.
  assert.ok(s.lastEventIds.every((id) => /^[A-Za-z0-9_-]+$/.test(id)));
  await page.evaluate(() => window.es.close());
  await waitFor(async () => (await server.connections()) === 0, { what: 'the stream to close' });
  await page.close();
});
