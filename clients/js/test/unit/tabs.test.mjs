// Several tabs of one origin: one leader holds the socket and relays; takeover when it leaves or
// crashes; the subscription is the union of what the tabs ask for. Tabs share a virtual clock,
// an in-memory BroadcastChannel network and (unless a test removes it) a Web Locks manager.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealtimeClient } from '../../dist/index.js';
import { BusNetwork, FakeClock, FakeLocks, makeEnv, settle, tokenSource } from './fakes.mjs';

const URL_ = 'wss://rt.example.com/v2/realtime/stream';

function browser({ locks = true } = {}) {
  const shared = { clock: new FakeClock(), network: new BusNetwork(), lockManager: new FakeLocks() };
  const tabs = [];
  const openTab = (services, options = {}) => {
    const env = makeEnv({ ...shared, locks, random: Math.random });
    const tokens = tokenSource();
    const client = new RealtimeClient({
      url: URL_,
      getToken: tokens.getToken,
      services,
      platform: env.platform,
      ...options,
    });
    const tab = { env, tokens, client, events: [], states: [], failures: [] };
    client.on('*', '*', (e) => tab.events.push(`${e.service}/${e.id}`));
    client.onStateChange((s) => tab.states.push(s.state));
    client.onResumeFailed((f) => tab.failures.push(f));
    tabs.push(tab);
    return tab;
  };
  const leaders = () => tabs.filter((t) => t.client.isLeader && t.client.state !== 'closed');
  const sockets = () => tabs.flatMap((t) => t.env.sockets);
  const liveSockets = () => sockets().filter((s) => s.closedWith === null && s.readyState !== 3);
  return { ...shared, tabs, openTab, leaders, sockets, liveSockets };
}

function serve(socket) {
  socket.open();
  socket.ack();
  return socket;
}

test('three tabs share one socket, and every tab gets every event once', async () => {
  const b = browser();
  const t1 = b.openTab(['finance']);
  await settle();
  const t2 = b.openTab(['finance', 'crm']);
  const t3 = b.openTab(['hr']);
  await settle();
  assert.equal(b.sockets().length, 1);
  assert.equal(b.leaders().length, 1);
  assert.equal(b.leaders()[0], t1);
  const ws = serve(t1.env.lastSocket());
  await settle();
  // The leader subscribes to the union of what the tabs want.
  const wanted = new Set([
    ...ws.sent[0].services,
    ...ws.sent.slice(1).flatMap((m) => (m.type === 'subscribe' ? m.services : [])),
  ]);
  assert.deepEqual([...wanted].sort(), ['crm', 'finance', 'hr']);
  assert.deepEqual(
    [t1, t2, t3].map((t) => t.client.state),
    ['open', 'open', 'open'],
  );
  ws.event('finance', 'a-1');
  ws.event('crm', 'a-1');
  ws.event('hr', 'a-1');
  ws.event('finance', 'a-2');
  await settle();
  assert.deepEqual(t1.events, ['finance/a-1', 'finance/a-2']);
  assert.deepEqual(t2.events, ['finance/a-1', 'crm/a-1', 'finance/a-2']);
  assert.deepEqual(t3.events, ['hr/a-1']);
  assert.deepEqual(t2.tokens.calls, []);
  assert.deepEqual(t3.tokens.calls, []);
  for (const t of b.tabs) t.client.close();
});

test('relayed events have the same shape in every tab', async () => {
  const b = browser();
  const t1 = b.openTab(['finance']);
  await settle();
  const t2 = b.openTab(['finance']);
  await settle();
  const got = [[], []];
  t1.client.on('finance', 'invoice.paid', (e) => got[0].push(e));
  t2.client.on('finance', 'invoice.paid', (e) => got[1].push(e));
  const ws = serve(t1.env.lastSocket());
  ws.event('finance', 'k-1', 'invoice.paid', { invoiceId: 'inv_1', amount: 12.5 });
  await settle();
  assert.deepEqual(got[1], got[0]);
  assert.deepEqual(Object.keys(got[1][0]), ['service', 'id', 'event', 'data', 'timestamp']);
  for (const t of b.tabs) t.client.close();
});

