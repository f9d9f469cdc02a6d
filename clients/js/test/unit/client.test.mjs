// The client in one tab (no BroadcastChannel: it leads alone), against a scripted socket and a
// virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealtimeClient } from '../../dist/index.js';
import { makeEnv, settle, tokenSource } from './fakes.mjs';

const URL_ = 'wss://rt.example.com/v2/realtime/stream';

function solo(options = {}, envOptions = {}) {
  const env = makeEnv({ bus: false, locks: false, ...envOptions });
  const tokens = tokenSource();
  const states = [];
  const errors = [];
  const client = new RealtimeClient({
    url: URL_,
    getToken: tokens.getToken,
    services: ['finance'],
    platform: env.platform,
    ...options,
  });
  client.onStateChange((s) => states.push(s));
  client.onError((e) => errors.push(e));
  return { env, tokens, client, states, errors };
}

async function connected(t, options, envOptions) {
  const ctx = solo(options, envOptions);
  await settle();
  ctx.env.lastSocket().open();
  ctx.env.lastSocket().ack();
  return ctx;
}

test('connects with the token in access_token and sends the handshake', async () => {
  const { env, tokens, client, states } = solo({ url: `${URL_}?region=eu`, services: ['finance', 'crm', 'finance'] });
  assert.equal(client.state, 'connecting');
  await settle();
  assert.deepEqual(tokens.calls, [{ reason: 'initial', forceRefresh: false, attempt: 0 }]);
  const ws = env.lastSocket();
  assert.equal(ws.url, `${URL_}?region=eu&access_token=token-1`);
  ws.open();
  assert.deepEqual(ws.sent, [{ services: ['finance', 'crm'], version: 1 }]);
  ws.ack();
  assert.equal(client.state, 'open');
  assert.deepEqual(
    states.map((s) => [s.previous, s.state]),
    [['connecting', 'open']],
  );
  client.close();
});

test('the token is URL-encoded', async () => {
  const env = makeEnv({ bus: false, locks: false });
  const client = new RealtimeClient({ url: URL_, getToken: () => 'a+b/c=&d', platform: env.platform });
  await settle();
  assert.equal(env.lastSocket().token, 'a+b/c=&d');
  assert.ok(env.lastSocket().url.endsWith('access_token=a%2Bb%2Fc%3D%26d'));
  client.close();
});

test('events reach handlers by service and type, in the server shape, and unsubscribe works', async (t) => {
  const { env, client } = await connected(t, { services: ['finance', 'crm'] });
  const paid = [];
  const all = [];
  const crm = [];
  const stopPaid = client.on('finance', 'invoice.paid', (e) => paid.push(e));
  client.on('finance', '*', (e) => all.push(e.id));
  client.on('crm', '*', (e) => crm.push(e.id));
  const ws = env.lastSocket();
  ws.event('finance', 'e1-1', 'invoice.paid', { invoiceId: 'inv_1' });
  ws.event('finance', 'e1-2', 'invoice.sent', null);
  ws.event('crm', 'e2-7', 'lead.new', { n: 1 });
  stopPaid();
  ws.event('finance', 'e1-3', 'invoice.paid', {});
  assert.deepEqual(paid, [
    {
      service: 'finance',
      id: 'e1-1',
      event: 'invoice.paid',
      data: { invoiceId: 'inv_1' },
      timestamp: '2026-01-01T00:00:00.000Z',
    },
  ]);
  assert.deepEqual(all, ['e1-1', 'e1-2', 'e1-3']);
  assert.deepEqual(crm, ['e2-7']);
  client.close();
});

