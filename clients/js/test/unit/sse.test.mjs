// The Server-Sent Events transport and the fallback to it: a scripted WebSocket that never opens,
// a scripted fetch for /v2/realtime/sse (FakeStream), a virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealtimeClient } from '../../dist/index.js';
import { BusNetwork, FakeClock, FakeLocks, FakeStream, makeEnv, settle, tokenSource } from './fakes.mjs';

// The client loads the SSE code on first use; loaded here first, that import settles within the
// few ticks `settle()` waits.
await import('../../dist/sse_transport.js');

const URL_ = 'wss://rt.example.com/v2/realtime/stream';

function solo(options = {}, envOptions = {}) {
  const env = makeEnv({ bus: false, locks: false, sse: true, ...envOptions });
  const tokens = tokenSource();
  const states = [];
  const errors = [];
  const events = [];
  const client = new RealtimeClient({
    url: URL_,
    getToken: tokens.getToken,
    services: ['finance', 'crm'],
    platform: env.platform,
    reconnect: { baseDelayMs: 500, maxDelayMs: 4000 },
    ...options,
  });
  client.onStateChange((s) => states.push(s));
  client.onError((e) => errors.push(e));
  const data = [];
  client.on('*', '*', (e) => {
    events.push(`${e.service}/${e.id}`);
    data.push(e.data);
  });
  return { env, tokens, client, states, errors, events, data };
}

/** Fails `count` WebSocket attempts before they open, running the retry timers in between. */
async function failWebSockets(env, count) {
  for (let i = 0; i < count; i++) {
    await settle();
    env.lastSocket().serverClose(1006);
    await settle();
    if (env.streams.length === 0) await env.clock.advance(env.clock.nextDelay());
  }
}

/** Falls back to SSE and serves the stream's ack at `positions`. */
async function onSse(ctx, positions = {}) {
  await failWebSockets(ctx.env, 3);
  const stream = ctx.env.lastStream();
  stream.respond(200);
  stream.ack({}, positions);
  await settle();
  return stream;
}

test('after 3 WebSocket attempts that fail to open, the client streams over SSE', async () => {
  const ctx = solo();
  const { env, client, states, events } = ctx;
  await failWebSockets(env, 2);
  assert.equal(env.streams.length, 0);
  await failWebSockets(env, 1);
  assert.equal(env.sockets.length, 3);
  assert.equal(env.streams.length, 1);
  const stream = env.lastStream();
  const url = new URL(stream.url);
  assert.equal(`${url.origin}${url.pathname}`, 'https://rt.example.com/v2/realtime/sse');
  assert.deepEqual(stream.services, ['finance', 'crm']);
  assert.equal(stream.token, 'token-4');
  assert.equal(stream.cursor, null);
  assert.equal(stream.init.credentials, 'omit');
  stream.respond(200);
  stream.ack({}, { finance: 'a-0', crm: 'b-0' });
  await settle();
  assert.equal(client.state, 'open');
  assert.equal(client.transport, 'sse');
  assert.equal(states.at(-1).transport, 'sse');
  stream.event('finance', 'a-1', { finance: 'a-1', crm: 'b-0' }, 'invoice.paid', { n: 1 });
  stream.write(': ping\n\n');
  stream.event('crm', 'b-1', { finance: 'a-1', crm: 'b-1' });
  await settle();
  assert.deepEqual(events, ['finance/a-1', 'crm/b-1']);
  client.close();
  assert.equal(stream.aborted, true);
});

test('fallbackAfter sets N; transports: [websocket] never falls back; [sse] never tries a WebSocket', async () => {
  const one = solo({ fallbackAfter: 1 });
  await failWebSockets(one.env, 1);
  assert.equal(one.env.streams.length, 1);
  one.client.close();

  const ws = solo({ transports: ['websocket'] });
  await failWebSockets(ws.env, 6);
  await ws.env.clock.advance(10000);
  assert.equal(ws.env.streams.length, 0);
  ws.client.close();

  const sse = solo({ transports: ['sse'], sseUrl: 'https://other.example.com/events' });
  await settle();
  assert.equal(sse.env.sockets.length, 0);
  assert.ok(sse.env.lastStream().url.startsWith('https://other.example.com/events?services=finance%2Ccrm&'));
  assert.equal(sse.client.transport, 'sse');
  sse.client.close();

  assert.throws(() => solo({ transports: [] }), /transports/);
  assert.throws(() => solo({ transports: ['longpoll'] }), /transports/);
});