test('closing the leader hands over: the next tab connects and resumes from the last id', async () => {
  const b = browser();
  const t1 = b.openTab(['finance']);
  await settle();
  const t2 = b.openTab(['finance']);
  const t3 = b.openTab(['crm']);
  await settle();
  const ws = serve(t1.env.lastSocket());
  await settle();
  ws.event('finance', 'a-1');
  ws.event('crm', 'a-1');
  ws.event('finance', 'a-2');
  await settle();
  t1.client.close();
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'client closed' });
  await settle();
  const leaders = b.leaders();
  assert.equal(leaders.length, 1);
  const next = leaders[0];
  assert.ok(next === t2 || next === t3);
  assert.deepEqual(
    next.tokens.calls.map((c) => c.reason),
    ['initial'],
  );
  const ws2 = next.env.lastSocket();
  ws2.open();
  assert.deepEqual(ws2.sent[0].resume, { finance: 'a-2', crm: 'a-1' });
  assert.deepEqual([...ws2.sent[0].services].sort(), ['crm', 'finance']);
  ws2.ack({ resume: { finance: { recovered: true }, crm: { recovered: true } } });
  ws2.event('finance', 'a-3');
  await settle();
  assert.deepEqual(t2.events, ['finance/a-1', 'finance/a-2', 'finance/a-3']);
  assert.deepEqual(t3.events, ['crm/a-1']);
  assert.ok(t2.states.includes('reconnecting'));
  assert.equal(t2.client.state, 'open');
  assert.equal(t3.client.state, 'open');
  for (const t of b.tabs) t.client.close();
});

test('after a crash the new leader resumes from the oldest id a live tab has; nobody sees a duplicate', async () => {
  const b = browser();
  const t1 = b.openTab(['finance']);
  await settle();
  const t2 = b.openTab(['finance']);
  await settle();
  const t3 = b.openTab(['finance']);
  await settle();
  const ws = serve(t1.env.lastSocket());
  ws.event('finance', 'a-1');
  ws.event('finance', 'a-2');
  await settle();
  // t3 misses a-3 (the leader crashed while relaying it).
  t3.env.bus().deaf = true;
  ws.event('finance', 'a-3');
  await settle();
  t3.env.bus().deaf = false;
  // The leader's tab crashes: no goodbye, the browser frees its lock.
  t1.env.bus().muted = true;
  b.lockManager.crash(`streamgate:${URL_}`);
  await settle();
  assert.deepEqual(
    b.leaders().filter((t) => t !== t1),
    [t2],
  );
  const start = b.clock.now();
  await b.clock.advance(300);
  const ws2 = t2.env.lastSocket();
  assert.ok(ws2, 'the new leader connected');
  ws2.open();
  assert.ok(b.clock.now() - start < 2000);
  assert.deepEqual(ws2.sent[0].resume, { finance: 'a-2' });
  ws2.ack({ resume: { finance: { recovered: true } } });
  ws2.event('finance', 'a-3');
  ws2.event('finance', 'a-4');
  await settle();
  assert.deepEqual(t2.events, ['finance/a-1', 'finance/a-2', 'finance/a-3', 'finance/a-4']);
  assert.deepEqual(t3.events, ['finance/a-1', 'finance/a-2', 'finance/a-3', 'finance/a-4']);
  for (const t of [t2, t3]) t.client.close();
});

test('a follower changing its services changes the shared subscription live', async () => {
  const b = browser();
  const t1 = b.openTab(['finance']);
  await settle();
  const t2 = b.openTab(['finance']);
  await settle();
  const ws = serve(t1.env.lastSocket());
  await settle();
  t2.client.setServices(['finance', 'crm']);
  await settle();
  assert.deepEqual(ws.sent.slice(1), [{ type: 'subscribe', services: ['crm'] }]);
  ws.event('crm', 'c-1');
  await settle();
  assert.deepEqual(t1.events, []);
  assert.deepEqual(t2.events, ['crm/c-1']);
  t2.client.close();
  await settle();
  assert.deepEqual(ws.sent.slice(2), [{ type: 'unsubscribe', services: ['crm'] }]);
  t1.client.close();
});