test('a throwing handler does not stop the others', async (t) => {
  const { env, client } = await connected(t);
  const seen = [];
  client.on('finance', '*', () => {
    throw new Error('app bug');
  });
  client.on('finance', '*', (e) => seen.push(e.id));
  // The client rethrows handler errors from a microtask, where the console reports them.
  const uncaught = [];
  const original = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (fn) => {
    try {
      fn();
    } catch (e) {
      uncaught.push(e.message);
    }
  };
  try {
    env.lastSocket().event('finance', 'e-1');
  } finally {
    globalThis.queueMicrotask = original;
  }
  assert.deepEqual(seen, ['e-1']);
  assert.deepEqual(uncaught, ['app bug']);
  client.close();
});

test('resume ids go out on reconnect and duplicates from the replay are dropped', async (t) => {
  const { env, client, tokens } = await connected(t, { services: ['finance', 'crm'] });
  const seen = [];
  client.on('finance', '*', (e) => seen.push(e.id));
  client.on('crm', '*', (e) => seen.push(e.id));
  const ws = env.lastSocket();
  ws.event('finance', 'k3x9-1041');
  ws.event('finance', 'k3x9-1042');
  ws.event('crm', 'k3x9-7');
  ws.serverClose(1001, 'shutting down');
  assert.equal(client.state, 'reconnecting');
  await env.clock.advance(env.clock.nextDelay());
  assert.deepEqual(tokens.calls[1], { reason: 'reconnect', forceRefresh: false, attempt: 1 });
  const ws2 = env.lastSocket();
  assert.notEqual(ws2, ws);
  ws2.open();
  assert.deepEqual(ws2.sent[0], {
    services: ['finance', 'crm'],
    version: 1,
    resume: { finance: 'k3x9-1042', crm: 'k3x9-7' },
  });
  ws2.ack({ resume: { finance: { recovered: true }, crm: { recovered: true } } });
  ws2.event('finance', 'k3x9-1042'); // replayed again by mistake: not delivered twice
  ws2.event('finance', 'k3x9-1043');
  ws2.event('crm', 'k3x9-8');
  assert.deepEqual(seen, ['k3x9-1041', 'k3x9-1042', 'k3x9-7', 'k3x9-1043', 'k3x9-8']);
  assert.deepEqual(client.lastEventIds(), { finance: 'k3x9-1043', crm: 'k3x9-8' });
  client.close();
});

test('an old id is dropped even after it left the dedup cache, and a new epoch is accepted', async (t) => {
  const { env, client } = await connected(t, { dedupSize: 2 });
  const seen = [];
  client.on('finance', '*', (e) => seen.push(e.id));
  const ws = env.lastSocket();
  for (let i = 1; i <= 5; i++) ws.event('finance', `a-${i}`);
  ws.event('finance', 'a-1'); // evicted from the 2-entry cache long ago
  ws.event('finance', 'b-1'); // history restarted under a new epoch
  assert.deepEqual(seen, ['a-1', 'a-2', 'a-3', 'a-4', 'a-5', 'b-1']);
  client.close();
});

test('an event without an id (ephemeral) reaches handlers and leaves resume positions alone', async (t) => {
  const { env, client } = await connected(t);
  const seen = [];
  client.on('finance', '*', (e) => seen.push([e.event, e.id]));
  const ws = env.lastSocket();
  ws.event('finance', 'a-1');
  ws.event('finance', undefined, 'typing');
  ws.event('finance', undefined, 'typing'); // not deduplicated: it has nothing to dedup by
  assert.deepEqual(seen, [
    ['changed', 'a-1'],
    ['typing', undefined],
    ['typing', undefined],
  ]);
  assert.deepEqual(client.lastEventIds(), { finance: 'a-1' });
  client.close();
});

test('ids are compared numerically, past 2^53 too', async (t) => {
  const { env, client } = await connected(t);
  const seen = [];
  client.on('finance', '*', (e) => seen.push(e.id));
  const ws = env.lastSocket();
  ws.event('finance', 'e-9');
  ws.event('finance', 'e-10');
  ws.event('finance', 'e-9007199254740993');
  ws.event('finance', 'e-9007199254740992');
  assert.deepEqual(seen, ['e-9', 'e-10', 'e-9007199254740993']);
  client.close();
});

