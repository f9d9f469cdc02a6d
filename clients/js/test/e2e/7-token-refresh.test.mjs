// Scenario 7: in-band token refresh. Every token lives 5 s and the server tolerates no skew
// (--jwt-leeway 0), yet one tab keeps one socket for 30 s: the leader sends each fresh token on the
// open socket at ~80 % of the old one's life (or on the server's `expiring`), so the server sees one
// upgrade, getToken runs about once per token life, and every event arrives exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promValue } from '../../../../tests/integration/support/http.mjs';
import { Streamgate, WebServer, launchBrowser, waitFor } from './support/harness.mjs';

const RUN_MS = 30_000;
const TTL_S = 5;

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

const upgrades = () => promValue(server.server, 'streamgate_connections_total');

test('one tab keeps one socket for 30 s on 5 s tokens', { timeout: RUN_MS + 30_000 }, async () => {
  const before = await upgrades();
  const page = await browser.newTab(
    web.tabUrl({ ws: server.wsUrl, org: 701, services: 'finance', name: 's7', ttlAll: TTL_S }),
  );
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'state open' });

  // One event every 500 ms for 30 s, each awaited before the next: paced by the clock, bounded in
  // count (60) and time.
  const started = Date.now();
  const ids = [];
  for (let i = 0; i < RUN_MS / 500; i++) {
    await waitFor(() => Date.now() >= started + i * 500, { timeout: 2000, interval: 20, what: `slot ${i}` });
    ids.push(await server.publish(701, 'finance', 'tick', { n: i }));
  }
  await waitFor(() => page.evaluate((n) => window.sg.events.length >= n, ids.length), {
    what: `${ids.length} events`,
    describe: () => page.evaluate(() => window.sg.events.length),
  });

  const r = await page.evaluate(() => ({
    ids: window.sg.events.map((e) => e.id),
    tokens: window.sg.tokens.map((t) => t.reason),
    states: window.sg.states.map((s) => s.state),
    errors: window.sg.errors.map((e) => e.code),
  }));
  assert.deepEqual(r.ids, ids, 'every event once, in order');
  assert.deepEqual(r.states, ['open'], 'the socket never dropped');
  assert.deepEqual(r.errors, []);
  assert.equal(r.tokens[0], 'initial');
  assert.ok(
    r.tokens.slice(1).every((reason) => reason === 'refresh'),
    `after the first, only refreshes: ${r.tokens}`,
  );
  // A refresh at ~80 % of each 4-5 s life (exp is in whole seconds): 30 s / 5 s = 6 token lives,
  // with a refresh every 3.2-4 s that is 7 to 10 getToken calls; never one per second.
  assert.ok(r.tokens.length >= 6 && r.tokens.length <= 11, `getToken calls: ${r.tokens.length}`);
  assert.equal((await upgrades()) - before, 1, 'one WebSocket upgrade in 30 s');
  assert.equal(await server.connections(), 1);
  await page.close();
});
