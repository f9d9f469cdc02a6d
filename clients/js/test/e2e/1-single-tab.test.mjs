// Scenario 1: one page connects and receives published events, in order, in the server's shape.
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

test('one page receives published events in order', async () => {
  const page = await browser.newTab(web.tabUrl({ ws: server.wsUrl, org: 101, services: 'finance,crm', name: 's1' }));
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'state open' });

  const ids = await publishMany(server, 101, 'finance', 25);
  const other = await server.publish(101, 'crm', 'lead.new', { lead: 'l-1' });
  const foreign = await server.publish(102, 'finance', 'tick', { n: -1 }); // another org: never seen
  const last = await server.publish(101, 'finance', 'invoice.paid', { invoiceId: 'inv_1', amount: 12.5 });

  await waitFor(() => page.evaluate(() => window.sg.events.length >= 27), {
    what: '27 events',
    describe: () => page.evaluate(() => window.sg.events.length),
  });
  const events = await page.evaluate(() => window.sg.events);
  assert.deepEqual(
    events.map((e) => e.id),
    [...ids, other, last],
  );
  assert.ok(!events.some((e) => e.id === foreign && e.data?.n === -1));
  assert.deepEqual(
    events.slice(0, 25).map((e) => e.data.n),
    Array.from({ length: 25 }, (_, i) => i),
  );
  const paid = events.at(-1);
  assert.deepEqual(Object.keys(paid), ['service', 'id', 'event', 'data', 'timestamp']);
  assert.equal(paid.service, 'finance');
  assert.equal(paid.event, 'invoice.paid');
  assert.deepEqual(paid.data, { invoiceId: 'inv_1', amount: 12.5 });
  assert.match(paid.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  assert.equal(events[25].service, 'crm');

  const tokens = await page.evaluate(() => window.sg.tokens);
  assert.deepEqual(
    tokens.map((t) => [t.reason, t.forceRefresh]),
    [['initial', false]],
  );
  assert.equal(await server.connections(), 1);
  await page.close();
  await waitFor(async () => (await server.connections()) === 0, { what: 'the connection to close' });
});
