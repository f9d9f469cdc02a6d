// Scenario 5: tokens. An expiring token whose in-band refresh fails (the refreshed token is
// refused) gets the connection closed with 4001; the client asks getToken for a fresh one and the
// stream continues without a gap or a repeat: reconnecting stays the fallback. A token refused at
// the upgrade (401, which a browser sees only as a socket closing before it opened) also leads to
// a fresh token rather than a retry loop with the stale one.
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

test('an expired token (4001) is replaced through getToken and the stream continues', async () => {
  // The first token lives 2-3 s (exp is in whole seconds; the server runs with --jwt-leeway 0);
  // the client's in-band refresh of it is refused (badRefresh), so the token runs out.
  const page = await browser.newTab(
    web.tabUrl({ ws: server.wsUrl, org: 501, services: 'finance', name: 's5', ttl: 3, badRefresh: true }),
  );
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'state open' });
  const early = await publishMany(server, 501, 'finance', 5);

  await waitFor(() => page.evaluate(() => window.sg.tokens.length >= 3), {
    timeout: 8000,
    what: 'a getToken call after the 4001',
    describe: () => page.evaluate(() => window.sg.tokens),
  });
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'open again' });
  const late = await publishMany(server, 501, 'finance', 5, { from: 5 });
  await waitFor(() => page.evaluate(() => window.sg.events.length >= 10), { what: '10 events' });

  const r = await page.evaluate(() => ({
    ids: window.sg.events.map((e) => e.id),
    tokens: window.sg.tokens,
    closes: window.sg.states.filter((s) => s.closeCode !== undefined).map((s) => s.closeCode),
    errors: window.sg.errors,
  }));
  assert.deepEqual(r.ids, [...early, ...late]);
  assert.deepEqual(
    r.tokens.map((t) => [t.reason, t.forceRefresh]),
    [
      ['initial', false],
      ['refresh', true],
      ['expired', true],
    ],
  );
  assert.deepEqual(r.closes, [4001]);
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ['bad_signature', 'token_expired'],
  );
  await page.close();
});

test('a token refused at the upgrade (401) is replaced, not retried', async () => {
  const page = await browser.newTab(
    web.tabUrl({ ws: server.wsUrl, org: 502, services: 'finance', name: 's5b', bad: true }),
  );
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), {
    what: 'state open',
    describe: () => page.evaluate(() => window.sg.tokens),
  });
  const r = await page.evaluate(() => ({ tokens: window.sg.tokens, states: window.sg.states }));
  assert.deepEqual(
    r.tokens.map((t) => [t.reason, t.forceRefresh]),
    [
      ['initial', false],
      ['rejected', true],
    ],
  );
  // 1006: the browser's code for a connection that failed (here: an HTTP 401 to the upgrade).
  assert.deepEqual(
    r.states.map((s) => [s.state, s.closeCode]),
    [
      ['reconnecting', 1006],
      ['open', undefined],
    ],
  );
  const ids = await publishMany(server, 502, 'finance', 3);
  await waitFor(() => page.evaluate(() => window.sg.events.length >= 3), { what: '3 events' });
  assert.deepEqual(await page.evaluate(() => window.sg.events.map((e) => e.id)), ids);
  // The web server saw exactly one bad and one good token request.
  assert.deepEqual(
    web.tokenRequests.filter((q) => q.org === '502').map((q) => Boolean(q.bad)),
    [true, false],
  );
  await page.close();
});