test('a stream the server ends resumes from its last cursor: no gap, even for a quiet service', async () => {
  const ctx = solo();
  const { env, client, events } = ctx;
  const stream = await onSse(ctx, { finance: 'a-0', crm: 'b-5' });
  stream.event('finance', 'a-1', { finance: 'a-1', crm: 'b-5' });
  stream.write('retry: 1500\n\n');
  await settle();
  stream.end();
  await settle();
  assert.equal(client.state, 'reconnecting');
  // At least the stream's `retry:`.
  assert.ok(env.clock.nextDelay() >= 1500);
  await env.clock.advance(env.clock.nextDelay());
  const next = env.lastStream();
  assert.notEqual(next, stream);
  // crm had no event: its position is the cursor's, so nothing published meanwhile is missed.
  assert.deepEqual(next.cursor, { finance: 'a-1', crm: 'b-5' });
  next.respond(200);
  next.ack({ resume: { finance: { recovered: true }, crm: { recovered: true } } }, { finance: 'a-1', crm: 'b-5' });
  next.event('crm', 'b-6', { finance: 'a-1', crm: 'b-6' });
  await settle();
  assert.deepEqual(events, ['finance/a-1', 'crm/b-6']);
  assert.equal(client.state, 'open');
  client.close();
});

test('changing the services on SSE reopens the stream with the new list and the cursor', async () => {
  const ctx = solo({ resume: { hr: 'h-9' } });
  const { env, client } = ctx;
  const stream = await onSse(ctx, { finance: 'a-3', crm: 'b-0' });
  client.setServices(['finance', 'hr']);
  await settle();
  assert.equal(stream.aborted, true);
  const next = env.lastStream();
  assert.deepEqual(next.services, ['finance', 'hr']);
  // The server's position for finance, the client's last id for hr; crm is left out.
  assert.deepEqual(next.cursor, { finance: 'a-3', hr: 'h-9' });
  assert.equal(client.state, 'open'); // not reported as a disconnection
  const failures = [];
  client.onResumeFailed((f) => failures.push(f));
  next.respond(200);
  next.ack({ resume: { finance: { recovered: true }, hr: { recovered: false, reason: 'too_old' } } });
  await settle();
  assert.deepEqual(failures, [{ service: 'hr', reason: 'too_old', lastId: 'h-9' }]);
  client.close();
});

for (const [server, body] of [
  ['names it in `service`', { error: 'forbidden_service', message: 'refused', service: 'finance' }],
  [
    'names it only in the message (older)',
    { error: 'forbidden_service', message: 'the token does not allow service finance' },
  ],
]) {
  test(`a service the SSE endpoint refuses fails only its subscription; the stream reopens at once without it (the server ${server})`, async () => {
    const ctx = solo({ services: [] });
    const { env, client } = ctx;
    const finance = client.subscribe('finance');
    const crm = client.subscribe('crm');
    await failWebSockets(env, 3);
    const stream = env.lastStream();
    stream.respond(403, JSON.stringify(body));
    await settle();
    assert.equal(finance.state, 'error');
    assert.equal(finance.error.service, 'finance');
    assert.equal(env.clock.nextDelay(), 0);
    await env.clock.advance(0);
    const next = env.lastStream();
    assert.deepEqual(next.services, ['crm']);
    next.respond(200);
    next.ack();
    await settle();
    assert.equal(crm.state, 'subscribed');
    assert.equal(finance.state, 'error');
    client.close();
  });
}