test('a service that could not be resumed is reported so the app refetches', async (t) => {
  const { env, client } = await connected(t, { services: ['finance', 'crm'] });
  const failures = [];
  client.onResumeFailed((f) => failures.push(f));
  const ws = env.lastSocket();
  ws.event('finance', 'old-5');
  ws.event('crm', 'old-9');
  ws.serverClose(1001);
  await env.clock.advance(env.clock.nextDelay());
  const ws2 = env.lastSocket();
  ws2.open();
  ws2.ack({
    resume: { finance: { recovered: false, reason: 'epoch_changed' }, crm: { recovered: true } },
  });
  assert.deepEqual(failures, [{ service: 'finance', reason: 'epoch_changed', lastId: 'old-5' }]);
  client.close();
});

test('a token that expired (4001) is replaced, never reused', async (t) => {
  const { env, client, tokens } = await connected(t);
  const ws = env.lastSocket();
  ws.receive({ type: 'error', code: 'token_expired', message: 'the access token expired' });
  ws.serverClose(4001, 'token_expired');
  await env.clock.advance(env.clock.nextDelay());
  assert.equal(tokens.calls.length, 2);
  assert.deepEqual(tokens.calls[1], { reason: 'expired', forceRefresh: true, attempt: 1 });
  assert.equal(env.lastSocket().token, 'token-2');
  env.lastSocket().open();
  env.lastSocket().ack();
  assert.equal(client.state, 'open');
  client.close();
});

test('a socket that closes before opening (a 401 looks like that) gets a fresh token, with backoff', async () => {
  const { env, tokens, client, states } = solo(
    { reconnect: { baseDelayMs: 1000, maxDelayMs: 8000 } },
    { random: 0.75 },
  );
  await settle();
  env.lastSocket().serverClose(1006);
  assert.equal(client.state, 'reconnecting');
  const delays = [];
  for (let i = 0; i < 4; i++) {
    delays.push(env.clock.nextDelay());
    await env.clock.advance(env.clock.nextDelay());
    env.lastSocket().serverClose(1006);
  }
  assert.deepEqual(delays, [750, 1500, 3000, 6000]);
  assert.deepEqual(
    tokens.calls.map((c) => [c.reason, c.forceRefresh]),
    [
      ['initial', false],
      ['rejected', true],
      ['rejected', true],
      ['rejected', true],
      ['rejected', true],
    ],
  );
  assert.deepEqual(
    states.filter((s) => s.state === 'reconnecting').map((s) => [s.attempt, s.delayMs, s.closeCode]),
    [
      [1, 750, 1006],
      [2, 1500, 1006],
      [3, 3000, 1006],
      [4, 6000, 1006],
      [5, 6000, 1006],
    ],
  );
  client.close();
});

test('backoff resets after a stable connection but not after a short one', async () => {
  const { env, client } = solo(
    { reconnect: { baseDelayMs: 1000, maxDelayMs: 60000, stableAfterMs: 10000 } },
    { random: 0.999 },
  );
  await settle();
  // Three quick failures: the window is 8 s now.
  for (let i = 0; i < 3; i++) {
    env.lastSocket().serverClose(1006);
    await env.clock.advance(env.clock.nextDelay());
  }
  // Open for 9 s: not stable, the window keeps growing.
  env.lastSocket().open();
  env.lastSocket().ack();
  await env.clock.advance(9000);
  env.lastSocket().serverClose(1011);
  assert.equal(env.clock.nextDelay(), Math.floor(0.999 * 8000));
  await env.clock.advance(env.clock.nextDelay());
  // Open for 10 s: stable, the next retry is back in the first window.
  env.lastSocket().open();
  env.lastSocket().ack();
  await env.clock.advance(10000);
  env.lastSocket().serverClose(1011);
  assert.equal(env.clock.nextDelay(), Math.floor(0.999 * 1000));
  client.close();
});

