// Scenario 4 (Redis broker): the server process restarts while its history lives in Redis. Clients
// reconnect with backoff and resume from their last id: the ack says recovered, no resume failure
// is reported, and every event — published before the restart, while the server was down (through
// another node on the same Redis) and after it — reaches every tab exactly once, in order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Streamgate, WebServer, launchBrowser, publishMany, startRedis, waitFor } from './support/harness.mjs';

let redis;
let server;
let web;
let browser;

before(async () => {
  redis = await startRedis();
  [server, web, browser] = await Promise.all([
    Streamgate.start({ flags: { broker: redis.url } }),
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

test('with Redis, a restart loses nothing and repeats nothing', async (t) => {
  const base = 200;
  const max = 1600;
  const url = web.tabUrl({ ws: server.wsUrl, org: 411, services: 'finance,crm', name: 's4-redis', base, max });
  const tabs = [await browser.newTab(url), await browser.newTab(url)];
  const states = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.state)));
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'tabs open', describe: states });

  // The acks of the sockets opened from here on, as the server sent them (whichever tab leads).
  const acks = [];
  for (const page of tabs) {
    page.on('websocket', (ws) =>
      ws.on('framereceived', ({ payload }) => {
        try {
          const message = JSON.parse(String(payload));
          if (message.type === 'ack') acks.push(message);
        } catch {
          // not JSON: not an ack
        }
      }),
    );
  }

  const beforeIds = await publishMany(server, 411, 'finance', 10);
  const counts = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.events.length)));
  await waitFor(async () => (await counts()).every((n) => n === 10), { what: '10 events per tab', describe: counts });

  const port = server.port;
  const exit = await server.stop();
  assert.equal(exit.code, 0, 'clean exit on SIGTERM');
  const stoppedAt = Date.now();
  await waitFor(async () => (await states()).every((s) => s === 'reconnecting'), {
    what: 'tabs reconnecting',
    describe: states,
  });

  // Published while no server the tabs can reach is up: only resuming from Redis delivers these.
  const other = await Streamgate.start({ flags: { broker: redis.url } });
  let duringIds;
  try {
    duringIds = await publishMany(other, 411, 'finance', 5, { from: 10 });
  } finally {
    assert.equal((await other.stop()).code, 0, 'the other node exits cleanly');
  }

  server = await Streamgate.start({ port, flags: { broker: redis.url } });
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'tabs open again', describe: states });
  const afterIds = await publishMany(server, 411, 'finance', 10, { from: 15 });
  const all = [...beforeIds, ...duringIds, ...afterIds];
  await waitFor(async () => (await counts()).every((n) => n >= all.length), {
    what: `${all.length} events per tab`,
    describe: counts,
  });

  for (const page of tabs) {
    const r = await page.evaluate(() => ({ ids: window.sg.events.map((e) => e.id), failures: window.sg.failures }));
    assert.deepEqual(r.ids, all, 'every event once, in order');
    assert.deepEqual(r.failures, [], 'no resume failure');
  }
  assert.equal(new Set(all.map((id) => id.split('-')[0])).size, 1, 'one epoch: the history survived');

  assert.equal(acks.length, 1, `one reconnect: ${JSON.stringify(acks)}`);
  assert.equal(acks[0].resume?.finance?.recovered, true, JSON.stringify(acks[0]));

  // Reconnected with backoff: every retry waited inside its full-jitter window.
  const leader = (await tabs[0].evaluate(() => window.sg.client.isLeader)) ? tabs[0] : tabs[1];
  const log = await leader.evaluate(() => window.sg.states);
  const retries = log.filter((s) => s.state === 'reconnecting' && s.delayMs !== undefined && s.at >= stoppedAt - 1000);
  assert.ok(retries.length >= 1, `${retries.length} retries`);
  for (const r of retries) {
    const window_ = Math.min(max, base * 2 ** (r.attempt - 1));
    assert.ok(r.delayMs >= 0 && r.delayMs < window_, `retry ${r.attempt}: ${r.delayMs} ms in [0, ${window_})`);
  }
  t.diagnostic(
    `retry delays: ${retries.map((r) => r.delayMs).join(', ')} ms; ack resume: ${JSON.stringify(acks[0].resume)}`,
  );
  assert.equal(await server.connections(), 1);
});