test('on SSE the token is replaced by reopening the stream before it expires', async () => {
  const env = makeEnv({ bus: false, locks: false, sse: true });
  const calls = [];
  const jwt = (exp) => `h.${Buffer.from(JSON.stringify({ exp: exp / 1000 })).toString('base64url')}.s${calls.length}`;
  const client = new RealtimeClient({
    url: URL_,
    services: ['finance'],
    transports: ['sse'],
    platform: env.platform,
    pingIntervalMs: 200_000, // no `: ping` in this test: the idle limit stays out of the way
    getToken: (request) => {
      calls.push(request.reason);
      return jwt(env.clock.now() + 100_000);
    },
  });
  await settle();
  const stream = env.lastStream();
  stream.respond(200);
  stream.ack({}, { finance: 'a-4' });
  await settle();
  await env.clock.advance(79_000);
  assert.equal(env.streams.length, 1);
  await env.clock.advance(2_000);
  assert.equal(stream.aborted, true);
  assert.deepEqual(calls, ['initial', 'refresh']);
  const next = env.lastStream();
  assert.notEqual(next.token, stream.token);
  assert.deepEqual(next.cursor, { finance: 'a-4' });
  assert.equal(client.state, 'open');
  client.close();
});

test('while on SSE the WebSocket is tried again with backoff; once it opens, the stream goes', async () => {
  // No `: ping` in this test: the stream's idle limit stays out of the way.
  const ctx = solo({ websocketRetry: { baseDelayMs: 10000, maxDelayMs: 40000 }, pingIntervalMs: 200_000 });
  const { env, client, events, states } = ctx;
  const stream = await onSse(ctx, { finance: 'a-0', crm: 'b-0' });
  stream.event('finance', 'a-1', { finance: 'a-1', crm: 'b-0' });
  await settle();
  const sockets = env.sockets.length;
  // The first retry comes within [5 s, 10 s); it fails to open: still on SSE, no state change.
  await env.clock.advance(10000);
  assert.equal(env.sockets.length, sockets + 1);
  const seen = states.length;
  env.lastSocket().serverClose(1006);
  await settle();
  assert.equal(client.state, 'open');
  assert.equal(states.length, seen);
  assert.equal(stream.aborted, false);
  // The next window is twice as long.
  await env.clock.advance(9999);
  assert.equal(env.sockets.length, sockets + 1);
  await env.clock.advance(10001);
  assert.equal(env.sockets.length, sockets + 2);
  const ws = env.lastSocket();
  ws.open();
  assert.deepEqual(ws.sent[0], { services: ['finance', 'crm'], version: 1, resume: { finance: 'a-1' } });
  // Until the ack both deliver; the client's dedup drops the repeat.
  stream.event('finance', 'a-2', { finance: 'a-2', crm: 'b-0' });
  await settle();
  ws.ack();
  ws.event('finance', 'a-2');
  ws.event('finance', 'a-3');
  await settle();
  assert.equal(stream.aborted, true);
  assert.equal(client.transport, 'websocket');
  assert.deepEqual(
    states.slice(seen).map((s) => `${s.previous}>${s.state}/${s.transport}`),
    ['open>open/websocket'],
  );
  assert.equal(client.state, 'open');
  assert.deepEqual(events, ['finance/a-1', 'finance/a-2', 'finance/a-3']);
  client.close();
});

test('tabs share the SSE stream: the followers get its events and its transport', async () => {
  const shared = { clock: new FakeClock(), network: new BusNetwork(), lockManager: new FakeLocks() };
  const leaderEnv = makeEnv({ ...shared, sse: true });
  const followerEnv = makeEnv({ ...shared, sse: true });
  const leader = new RealtimeClient({
    url: URL_,
    getToken: tokenSource().getToken,
    services: ['finance'],
    platform: leaderEnv.platform,
  });
  await settle();
  const follower = new RealtimeClient({
    url: URL_,
    getToken: tokenSource().getToken,
    services: ['crm'],
    platform: followerEnv.platform,
  });
  const seen = [];
  follower.on('*', '*', (e) => seen.push(e.id));
  await settle();
  assert.equal(leader.isLeader, true);
  const sub = follower.subscribe('crm');
  for (let i = 0; i < 3; i++) {
    leaderEnv.lastSocket().serverClose(1006);
    await shared.clock.advance(shared.clock.nextDelay());
  }
  await settle();
  assert.equal(followerEnv.sockets.length + followerEnv.streams.length, 0);
  const stream = leaderEnv.lastStream();
  assert.deepEqual(stream.services, ['finance', 'crm']);
  stream.respond(200);
  stream.ack({}, { finance: 'a-0', crm: 'b-0' });
  stream.event('crm', 'b-1', { finance: 'a-0', crm: 'b-1' });
  await settle();
  assert.deepEqual(seen, ['b-1']);
  assert.equal(follower.transport, 'sse');
  assert.equal(follower.state, 'open');
  assert.equal(sub.state, 'subscribed');
  follower.close();
  leader.close();
});