test('a rejected request (1008) waits the largest window instead of hammering', async (t) => {
  const { env, client, errors } = await connected(
    t,
    { reconnect: { baseDelayMs: 500, maxDelayMs: 20000 } },
    { random: 0.5 },
  );
  const ws = env.lastSocket();
  ws.receive({ type: 'error', code: 'bad_field', message: 'resume: not an object' });
  ws.serverClose(1008);
  assert.deepEqual(errors, [{ code: 'bad_field', message: 'resume: not an object' }]);
  assert.equal(env.clock.nextDelay(), 10000);
  // Changing the services retries at once.
  client.setServices(['crm']);
  await settle();
  assert.equal(env.sockets.length, 2);
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0].services, ['crm']);
  client.close();
});

test('subscribe() returns a counted handle whose state follows the server', async () => {
  const { env, client } = solo({ services: [] });
  const a = client.subscribe('finance');
  const b = client.subscribe('finance');
  const states = [];
  a.on('state', (s) => states.push(s));
  const seen = [];
  a.on('event', (e) => seen.push(e.id));
  assert.equal(a.state, 'subscribing');
  await settle();
  const ws = env.lastSocket();
  ws.open();
  assert.deepEqual(ws.sent[0].services, ['finance']);
  ws.ack();
  assert.equal(a.state, 'subscribed');
  assert.equal(b.state, 'subscribed');
  ws.event('finance', 'f-1');
  assert.deepEqual(seen, ['f-1']);
  // One handle goes: the other still holds the service.
  a.unsubscribe();
  a.unsubscribe();
  await settle();
  assert.equal(ws.sent.length, 1);
  ws.event('finance', 'f-2');
  assert.deepEqual(seen, ['f-1']); // a's listeners went with it
  // A burst (StrictMode: mount, unmount, mount) reaches the socket as its net change: nothing.
  const c = client.subscribe('crm');
  c.unsubscribe();
  client.subscribe('crm');
  await settle();
  assert.deepEqual(ws.sent.slice(1), [{ type: 'subscribe', services: ['crm'] }]);
  b.unsubscribe();
  await settle();
  assert.deepEqual(ws.sent.slice(2), [{ type: 'unsubscribe', services: ['finance'] }]);
  // Down: subscribing again until the next ack.
  ws.serverClose(1001);
  assert.equal(client.subscribe('hr').state, 'subscribing');
  assert.deepEqual(states, ['subscribed']);
  client.close();
});

test('a service the server refuses fails only its subscription: the client reconnects at once without it', async () => {
  const { env, client, errors } = solo({ services: [], reconnect: { baseDelayMs: 500, maxDelayMs: 30000 } });
  const finance = client.subscribe('finance');
  const crm = client.subscribe('crm');
  const failures = [];
  finance.on('error', (e) => failures.push(e.code));
  await settle();
  const ws = env.lastSocket();
  ws.open();
  assert.deepEqual(ws.sent[0].services, ['finance', 'crm']);
  const refusal = {
    type: 'error',
    code: 'forbidden_service',
    message: 'the token does not allow service finance',
    service: 'finance',
  };
  ws.receive(refusal);
  ws.serverClose(1008);
  assert.equal(finance.state, 'error');
  assert.equal(finance.error.code, 'forbidden_service');
  assert.deepEqual(failures, ['forbidden_service']);
  assert.equal(crm.state, 'subscribing');
  assert.equal(errors.length, 1);
  // At once, not after the largest window.
  assert.equal(env.clock.nextDelay(), 0);
  await env.clock.advance(0);
  assert.equal(env.sockets.length, 2);
  const ws2 = env.lastSocket();
  ws2.open();
  assert.deepEqual(ws2.sent[0].services, ['crm']);
  ws2.ack();
  assert.equal(crm.state, 'subscribed');
  assert.equal(finance.state, 'error');
  assert.equal(client.state, 'open');
  // A new handle of the refused service fails at once; the socket isn't asked again.
  const again = client.subscribe('finance');
  assert.equal(again.state, 'error');
  await settle();
  assert.equal(ws2.sent.length, 1);
  // Once nobody wants it, it may be asked for again.
  finance.unsubscribe();
  again.unsubscribe();
  await settle();
  const third = client.subscribe('finance');
  await settle();
  assert.equal(third.state, 'subscribing');
  assert.deepEqual(ws2.sent.slice(1), [{ type: 'subscribe', services: ['finance'] }]);
  client.close();
});