test('resume failures and state reach the followers that asked for the service', async () => {
  const b = browser();
  const t1 = b.openTab(['finance'], { resume: { finance: 'old-3' } });
  await settle();
  const t2 = b.openTab(['finance']);
  const t3 = b.openTab(['crm']);
  await settle();
  const ws = t1.env.lastSocket();
  ws.open();
  ws.ack({ resume: { finance: { recovered: false, reason: 'epoch_changed' } } });
  await settle();
  assert.deepEqual(t1.failures, [{ service: 'finance', reason: 'epoch_changed', lastId: 'old-3' }]);
  assert.deepEqual(t2.failures, [{ service: 'finance', reason: 'epoch_changed', lastId: 'old-3' }]);
  assert.deepEqual(t3.failures, []);
  ws.serverClose(1001);
  await settle();
  assert.deepEqual(
    b.tabs.map((t) => t.client.state),
    ['reconnecting', 'reconnecting', 'reconnecting'],
  );
  for (const t of b.tabs) t.client.close();
});

test('a follower waking (page visible) makes the leader retry at once', async () => {
  const b = browser();
  const t1 = b.openTab(['finance'], { reconnect: { baseDelayMs: 60000, maxDelayMs: 60000 } });
  await settle();
  const t2 = b.openTab(['finance']);
  await settle();
  t1.env.lastSocket().serverClose(1006);
  await settle();
  assert.equal(b.sockets().length, 1);
  t2.env.lifecycle[0].wake();
  await settle();
  assert.equal(b.sockets().length, 2);
  for (const t of b.tabs) t.client.close();
});

test('without Web Locks the tabs elect a leader over the BroadcastChannel', async () => {
  const b = browser({ locks: false });
  const t1 = b.openTab(['finance']);
  const t2 = b.openTab(['finance']);
  const t3 = b.openTab(['finance']);
  await settle();
  assert.equal(b.leaders().length, 0);
  await b.clock.advance(1000);
  assert.equal(b.leaders().length, 1);
  assert.equal(b.sockets().length, 1);
  // Of simultaneous claimants the smallest tab id wins.
  const ids = [t1, t2, t3].map((t) => t.client.tabId).sort();
  assert.equal(b.leaders()[0].client.tabId, ids[0]);
  serve(b.leaders()[0].env.lastSocket());
  // Heartbeats keep the others quiet indefinitely.
  await b.clock.advance(20000);
  assert.equal(b.sockets().length, 1);
  assert.equal(b.leaders().length, 1);
  for (const t of b.tabs) t.client.close();
});

test('without Web Locks a crashed leader is replaced within 2 s', async () => {
  const b = browser({ locks: false });
  const first = b.openTab(['finance']);
  await b.clock.advance(1000);
  const t2 = b.openTab(['finance']);
  const t3 = b.openTab(['finance']);
  await b.clock.advance(1000);
  assert.deepEqual(b.leaders(), [first]);
  const ws = serve(first.env.lastSocket());
  ws.event('finance', 'a-1');
  await settle();
  first.env.bus().muted = true; // crashed: no heartbeat, no goodbye
  const crashedAt = b.clock.now();
  let connectedAt = null;
  for (let i = 0; i < 40 && connectedAt === null; i++) {
    await b.clock.advance(50);
    if ([t2, t3].some((t) => t.env.sockets.length > 0)) connectedAt = b.clock.now();
  }
  assert.ok(connectedAt !== null, 'a new leader connected');
  assert.ok(connectedAt - crashedAt <= 2000, `took ${connectedAt - crashedAt} ms`);
  const live = b.leaders().filter((t) => t !== first);
  assert.equal(live.length, 1);
  live[0].env.lastSocket().open();
  assert.deepEqual(live[0].env.lastSocket().sent[0].resume, { finance: 'a-1' });
  for (const t of [t2, t3]) t.client.close();
});

test('without Web Locks a leader that closes hands over at once', async () => {
  const b = browser({ locks: false });
  const first = b.openTab(['finance']);
  await b.clock.advance(1000);
  const second = b.openTab(['finance']);
  await b.clock.advance(1000);
  first.client.close();
  await b.clock.advance(300);
  assert.deepEqual(b.leaders(), [second]);
  assert.equal(second.env.sockets.length, 1);
  second.client.close();
});