test('a cursor the server does not take (400 bad_last_event_id) is dropped and the stream reopens at once', async () => {
  const ctx = solo({ resume: { finance: 'a-3' } });
  const { env, client } = ctx;
  await failWebSockets(env, 3);
  const stream = env.lastStream();
  assert.deepEqual(stream.cursor, { finance: 'a-3' });
  assert.equal(FakeStream.cursorOf({ finance: 'a-3' }), stream.params.get('lastEventId'));
  stream.respond(400, JSON.stringify({ error: 'bad_last_event_id', message: 'not a cursor' }));
  await settle();
  assert.equal(env.clock.nextDelay(), 0);
  client.close();
});

test('a stream silent past the ping interval and timeout is dropped and resumed', async () => {
  const ctx = solo({ transports: ['sse'], pingIntervalMs: 20000, pongTimeoutMs: 10000 });
  const { env, client } = ctx;
  await settle();
  const stream = env.lastStream();
  stream.respond(200);
  stream.ack({}, { finance: 'a-2', crm: 'b-0' });
  await settle();
  await env.clock.advance(20000);
  stream.write(': ping\n\n'); // the server's heartbeat keeps it alive
  await env.clock.advance(20000);
  assert.equal(stream.aborted, false);
  await env.clock.advance(10000);
  assert.equal(stream.aborted, true);
  assert.equal(client.state, 'reconnecting');
  await env.clock.advance(env.clock.nextDelay());
  assert.deepEqual(env.lastStream().cursor, { finance: 'a-2', crm: 'b-0' });
  client.close();
});

test('a server that is down fails SSE too: the client goes back to the WebSocket, its backoff going on', async () => {
  const ctx = solo({ reconnect: { baseDelayMs: 1000, maxDelayMs: 64000 } }, { random: 0.5 });
  const { env, client, states } = ctx;
  await failWebSockets(env, 3);
  assert.deepEqual(
    states.map((s) => s.delayMs),
    [500, 1000, 2000],
  );
  const stream = env.lastStream();
  stream.refuse(); // no HTTP answer at all
  await settle();
  assert.equal(client.transport, 'websocket');
  assert.deepEqual(states.at(-1), {
    state: 'reconnecting',
    previous: 'reconnecting',
    attempt: 4,
    delayMs: 4000,
    transport: 'websocket',
  });
  // Coming back online retries at once, here too.
  env.lifecycle[0].wake();
  await settle();
  assert.equal(env.sockets.length, 4);
  env.lastSocket().serverClose(1006);
  await settle();
  assert.equal(states.at(-1).delayMs, 8000);
  // The server is back: the WebSocket opens and the client stays on it.
  await env.clock.advance(8000);
  env.lastSocket().open();
  env.lastSocket().ack();
  assert.equal(client.state, 'open');
  assert.equal(client.transport, 'websocket');
  assert.equal(env.streams.length, 1);
  client.close();
});

test('the stream parser takes CRLF, CR and LF line ends, split anywhere between chunks', async () => {
  const ctx = solo({ transports: ['sse'] });
  const { env, client, events } = ctx;
  await settle();
  const stream = env.lastStream();
  stream.respond(200);
  const ack = JSON.stringify({ type: 'ack', seq: 0, services: ['finance', 'crm'] });
  const ev = (seq, id) =>
    JSON.stringify({ type: 'event', seq, service: 'finance', id, event: 'x', data: { a: 'b\u00e9' }, timestamp: 't' });
  const text = `event: ack\r\ndata: ${ack}\r\n\r\nid: c1\revent: x\rdata: ${ev(1, 'a-1')}\r\r: ping\n\nevent: x\ndata: ${ev(2, 'a-2')}\n\n`;
  const bytes = new TextEncoder().encode(text);
  // Byte by byte: CRLF pairs and the two bytes of é are split between chunks.
  for (const b of bytes) stream.writeBytes(Uint8Array.of(b));
  await settle();
  assert.equal(client.state, 'open');
  assert.deepEqual(events, ['finance/a-1', 'finance/a-2']);
  assert.deepEqual(ctx.data, [{ a: 'bé' }, { a: 'bé' }]);
  client.close();
});