test('a service a refreshed token no longer grants fails its subscription; the socket stays', async () => {
  const { env, client } = solo({ services: [] });
  const finance = client.subscribe('finance');
  const crm = client.subscribe('crm');
  await settle();
  const ws = env.lastSocket();
  ws.open();
  ws.ack();
  ws.receive({ type: 'unsubscribed', services: ['finance'] });
  ws.receive({ type: 'error', code: 'forbidden_service', message: 'no longer granted: finance', service: 'finance' });
  await settle();
  assert.equal(finance.state, 'error');
  assert.equal(crm.state, 'subscribed');
  assert.equal(env.sockets.length, 1);
  assert.equal(client.state, 'open');
  client.close();
});

test('setServices subscribes and unsubscribes on the open socket, resuming known services', async (t) => {
  const { env, client } = await connected(t, { services: ['finance', 'crm'] });
  const ws = env.lastSocket();
  ws.event('crm', 'z-4');
  client.setServices(['finance', 'hr']);
  client.setServices(['finance', 'hr', 'crm']);
  assert.deepEqual(ws.sent.slice(1), [
    { type: 'subscribe', services: ['hr'] },
    { type: 'unsubscribe', services: ['crm'] },
    { type: 'subscribe', services: ['crm'], resume: { crm: 'z-4' } },
  ]);
  assert.deepEqual(client.services, ['finance', 'hr', 'crm']);
  const failures = [];
  client.onResumeFailed((f) => failures.push(f));
  ws.receive({
    type: 'subscribed',
    services: ['crm'],
    resume: { crm: { recovered: false, reason: 'too_old' } },
    timestamp: 't',
  });
  assert.deepEqual(failures, [{ service: 'crm', reason: 'too_old', lastId: 'z-4' }]);
  client.close();
});

test('services changed during the handshake are synced after the ack', async () => {
  const { env, client } = solo();
  await settle();
  const ws = env.lastSocket();
  ws.open();
  client.setServices(['crm']);
  ws.ack();
  assert.deepEqual(ws.sent, [
    { services: ['finance'], version: 1 },
    { type: 'subscribe', services: ['crm'] },
    { type: 'unsubscribe', services: ['finance'] },
  ]);
  client.close();
});

test('invalid service names are refused', () => {
  const env = makeEnv({ bus: false, locks: false });
  assert.throws(
    () =>
      new RealtimeClient({
        url: URL_,
        getToken: () => 't',
        services: ['ok', 'bad name'],
        platform: env.platform,
        autoStart: false,
      }),
    /invalid service name "bad name"/,
  );
  const client = new RealtimeClient({ url: URL_, getToken: () => 't', platform: env.platform, autoStart: false });
  assert.throws(() => client.setServices(['x'.repeat(65)]), TypeError);
});

test('coming back online retries at once instead of waiting out the backoff', async () => {
  const { env, client } = solo({ reconnect: { baseDelayMs: 60000, maxDelayMs: 60000 } }, { random: 0.9 });
  await settle();
  env.lastSocket().serverClose(1006);
  assert.equal(env.clock.nextDelay(), 54000);
  env.lifecycle[0].wake();
  await settle();
  assert.equal(env.sockets.length, 2);
  client.close();
});

