// Scenario 4 (memory broker): the server process restarts. Clients reconnect with backoff, the app
// is told that history from before the restart could not be recovered (epoch_changed), and then
// gets every new event exactly once. The Redis-broker half (nothing lost across a restart) is
// 4-server-restart-redis.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Streamgate, WebServer, launchBrowser, publishMany, waitFor } from './support/harness.mjs';

let server;
let web;
let browser;

before(async () => {
  [server, web, browser] = await Promise.all([Streamgate.start(), WebServer.start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await web?.close();
  await server?.stop();
});

test('after a restart the app learns history was lost, then gets every new event once', async (t) => {
  const base = 200;
  const max = 1600;
  const url = web.tabUrl({ ws: server.wsUrl, org: 401, services: 'finance,crm', name: 's4', base, max });
  const tabs = [await browser.newTab(url), await browser.newTab(url)];
  const states = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.state)));
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'tabs open', describe: states });
  const leader = (await tabs[0].evaluate(() => window.sg.client.isLeader)) ? tabs[0] : tabs[1];

  const before = await publishMany(server, 401, 'finance', 10);
  const counts = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.events.length)));
  await waitFor(async () => (await counts()).every((n) => n === 10), { what: '10 events per tab', describe: counts });

  const port = server.port;
  const exit = await server.stop();
  assert.equal(exit.code, 0, 'clean exit on SIGTERM');
  await waitFor(async () => (await states()).every((s) => s === 'reconnecting'), {
    what: 'tabs reconnecting',
    describe: states,
  });
  const stoppedAt = Date.now();
  // Let the leader fail a few attempts against the closed port before the server returns.
  await waitFor(() => leader.evaluate(() => window.sg.tokens.length >= 5), {
    what: 'four failed attempts',
    describe: () => leader.evaluate(() => window.sg.tokens),
  });
  server = await Streamgate.start({ port });
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'tabs open again', describe: states });

  // Backoff: each retry came after a delay inside its (doubling, capped) full-jitter window.
  const log = await leader.evaluate(() => ({ tokens: window.sg.tokens, states: window.sg.states }));
  const retries = log.states.filter(
    (s) => s.state === 'reconnecting' && s.delayMs !== undefined && s.at >= stoppedAt - 1000,
  );
  assert.ok(retries.length >= 4, `${retries.length} retries`);
  for (const r of retries) {
    const window_ = Math.min(max, base * 2 ** (r.attempt - 1));
    assert.ok(r.delayMs >= 0 && r.delayMs < window_, `retry ${r.attempt}: ${r.delayMs} ms in [0, ${window_})`);
  }
  assert.deepEqual(
    retries.slice(0, 4).map((r) => r.attempt),
    [1, 2, 3, 4],
  );
  // The first retry after the drop is a plain reconnect; attempts that never opened suspect the token.
  const reasons = log.tokens.map((tk) => tk.reason);
  assert.equal(reasons[0], 'initial');
  assert.equal(reasons[1], 'reconnect');
  assert.ok(
    reasons.slice(2).every((r) => r === 'rejected'),
    reasons.join(),
  );
  t.diagnostic(`retry delays: ${retries.map((r) => r.delayMs).join(', ')} ms`);

  // History was lost with the process: each tab that asked for the service is told.
  for (const page of tabs) {
    const failures = await page.evaluate(() => window.sg.failures);
    assert.deepEqual(failures, [{ service: 'finance', reason: 'epoch_changed', lastId: before.at(-1) }]);
  }

  const afterIds = await publishMany(server, 401, 'finance', 10, { from: 10 });
  await waitFor(async () => (await counts()).every((n) => n === 20), { what: '20 events per tab', describe: counts });
  for (const page of tabs) {
    assert.deepEqual(await page.evaluate(() => window.sg.events.map((e) => e.id)), [...before, ...afterIds]);
  }
  assert.notEqual(afterIds[0].split('-')[0], before[0].split('-')[0], 'a new epoch');
  assert.equal(await server.connections(), 1);
});

test("the browser's online event retries at once instead of waiting out the backoff", async () => {
  const url = web.tabUrl({
    ws: server.wsUrl,
    org: 402,
    services: 'finance',
    name: 's4-online',
    base: 20000,
    max: 20000,
  });
  const page = await browser.newTab(url);
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'state open' });
  const port = server.port;
  await server.stop();
  // Failed attempts until one schedules its retry at least 5 s out (3 in 4 do, in a 20 s window).
  const scheduled = await waitFor(
    () => page.evaluate(() => window.sg.states.find((s) => s.state === 'reconnecting' && s.delayMs >= 5000)),
    { timeout: 30000, what: 'a retry scheduled 5 s or more ahead' },
  );
  server = await Streamgate.start({ port });
  const attemptsBefore = await page.evaluate(() => window.sg.tokens.length);
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'open again' });
  const r = await page.evaluate(() => ({ states: window.sg.states, tokens: window.sg.tokens.length }));
  const openedAt = r.states.at(-1).at;
  assert.equal(r.states.at(-1).state, 'open');
  assert.equal(r.tokens, attemptsBefore + 1, 'one attempt, made at once');
  assert.ok(
    openedAt < scheduled.at + scheduled.delayMs - 2000,
    `open ${openedAt - scheduled.at} ms after scheduling a ${scheduled.delayMs} ms wait`,
  );
  await page.close();
});
