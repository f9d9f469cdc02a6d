// Scenario 3: the leader tab closes while events are being published; another tab takes over
// within 2 s and every remaining tab ends up with every event exactly once. Run with Web Locks
// (the normal path) and with the BroadcastChannel election (the fallback).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Streamgate, WebServer, launchBrowser, waitFor } from './support/harness.mjs';
import { setTimeout as delay } from 'node:timers/promises';

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

async function failover({ org, election, name, crash }) {
  const url = web.tabUrl({ ws: server.wsUrl, org, services: 'finance', name, election });
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await browser.newTab(url));
  const states = () => Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.state)));
  await waitFor(async () => (await states()).every((s) => s === 'open'), { what: 'all tabs open', describe: states });
  const leaderIndex = (await Promise.all(tabs.map((p) => p.evaluate(() => window.sg.client.isLeader)))).indexOf(true);
  assert.ok(leaderIndex >= 0, 'a leader');
  const leader = tabs[leaderIndex];
  const rest = tabs.filter((p) => p !== leader);
  let crashed = false;
  leader.on('crash', () => {
    crashed = true;
  });

  // Publish steadily (one event every ~10 ms) until told to stop.
  const ids = [];
  let publishing = true;
  const publisher = (async () => {
    for (let n = 0; publishing && n < 2000; n++) {
      ids.push(await server.publish(org, 'finance', 'tick', { n }));
      await delay(10);
    }
  })();
  await waitFor(() => ids.length >= 30, { what: '30 events published' });

  const closedAt = Date.now();
  if (crash) {
    // A crash: the renderer dies without running any page code (no pagehide, no goodbye); the
    // browser frees its lock and closes its BroadcastChannel. Page.crash never answers.
    const cdp = await browser.context.newCDPSession(leader);
    cdp.send('Page.crash').catch(() => {});
    await waitFor(() => crashed, { timeout: 5000, what: 'the leader tab to crash' });
  } else {
    await leader.close();
  }
  const takeover = await waitFor(
    async () => {
      for (const page of rest) {
        const r = await page.evaluate(() => ({
          leader: window.sg.client.isLeader,
          state: window.sg.client.state,
          since: window.sg.leaderSince,
          states: window.sg.states,
        }));
        if (r.leader && r.state === 'open') return r;
      }
      return null;
    },
    { timeout: 5000, interval: 20, what: 'a new leader with an open socket' },
  );
  const openAt = takeover.states.filter((s) => s.state === 'open').at(-1).at;
  const elapsed = openAt - closedAt;

  await waitFor(() => ids.length >= 80, { what: '80 events published' });
  publishing = false;
  await publisher;
  const counts = () => Promise.all(rest.map((p) => p.evaluate(() => window.sg.events.length)));
  await waitFor(async () => (await counts()).every((n) => n >= ids.length), {
    what: `${ids.length} events in each remaining tab`,
    describe: async () => ({ counts: await counts(), published: ids.length }),
  });
  for (const page of rest) {
    const got = await page.evaluate(() => window.sg.events.map((e) => e.id));
    assert.deepEqual(got, ids, 'every event exactly once, in order');
  }
  await waitFor(async () => (await server.connections()) === 1, { what: 'one connection again' });
  for (const page of rest) await page.close();
  if (crash) await leader.close().catch(() => {});
  await waitFor(async () => (await server.connections()) === 0, { what: 'no connections' });
  return elapsed;
}

test('closing the leader tab (Web Locks): another tab leads within 2 s, no event lost or repeated', async (t) => {
  const elapsed = await failover({ org: 301, name: 's3-locks' });
  t.diagnostic(`new leader open ${elapsed} ms after the old one went away`);
  assert.ok(elapsed < 2000, `new leader open after ${elapsed} ms`);
});

test('the leader tab crashing (Web Locks): another tab leads within 2 s, no event lost or repeated', async (t) => {
  const elapsed = await failover({ org: 302, name: 's3-crash', crash: true });
  t.diagnostic(`new leader open ${elapsed} ms after the old one went away`);
  assert.ok(elapsed < 2000, `new leader open after ${elapsed} ms`);
});

test('closing the leader tab (BroadcastChannel election): another tab leads within 2 s', async (t) => {
  const elapsed = await failover({ org: 303, name: 's3-bc', election: 'broadcast' });
  t.diagnostic(`new leader open ${elapsed} ms after the old one went away`);
  assert.ok(elapsed < 2000, `new leader open after ${elapsed} ms`);
});

test('the leader tab crashing (BroadcastChannel election): another tab leads within 2 s', async (t) => {
  const elapsed = await failover({ org: 304, name: 's3-bc-crash', election: 'broadcast', crash: true });
  t.diagnostic(`new leader open ${elapsed} ms after the old one went away`);
  assert.ok(elapsed < 2000, `new leader open after ${elapsed} ms`);
});