test('a silent socket is probed with a ping and dropped when nothing answers', async (t) => {
  const { env, client, tokens } = await connected(t, { pingIntervalMs: 20000, pongTimeoutMs: 5000 });
  const ws = env.lastSocket();
  await env.clock.advance(19000);
  ws.event('finance', 'e-1'); // traffic postpones the ping
  await env.clock.advance(19000);
  assert.deepEqual(ws.sent.slice(1), []);
  await env.clock.advance(1000);
  assert.deepEqual(ws.sent.slice(1), [{ type: 'ping' }]);
  await env.clock.advance(4999);
  assert.equal(ws.closedWith, null);
  await env.clock.advance(1);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'ping timeout' });
  assert.equal(client.state, 'reconnecting');
  await env.clock.advance(env.clock.nextDelay());
  assert.equal(tokens.calls.at(-1).reason, 'reconnect');
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0].resume, { finance: 'e-1' });
  client.close();
});

test('a pong keeps the socket', async (t) => {
  const { env, client } = await connected(t, { pingIntervalMs: 20000, pongTimeoutMs: 5000 });
  const ws = env.lastSocket();
  await env.clock.advance(20000);
  assert.deepEqual(ws.sent.at(-1), { type: 'ping' });
  ws.receive({ type: 'pong', timestamp: 't' });
  await env.clock.advance(10000);
  assert.equal(ws.closedWith, null);
  assert.equal(client.state, 'open');
  client.close();
});

test('a gap in seq drops the socket and resumes from the last id', async (t) => {
  const { env, client, errors } = await connected(t);
  const ws = env.lastSocket();
  ws.event('finance', 'e-1');
  ws.receive({ type: 'event', seq: 3, service: 'finance', id: 'e-3', event: 'x', data: null, timestamp: 't' });
  assert.equal(errors[0].code, 'sequence_gap');
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'sequence gap' });
  await env.clock.advance(env.clock.nextDelay());
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0].resume, { finance: 'e-1' });
  client.close();
});

test('no ack in time counts as a failed attempt', async () => {
  const { env, client } = solo({ connectTimeoutMs: 3000 });
  await settle();
  const ws = env.lastSocket();
  ws.open();
  await env.clock.advance(3000);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'connect timeout' });
  assert.equal(client.state, 'reconnecting');
  client.close();
});

test('a getToken that never answers counts as a failed attempt', async () => {
  const env = makeEnv({ bus: false, locks: false, random: 0.5 });
  let calls = 0;
  const errors = [];
  const client = new RealtimeClient({
    url: URL_,
    platform: env.platform,
    connectTimeoutMs: 5000,
    getToken: () => {
      calls += 1;
      return calls === 1 ? new Promise(() => {}) : 'late-but-fine';
    },
  });
  client.onError((e) => errors.push(e.code));
  await env.clock.advance(4999);
  assert.equal(client.state, 'connecting');
  await env.clock.advance(1);
  assert.deepEqual(errors, ['token_error']);
  assert.equal(client.state, 'reconnecting');
  await env.clock.advance(env.clock.nextDelay());
  assert.equal(env.lastSocket().token, 'late-but-fine');
  client.close();
});

test('a failing getToken is reported and retried with backoff', async () => {
  const env = makeEnv({ bus: false, locks: false, random: 0.5 });
  let calls = 0;
  const errors = [];
  const client = new RealtimeClient({
    url: URL_,
    platform: env.platform,
    reconnect: { baseDelayMs: 1000 },
    getToken: async () => {
      calls += 1;
      if (calls === 1) throw new Error('auth server down');
      return 'good';
    },
  });
  client.onError((e) => errors.push(e));
  await settle();
  assert.deepEqual(errors, [{ code: 'token_error', message: 'getToken failed: auth server down' }]);
  assert.equal(env.sockets.length, 0);
  assert.equal(env.clock.nextDelay(), 500);
  await env.clock.advance(500);
  assert.equal(env.lastSocket().token, 'good');
  client.close();
});

