// In-band token refresh (docs/protocol.md#token-refresh): the leader sends a fresh token on the open
// socket at 80 % of the token's life or on the server's `expiring` notice, instead of reconnecting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealtimeClient } from '../../dist/index.js';
import { makeEnv, settle } from './fakes.mjs';

const URL_ = 'wss://rt.example.com/v2/realtime/stream';

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

// A JWT-shaped token (the client never checks signatures) that expires `ttlMs` after `now`.
function jwt(now, ttlMs, n) {
  return `${b64url({ alg: 'HS256' })}.${b64url({ sub: 'u', org_id: 1, exp: (now + ttlMs) / 1000, n })}.sig`;
}

function setup({ ttlMs = 10_000, getToken } = {}) {
  const env = makeEnv({ bus: false, locks: false });
  const calls = [];
  const client = new RealtimeClient({
    url: URL_,
    services: ['finance'],
    platform: env.platform,
    getToken:
      getToken ??
      ((request) => {
        calls.push(request);
        return jwt(env.clock.now(), ttlMs, calls.length);
      }),
  });
  const errors = [];
  client.onError((e) => errors.push(e));
  return { env, client, calls, errors };
}

async function open(ctx) {
  await settle();
  ctx.env.lastSocket().open();
  ctx.env.lastSocket().ack();
}

const refreshes = (ws) => ws.sent.filter((m) => m.type === 'refresh');

test('at 80 % of the token life the leader sends a refresh on the same socket', async () => {
  const ctx = setup({ ttlMs: 10_000 });
  await open(ctx);
  const ws = ctx.env.lastSocket();
  await ctx.env.clock.advance(7_900);
  assert.equal(refreshes(ws).length, 0);
  await ctx.env.clock.advance(200);
  assert.equal(refreshes(ws).length, 1);
  assert.deepEqual(ctx.calls[1], { reason: 'refresh', forceRefresh: true, attempt: 0 });
  assert.equal(refreshes(ws)[0].token.split('.').length, 3);
  ws.receive({ type: 'refreshed', expiresAt: new Date(ctx.env.clock.now() + 10_000).toISOString() });
  // The next one counts from the new token, obtained at 8 s: due at 16 s.
  await ctx.env.clock.advance(7_800);
  assert.equal(refreshes(ws).length, 1);
  await ctx.env.clock.advance(200);
  assert.equal(refreshes(ws).length, 2);
  assert.equal(ctx.env.sockets.length, 1, 'no reconnect');
  ctx.client.close();
});

test('expiring past half the token life refreshes at once', async () => {
  const ctx = setup({ ttlMs: 20_000 });
  await open(ctx);
  const ws = ctx.env.lastSocket();
  await ctx.env.clock.advance(11_000);
  ws.receive({ type: 'expiring', expiresAt: 'x' });
  await settle();
  assert.equal(refreshes(ws).length, 1);
  // Another notice while the answer is outstanding fetches no second token.
  ws.receive({ type: 'expiring', expiresAt: 'x' });
  await settle();
  assert.equal(ctx.calls.length, 2);
  ctx.client.close();
});

test('expiring right after the ack of a young token waits for the 80 % timer', async () => {
  const ctx = setup({ ttlMs: 5_000 });
  await open(ctx);
  const ws = ctx.env.lastSocket();
  ws.receive({ type: 'expiring', expiresAt: 'x' });
  await settle();
  assert.equal(refreshes(ws).length, 0);
  await ctx.env.clock.advance(4_000);
  assert.equal(refreshes(ws).length, 1);
  ctx.client.close();
});

test('a rejected refresh keeps the socket; 4001 then reconnects with a fresh token', async () => {
  const ctx = setup({ ttlMs: 10_000 });
  await open(ctx);
  const ws = ctx.env.lastSocket();
  await ctx.env.clock.advance(8_000);
  assert.equal(refreshes(ws).length, 1);
  ws.receive({ type: 'error', code: 'bad_signature', message: 'rejected' });
  assert.equal(ctx.client.state, 'open');
  assert.equal(ctx.errors.at(-1).code, 'bad_signature');
  ws.receive({ type: 'error', code: 'token_expired', message: 'expired' });
  ws.serverClose(4001, 'token_expired');
  await ctx.env.clock.advance(ctx.env.clock.nextDelay());
  assert.equal(ctx.calls.at(-1).reason, 'expired');
  assert.equal(ctx.env.sockets.length, 2);
  ctx.client.close();
});

test('a token without a readable exp is refreshed on expiring only', async () => {
  const env = makeEnv({ bus: false, locks: false });
  let n = 0;
  const client = new RealtimeClient({
    url: URL_,
    services: ['finance'],
    platform: env.platform,
    getToken: () => `opaque-${++n}`,
  });
  await settle();
  env.lastSocket().open();
  env.lastSocket().ack();
  const ws = env.lastSocket();
  assert.equal(env.clock.pending().length, 1, 'only the keepalive timer');
  ws.receive({ type: 'expiring', expiresAt: 'x' });
  await settle();
  assert.deepEqual(refreshes(ws), [{ type: 'refresh', token: 'opaque-2' }]);
  client.close();
});

test('a getToken that returns the same token sends nothing', async () => {
  const env = makeEnv({ bus: false, locks: false });
  const token = jwt(env.clock.now(), 10_000, 1);
  const calls = [];
  const client = new RealtimeClient({
    url: URL_,
    services: ['finance'],
    platform: env.platform,
    getToken: (r) => {
      calls.push(r);
      return token;
    },
  });
  await settle();
  env.lastSocket().open();
  env.lastSocket().ack();
  await env.clock.advance(8_000);
  assert.equal(calls.length, 2);
  assert.equal(refreshes(env.lastSocket()).length, 0);
  client.close();
});

test('a socket that drops during a refresh forgets it; the new socket schedules its own', async () => {
  const ctx = setup({ ttlMs: 10_000 });
  await open(ctx);
  await ctx.env.clock.advance(8_000);
  ctx.env.lastSocket().serverClose(1006);
  await ctx.env.clock.advance(ctx.env.clock.nextDelay());
  ctx.env.lastSocket().open();
  ctx.env.lastSocket().ack();
  await ctx.env.clock.advance(8_100);
  assert.equal(refreshes(ctx.env.lastSocket()).length, 1);
  ctx.client.close();
});