test('two leaders that meet (claims crossed) settle on one, and the other closes its socket', async () => {
  const b = browser({ locks: false });
  const t1 = b.openTab(['finance']);
  const t2 = b.openTab(['crm']);
  // Cut the tabs off from each other so both elect themselves.
  t1.env.bus().deaf = true;
  t2.env.bus().deaf = true;
  await b.clock.advance(1000);
  assert.equal(b.leaders().length, 2);
  assert.equal(b.liveSockets().length, 2);
  t1.env.bus().deaf = false;
  t2.env.bus().deaf = false;
  await b.clock.advance(1000);
  assert.equal(b.leaders().length, 1);
  assert.equal(b.liveSockets().length, 1);
  const [leader] = b.leaders();
  const loser = leader === t1 ? t2 : t1;
  assert.ok(leader.client.tabId < loser.client.tabId);
  // The loser re-announced its services, so the winner subscribes to them too.
  const ws = serve(leader.env.lastSocket());
  await settle();
  const all = [...ws.sent[0].services, ...ws.sent.slice(1).flatMap((m) => m.services ?? [])];
  assert.deepEqual([...new Set(all)].sort(), ['crm', 'finance']);
  for (const t of b.tabs) t.client.close();
});

test('without a BroadcastChannel every tab has its own socket', async () => {
  const clock = new FakeClock();
  const a = makeEnv({ bus: false, clock });
  const c = makeEnv({ bus: false, clock });
  const ca = new RealtimeClient({ url: URL_, getToken: () => 't', platform: a.platform });
  const cc = new RealtimeClient({ url: URL_, getToken: () => 't', platform: c.platform });
  await settle();
  assert.equal(a.sockets.length + c.sockets.length, 2);
  ca.close();
  cc.close();
});

test("election 'none' gives a tab its own socket even beside others", async () => {
  const b = browser();
  b.openTab(['finance']);
  b.openTab(['finance'], { election: 'none' });
  await settle();
  assert.equal(b.sockets().length, 2);
  for (const t of b.tabs) t.client.close();
});

test('tabs with different names do not share', async () => {
  const b = browser();
  b.openTab(['finance'], { name: 'user-1' });
  b.openTab(['finance'], { name: 'user-2' });
  await settle();
  assert.equal(b.sockets().length, 2);
  for (const t of b.tabs) t.client.close();
});

test('subscriptions are counted across tabs, and a refusal reaches the followers that asked', async () => {
  const b = browser();
  const t1 = b.openTab([]);
  await settle();
  const t2 = b.openTab([]);
  await settle();
  const s1 = t1.client.subscribe('crm');
  const s2 = t2.client.subscribe('crm');
  const h2 = t2.client.subscribe('hr');
  await settle();
  const ws = t1.env.lastSocket();
  ws.open();
  ws.ack();
  await settle();
  const wanted = () => [
    ...new Set([
      ...ws.sent[0].services,
      ...ws.sent.slice(1).flatMap((m) => (m.type === 'subscribe' ? m.services : [])),
    ]),
  ];
  assert.deepEqual(wanted().sort(), ['crm', 'hr']);
  ws.receive({ type: 'subscribed', services: wanted().filter((s) => !ws.sent[0].services.includes(s)) });
  await settle();
  assert.deepEqual([s1.state, s2.state, h2.state], ['subscribed', 'subscribed', 'subscribed']);
  // The leader's handle goes; the follower's keeps the service.
  s1.unsubscribe();
  await settle();
  assert.equal(ws.sent.filter((m) => m.type === 'unsubscribe').length, 0);
  // The server refuses hr (a refreshed token): only the follower's hr handle fails.
  ws.receive({ type: 'unsubscribed', services: ['hr'] });
  ws.receive({ type: 'error', code: 'forbidden_service', message: 'not granted: hr', service: 'hr' });
  await settle();
  assert.equal(h2.state, 'error');
  assert.equal(h2.error.service, 'hr');
  assert.equal(s2.state, 'subscribed');
  // A new tab asking for hr learns of the refusal from the leader.
  const t3 = b.openTab([]);
  await settle();
  const h3 = t3.client.subscribe('hr');
  await settle();
  assert.equal(h3.state, 'error');
  for (const t of [t3, t2, t1]) t.client.close();
});