test('close() closes the socket with 1000 and stops retrying; start() resumes', async (t) => {
  const { env, client, states } = await connected(t);
  const ws = env.lastSocket();
  ws.event('finance', 'e-5');
  client.close();
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'client closed' });
  assert.equal(client.state, 'closed');
  assert.equal(env.clock.nextDelay(), undefined);
  await env.clock.advance(120000);
  assert.equal(env.sockets.length, 1);
  client.start();
  await settle();
  assert.equal(client.state, 'reconnecting');
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0].resume, { finance: 'e-5' });
  env.lastSocket().ack();
  assert.deepEqual(
    states.map((s) => s.state),
    ['open', 'closed', 'reconnecting', 'open'],
  );
  client.close();
});

test('autoStart: false does nothing until start()', async () => {
  const env = makeEnv({ bus: false, locks: false });
  const tokens = tokenSource();
  const client = new RealtimeClient({ url: URL_, getToken: tokens.getToken, platform: env.platform, autoStart: false });
  await settle();
  assert.equal(tokens.calls.length, 0);
  assert.equal(env.sockets.length, 0);
  assert.equal(env.lifecycle.length, 0);
  client.start();
  await settle();
  assert.equal(env.sockets.length, 1);
  client.close();
  assert.equal(env.lifecycle.length, 0);
});

test('a page going into the back/forward cache closes, and coming back reconnects', async (t) => {
  const { env, client } = await connected(t);
  env.lastSocket().event('finance', 'e-3');
  env.lifecycle[0].hide();
  assert.equal(client.state, 'closed');
  assert.equal(env.lastSocket().closedWith.code, 1000);
  env.lifecycle[0].wake(); // a suspended client ignores wake-ups
  await settle();
  assert.equal(env.sockets.length, 1);
  env.lifecycle[0].show();
  await settle();
  assert.equal(env.sockets.length, 2);
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0].resume, { finance: 'e-3' });
  client.close();
  assert.equal(env.lifecycle.length, 0);
});

test('resume ids given at construction are sent on the first connection; malformed ones are ignored', async () => {
  const { env, client } = solo({
    services: ['finance', 'crm', 'hr'],
    resume: { finance: 'q-77', crm: 'not an id', hr: 'Q-1', 'bad name': 'q-1' },
  });
  await settle();
  env.lastSocket().open();
  assert.deepEqual(env.lastSocket().sent[0], {
    services: ['finance', 'crm', 'hr'],
    version: 1,
    resume: { finance: 'q-77' },
  });
  client.close();
});

test('disconnected by a producer (4004): no reconnect, the state is closed with the code', async (t) => {
  const { env, client, tokens, states, errors } = await connected(t);
  const sockets = env.sockets?.length;
  const ws = env.lastSocket();
  ws.receive({ type: 'error', code: 'disconnected', message: 'account suspended' });
  ws.serverClose(4004, 'disconnected');
  await env.clock.advance(60_000);
  assert.equal(client.state, 'closed');
  assert.equal(states.at(-1).closeCode, 4004);
  assert.equal(tokens.calls.length, 1);
  assert.equal(env.lastSocket(), ws);
  if (sockets !== undefined) assert.equal(env.sockets.length, sockets);
  assert.deepEqual(
    errors.map((e) => e.code),
    ['disconnected'],
  );
  client.close();
});

test('disconnected by a producer with reconnect allowed (4004 "disconnected; reconnect"): reconnects', async (t) => {
  const { env, client, tokens } = await connected(t);
  const ws = env.lastSocket();
  ws.serverClose(4004, 'disconnected; reconnect');
  assert.equal(client.state, 'reconnecting');
  await env.clock.advance(env.clock.nextDelay());
  assert.equal(tokens.calls.length, 2);
  assert.notEqual(env.lastSocket(), ws);
  env.lastSocket().open();
  env.lastSocket().ack();
  assert.equal(client.state, 'open');
  client.close();
});
