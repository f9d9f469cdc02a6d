// Scenario 8: subscription objects against the real server. The token's `services` claim lacks
// finance: the server refuses it (forbidden_service, 1008), the finance subscription fails with
// that error, and the client reconnects at once without it (the reconnect window here is 30 s, so
// a client that waited it would time out) while crm streams on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { claims, mintHS256 } from '../../../../tests/integration/support/tokens.mjs';
import { SECRET, Streamgate, WebServer, launchBrowser, publishMany, waitFor } from './support/harness.mjs';

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

test('a refused service fails only its own subscription; the rest streams on one socket', async () => {
  const token = mintHS256(claims({ org: 801, user: 'sub-user', services: ['crm'] }), SECRET);
  const page = await browser.newTab(`${web.origin}/pages/blank`);
  await page.evaluate(
    async ({ url, token }) => {
      const { RealtimeClient } = await import('/dist/index.js');
      const log = { events: [], states: [], errors: [], subStates: { finance: [], crm: [] } };
      window.s8 = log;
      const client = new RealtimeClient({
        url,
        name: 's8',
        getToken: () => token,
        reconnect: { baseDelayMs: 30000, maxDelayMs: 30000 },
      });
      window.client = client;
      client.onStateChange((s) => log.states.push({ state: s.state, delayMs: s.delayMs, closeCode: s.closeCode }));
      client.onError((e) => log.errors.push(e));
      for (const service of ['finance', 'crm']) {
        const sub = client.subscribe(service);
        window[service] = sub;
        sub.on('state', (state) => log.subStates[service].push(state));
        sub.on('event', (e) => log.events.push(`${e.service}/${e.id}`));
      }
    },
    { url: server.wsUrl, token },
  );
  const read = () =>
    page.evaluate(() => ({
      ...window.s8,
      finance: window.finance.state,
      financeError: window.finance.error,
      crm: window.crm.state,
      client: window.client.state,
    }));
  await waitFor(async () => (await read()).crm === 'subscribed', { what: 'crm subscribed', describe: read });
  const seen = await read();
  assert.equal(seen.finance, 'error');
  assert.equal(seen.financeError.code, 'forbidden_service');
  assert.equal(seen.financeError.service, 'finance');
  assert.deepEqual(seen.subStates, { finance: ['error'], crm: ['subscribed'] });
  // The refused handshake closed with 1008 and the retry came at once, not after 30 s.
  assert.deepEqual(
    seen.states.filter((s) => s.state === 'reconnecting'),
    [{ state: 'reconnecting', delayMs: 0, closeCode: 1008 }],
  );
  assert.equal(seen.client, 'open');

  const ids = await publishMany(server, 801, 'crm', 3);
  await server.publish(801, 'finance', 'tick', { n: 0 });
  await waitFor(async () => (await read()).events.length >= 3, { what: 'crm events', describe: read });
  assert.deepEqual(
    (await read()).events,
    ids.map((id) => `crm/${id}`),
  );
  assert.equal(await server.connections(), 1);
  await page.evaluate(() => window.client.close());
  await page.close();
});
