// Scenario 6: a React page using <RealtimeProvider> and the hooks renders live events; re-renders
// (ten a second, new getToken and services identities each time, StrictMode) open one socket and
// call getToken once; changing services subscribes live; a feed of a service the provider does not
// list subscribes it itself (useRealtimeEvent) and lets it go on unmount; unmounting closes the socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { build } from 'esbuild';
import { PACKAGE_DIR, Streamgate, WebServer, launchBrowser, publishMany, waitFor } from './support/harness.mjs';

let server;
let web;
let browser;

before(async () => {
  await build({
    entryPoints: [path.join(PACKAGE_DIR, 'test/e2e/pages/react-app.tsx')],
    outfile: path.join(PACKAGE_DIR, 'test/e2e/.out/react-app.js'),
    bundle: true,
    format: 'esm',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'error',
  });
  [server, web, browser] = await Promise.all([Streamgate.start(), WebServer.start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await web?.close();
  await server?.stop();
});

test('the provider and hooks render live events without reconnecting on re-render', async () => {
  const page = await browser.newTab(`${web.origin}/pages/react.html?ws=${encodeURIComponent(server.wsUrl)}&org=601`);
  await page.waitForSelector('#state:text("open")', { timeout: 10000 });

  const ids = await publishMany(server, 601, 'finance', 12);
  await waitFor(
    () =>
      page
        .locator('#feed-finance li')
        .count()
        .then((n) => n >= 12),
    { what: '12 rendered events' },
  );
  assert.deepEqual(await page.locator('#feed-finance li').evaluateAll((lis) => lis.map((li) => li.dataset.id)), ids);
  assert.equal(await page.locator('#feed-finance li').first().textContent(), 'finance tick {"n":0}');

  // Twenty more re-renders of the whole tree: still one socket, one token.
  const ticks = Number(await page.locator('#ticks').textContent());
  await waitFor(async () => Number(await page.locator('#ticks').textContent()) >= ticks + 20, {
    what: '20 re-renders',
  });
  const log = await page.evaluate(() => window.reactLog);
  assert.deepEqual(log.tokens, ['initial']);
  assert.equal(await server.connections(), 1);
  assert.equal(await page.locator('#state').textContent(), 'open');
  // Every event reached the handler once (StrictMode and re-renders didn't add subscriptions).
  assert.equal(log.handled.filter((h) => h.startsWith('finance:')).length, 12);

  // Changing the services prop subscribes live on the same socket.
  await page.click('#crm');
  await waitFor(
    () =>
      page
        .locator('#feed-crm')
        .count()
        .then((n) => n === 1),
    { what: 'crm feed mounted' },
  );
  // The subscribe is answered before events reach it; publish until one shows up.
  let crmId;
  await waitFor(
    async () => {
      crmId = await server.publish(601, 'crm', 'lead.new', { lead: 1 });
      return page
        .locator(`#feed-crm li[data-id="${crmId}"]`)
        .count()
        .then((n) => n === 1);
    },
    { what: 'a crm event rendered', interval: 100 },
  );
  assert.equal(await server.connections(), 1);
  assert.deepEqual((await page.evaluate(() => window.reactLog)).tokens, ['initial']);

  // A feed of a service the provider doesn't list: useRealtimeEvent subscribes it itself, on the
  // same socket, and lets it go when the feed unmounts.
  const services = () => page.evaluate(() => [...window.reactClient.services]);
  assert.deepEqual(await services(), ['finance', 'crm']);
  await page.click('#hr');
  await waitFor(async () => (await services()).includes('hr'), { what: 'hr asked for' });
  const hrIds = [];
  await waitFor(
    async () => {
      hrIds.push(await server.publish(601, 'hr', 'hired', { n: hrIds.length }));
      return page
        .locator(`#feed-hr li[data-id="${hrIds.at(-1)}"]`)
        .count()
        .then((n) => n === 1);
    },
    { what: 'an hr event rendered', interval: 100 },
  );
  // StrictMode mounted the hook twice: still one handler call per rendered event.
  const rendered = await page.locator('#feed-hr li').evaluateAll((lis) => lis.map((li) => li.dataset.id));
  assert.ok(rendered.length >= 1);
  assert.deepEqual(rendered, hrIds.slice(hrIds.length - rendered.length));
  const handled = (await page.evaluate(() => window.reactLog)).handled.filter((h) => h.startsWith('hr:'));
  assert.equal(handled.length, rendered.length);
  // useSubscription: a second handle of hr, its state rendered.
  await page.click('#hr-state');
  await page.waitForSelector('#state-hr:text("subscribed")', { timeout: 10000 });
  await page.click('#hr');
  await page.click('#hr-state');
  await waitFor(async () => !(await services()).includes('hr'), { what: 'hr let go when its last hook unmounted' });
  assert.equal(await server.connections(), 1);

  // Unmounting the provider closes the socket.
  await page.click('#toggle');
  await waitFor(async () => (await server.connections()) === 0, { what: 'the socket closed on unmount' });
  // Mounting again connects again.
  await page.click('#toggle');
  await page.waitForSelector('#state:text("open")', { timeout: 10000 });
  assert.equal(await server.connections(), 1);
  await page.close();
});
