// The admin page /admin in headless Chromium (driven as the browser client's e2e tests drive it,
// through their harness): it loads from the server alone, and its numbers move when clients
// connect and events flow. On the public port it sits behind the API key, which the browser
// sends as Basic credentials, never in the URL. With ADMIN_SCREENSHOT=<file.png> the test also
// saves a screenshot of the page (scripts/admin-screenshot.sh makes docs/admin.png that way).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { get, publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { openStream } from './support/ws.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const harnessPath = path.resolve(here, '../../clients/js/test/e2e/support/harness.mjs');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// The browser needs playwright-core (installed with the browser client's packages) and Chromium.
function browserMissing() {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}`;
  try {
    createRequire(harnessPath).resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed (clients/js: npm ci)';
  }
  return false;
}
const skip = browserMissing();

const basic = (key) => `Basic ${Buffer.from(`operator:${key}`).toString('base64')}`;

async function text(page, id) {
  return page.evaluate((i) => document.getElementById(i).textContent, id);
}

describe('admin page on the public port (API key)', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('/admin and /admin/stats answer 401 with a Basic challenge without the key, 200 with it as Bearer or Basic password', async () => {
    for (const p of ['/admin', '/admin/stats']) {
      const none = await get(server, p);
      assert.equal(none.status, 401, p);
      assert.match(none.headers.get('www-authenticate'), /^Basic realm="streamgate admin"/);
      assert.equal((await get(server, p, { headers: { authorization: basic('wrong') } })).status, 401);
      assert.equal((await get(server, p, { apiKey: 'wrong' })).status, 401);
      assert.equal((await get(server, p, { apiKey: server.apiKey })).status, 200);
      assert.equal((await get(server, p, { headers: { authorization: basic(server.apiKey) } })).status, 200);
    }
    const page = await get(server, '/admin', { apiKey: server.apiKey });
    const csp = page.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(page.text, /(src|href)=["']?(https?:)?\/\//i, 'no external resources');
    assert.ok(!page.text.includes(server.apiKey));
  });

  test('/admin/stats: top orgs are the busiest, at most ten', async () => {
    const streams = [];
    for (let org = 1; org <= 12; org++) {
      for (let i = 0; i < (org === 7 ? 3 : 1); i++) streams.push(await openStream(server, { org, user: `u${i}` }));
    }
    const s = (await get(server, '/admin/stats', { apiKey: server.apiKey })).json;
    assert.equal(s.connections, 14);
    assert.equal(s.orgs, 12);
    assert.equal(s.topOrgs.length, 10);
    assert.deepEqual(s.topOrgs[0], { orgId: 7, connections: 3 });
    assert.equal(s.nodes.length, 1);
    assert.equal(s.nodes[0].connections, 14);
    await Promise.all(streams.map((x) => x.client.close()));
  });
});

describe('admin page in headless Chromium', { skip }, () => {
  let server;
  let admin;
  let open; // no admin listener: the page is on the public port, behind the API key
  let browser;
  before(async () => {
    [server, open] = await Promise.all([startServer({ flags: { 'admin-listen': '127.0.0.1:0' } }), startServer()]);
    const line = server.logs().find((l) => l.message === 'admin listening');
    admin = `http://127.0.0.1:${line.port}`;
    const { launchBrowser } = await import(harnessPath);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await open?.stop();
  });

  test('the page loads from the server alone and its numbers move with connections and events', { timeout: ms(60000) }, async () => {
    const page = await browser.context.newPage();
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.setViewportSize({ width: 1100, height: 600 });
    await page.goto(`${admin}/admin`);
    await waitFor(async () => (await text(page, 'status')).startsWith('updated'), { what: 'a first poll', timeout: ms(10000) });
    assert.equal(await text(page, 'connections'), '0');
    assert.equal(await text(page, 'state'), 'ready');

    const streams = [];
    for (const [org, user] of [[456, 'a'], [456, 'b'], [456, 'c'], [789, 'd'], ['acme', 'e']]) {
      streams.push(await openStream(server, { org, user, services: ['finance', 'ops'] }));
    }
    await waitFor(async () => (await text(page, 'connections')) === '5', { what: '5 connections on the page', timeout: ms(10000) });
    assert.equal(await text(page, 'orgs'), '3');
    assert.equal(await text(page, 'subscriptions'), '6');
    const top = await page.evaluate(() => [...document.querySelectorAll('#top-orgs tr')].map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(top[0], ['456', '3']);
    const nodes = await page.evaluate(() => [...document.querySelectorAll('#nodes tr')].map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0][1], 'ready');
    assert.equal(nodes[0][2], '5');

    // Events flow until the page shows a rate: bounded in count, and by waitFor's timeout.
    let published = 0;
    const moving = async () => Number((await text(page, 'events-rate')).replace(/,/g, '')) > 0 && Number((await text(page, 'deliveries-rate')).replace(/,/g, '')) > 0;
    await waitFor(
      async () => {
        for (let i = 0; i < 20 && published < 4000; i++, published++) {
          await publishOk(server, { orgId: 456, service: 'finance', event: 'tick', data: { i: published } });
        }
        return moving();
      },
      { what: 'events/s and deliveries/s above 0', timeout: ms(20000), interval: 1 },
    );
    const deliveries = Number((await text(page, 'deliveries-total')).replace(/,/g, ''));
    assert.ok(deliveries > 0 && deliveries <= published * 3, `deliveries ${deliveries} for ${published} events to 3 clients`);
    const points = await page.evaluate(() => document.getElementById('line-deliveries').getAttribute('points'));
    assert.ok(points.split(' ').length >= 1 && points.length > 0, 'the chart has points');

    if (process.env.ADMIN_SCREENSHOT) {
      // A few more seconds of traffic, so the chart shows a line rather than a point.
      const chartPoints = () => page.evaluate(() => document.getElementById('line-events').getAttribute('points').split(' ').length);
      await waitFor(
        async () => {
          for (let i = 0; i < 20 && published < 20000; i++, published++) {
            await publishOk(server, { orgId: 456, service: 'finance', event: 'tick', data: { i: published } });
          }
          return (await chartPoints()) >= 8;
        },
        { what: 'eight points on the chart', timeout: ms(30000), interval: 1 },
      );
      await page.screenshot({ path: process.env.ADMIN_SCREENSHOT });
    }

    await Promise.all(streams.map((s) => s.client.close()));
    await waitFor(async () => (await text(page, 'connections')) === '0', { what: 'connections back to 0', timeout: ms(10000) });
    assert.ok(requested.length > 1);
    for (const url of requested) assert.ok(url.startsWith(admin), `only the server is asked: ${url}`);
    await page.close();
  });

  test('on the public port the browser sends the key as Basic credentials, never in the URL', { timeout: ms(30000) }, async () => {
    const page = await browser.context.newPage();
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.setExtraHTTPHeaders({ authorization: basic(open.apiKey) });
    const res = await page.goto(`${open.httpUrl}/admin`);
    assert.equal(res.status(), 200);
    await waitFor(async () => (await text(page, 'status')).startsWith('updated'), { what: 'a poll with the key', timeout: ms(10000) });
    assert.equal(await text(page, 'connections'), '0');
    for (const url of urls) assert.ok(!url.includes(open.apiKey), url);
    await page.close();
  });
});
