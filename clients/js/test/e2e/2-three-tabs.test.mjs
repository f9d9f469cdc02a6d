// Scenario 2: three tabs of one origin share one WebSocket; every event reaches every tab once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Streamgate, WebServer, launchBrowser, publishMany, record, waitFor } from './support/harness.mjs';

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

test('three tabs: exactly one connection on the server, every event in every tab exactly once', async () => {
  const url = web.tabUrl({ ws: server.wsUrl, org: 201, services: 'finance', name: 's2' });
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await browser.newTab(url));
  const states = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.state)));
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'all tabs open', describe: states });

  const leaders = await Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.isLeader)));
  assert.equal(leaders.filter(Boolean).length, 1, `one leader: ${leaders}`);
  assert.equal(await server.connections(), 1);

  const ids = await publishMany(server, 201, 'finance', 40);
  const counts = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.events.length)));
  await waitFor(async () => (await counts()).every((n) => n >= 40), {
    what: '40 events in each tab',
    describe: counts,
  });
  for (const page of tabs) {
    const r = await record(page);
    assert.deepEqual(r.ids, ids);
  }
  // Only the leader ever asked for a token.
  const tokenCalls = await Promise.all(tabs.map((p) => p.evaluate(() => window.sg.tokens.length)));
  assert.deepEqual(
    tokenCalls.map((n, i) => (leaders[i] ? n === 1 : n === 0)),
    [true, true, true],
  );
  assert.equal(await server.connections(), 1);
  // A few more after everything settled: still one socket, still exactly once.
  const more = await publishMany(server, 201, 'finance', 5, { from: 40 });
  await waitFor(async () => (await counts()).every((n) => n >= 45), {
    what: '45 events in each tab',
    describe: counts,
  });
  for (const page of tabs) assert.deepEqual((await record(page)).ids, [...ids, ...more]);
  assert.equal(await server.connections(), 1);
});
