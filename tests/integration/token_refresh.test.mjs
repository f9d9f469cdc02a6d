// In-band token refresh and the expiry notice (issue 17): {"type":"refresh","token"} on an open
// stream or upload socket moves its expiry and applies the new token's claims; a token of
// another user or org closes with 4001 refresh_mismatch; a rejected token keeps the old one;
// refreshes are limited to one a second; `expiring` comes once per token,
// --token-refresh-notice seconds before exp whatever --jwt-leeway, right after the ack when the
// token is already that close.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { join } from './support/chat.mjs';
import { publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { claims, mintHS256, nowSeconds } from './support/tokens.mjs';
import { openUpload, start, startUploadServer } from './support/upload.mjs';
import { openStream } from './support/ws.mjs';

const NOTICE = 2;

function expiresAtOf(exp) {
  return new Date(exp * 1000).toISOString();
}

// Waits, by the wall clock the server also reads, until `epochMs` is past.
async function until(epochMs, what) {
  await waitFor(() => Date.now() > epochMs, { timeout: epochMs - Date.now() + ms(5000), what });
}

describe('stream socket, --jwt-leeway 0', () => {
  let server;
  const tokens = [];
  const mint = (c) => {
    const t = mintHS256(claims(c), server.secret);
    tokens.push(t);
    return t;
  };
  before(async () => {
    server = await startServer({ flags: { 'jwt-leeway': 0, 'token-refresh-notice': NOTICE } });
  });
  after(async () => {
    await server?.stop();
    // Tokens never reach the log, refreshed ones included.
    for (const t of tokens) assert.ok(!server.stderrText.includes(t.split('.')[2]), 'a token signature is in the log');
  });

  test('a refresh moves the expiry: the socket outlives its first token', { timeout: ms(20000) }, async () => {
    const exp = nowSeconds() + 2;
    const { client } = await openStream(server, { token: mint({ user: 'r1', exp }), services: ['finance'] });
    const newExp = nowSeconds() + 3600;
    client.send({ type: 'refresh', token: mint({ user: 'r1', exp: newExp }) });
    const refreshed = await client.next((m) => m.type === 'refreshed' || m.type === 'error', { what: 'refreshed' });
    assert.deepEqual(refreshed, { type: 'refreshed', expiresAt: expiresAtOf(newExp) });

    await until(exp * 1000 + 500, 'the first token to have expired');
    await publishOk(server, { orgId: 456, service: 'finance', event: 'after.exp', data: { n: 1 } });
    const event = await client.nextEvent();
    assert.equal(event.event, 'after.exp');
    assert.ok(client.isOpen, 'the socket is still open after the first token expired');
    await client.close();
  });

  test('a token that ends within the notice gets expiring right after the ack, before any reply', async () => {
    const exp = nowSeconds() + 1;
    const { client } = await openStream(server, { token: mint({ user: 'r2', exp }) });
    client.send({ type: 'ping' });
    const next = await client.next((m) => m.type === 'expiring' || m.type === 'pong', { what: 'expiring or pong' });
    assert.deepEqual(next, { type: 'expiring', expiresAt: expiresAtOf(exp) });
    await client.waitClose(ms(5000));
  });

  test('expiring comes once per token, before the 4001 close at exp', { timeout: ms(20000) }, async () => {
    const exp = nowSeconds() + NOTICE + 2;
    const { client } = await openStream(server, { token: mint({ user: 'r3', exp }) });
    const expiring = await client.next((m) => m.type === 'expiring', { timeout: ms(8000), what: 'expiring' });
    assert.equal(expiring.expiresAt, expiresAtOf(exp));
    const { code } = await client.waitClose(ms(8000));
    assert.equal(code, 4001);
    assert.equal(client.received.filter((m) => m.type === 'expiring').length, 1, 'one expiring per token');
  });

  test('a refreshed token gets its own expiring, right after refreshed when it is near its end', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r4', exp: nowSeconds() + 1 }) });
    await client.next((m) => m.type === 'expiring', { what: 'the first expiring' });
    const exp2 = nowSeconds() + 2;
    client.send({ type: 'refresh', token: mint({ user: 'r4', exp: exp2 }) });
    client.send({ type: 'ping' });
    await client.next((m) => m.type === 'refreshed', { what: 'refreshed' });
    const next = await client.next((m) => m.type === 'expiring' || m.type === 'pong', { what: 'expiring or pong' });
    assert.deepEqual(next, { type: 'expiring', expiresAt: expiresAtOf(exp2) });
    const { code } = await client.waitClose(ms(8000));
    assert.equal(code, 4001);
  });

  test('a token of another user closes with refresh_mismatch and 4001', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r5' }) });
    client.send({ type: 'refresh', token: mint({ user: 'someone-else' }) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'refresh_mismatch');
    const { code } = await client.waitClose();
    assert.equal(code, 4001);
  });

  test('a token of the same user id in another org closes with refresh_mismatch and 4001', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r6', org: 456 }) });
    client.send({ type: 'refresh', token: mint({ user: 'r6', org: 457 }) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'refresh_mismatch');
    assert.equal((await client.waitClose()).code, 4001);
  });

  test('a rejected token is named in an error frame and the old expiry stays', { timeout: ms(20000) }, async () => {
    const exp = nowSeconds() + 2;
    const { client } = await openStream(server, { token: mint({ user: 'r7', exp }) });
    const forged = mintHS256(claims({ user: 'r7' }), 'another-secret-0123456789abcdefghijklmnop');
    client.send({ type: 'refresh', token: forged });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'bad_signature');
    assert.ok(client.isOpen, 'a rejected refresh does not close the socket');
    const { code, at } = await client.waitClose(ms(6000));
    assert.equal(code, 4001, 'closed at the old token expiry');
    assert.ok(at >= exp * 1000 - 250);
  });

  test('an expired refresh token is token_expired, and the socket stays', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r8' }) });
    client.send({ type: 'refresh', token: mint({ user: 'r8', exp: nowSeconds() - 10 }) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'token_expired');
    client.send({ type: 'ping' });
    await client.next((m) => m.type === 'pong', { what: 'pong' });
    await client.close();
  });

  test('a second refresh within a second is rate_limited and changes nothing', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r9' }) });
    const exp1 = nowSeconds() + 1800;
    client.send({ type: 'refresh', token: mint({ user: 'r9', exp: exp1 }) });
    client.send({ type: 'refresh', token: mint({ user: 'r9', exp: nowSeconds() + 60 }) });
    const first = await client.next((m) => m.type === 'refreshed', { what: 'refreshed' });
    assert.equal(first.expiresAt, expiresAtOf(exp1));
    const err = await client.next((m) => m.type === 'error', { what: 'rate_limited' });
    assert.equal(err.code, 'rate_limited');
    assert.ok(client.isOpen);
    // After the interval a refresh is served again.
    const exp3 = nowSeconds() + 900;
    await waitFor(
      async () => {
        client.send({ type: 'refresh', token: mint({ user: 'r9', exp: exp3 }) });
        const m = await client.next((x) => x.type === 'refreshed' || x.type === 'error', { what: 'an answer' });
        return m.type === 'refreshed';
      },
      { timeout: ms(5000), interval: 300, what: 'a refresh after the interval' },
    );
    assert.equal(client.received.filter((m) => m.type === 'refreshed').length, 2);
    await client.close();
  });

  test('a narrower services claim unsubscribes what it no longer allows; the socket stays', async () => {
    const { client } = await openStream(server, {
      token: mint({ user: 'r10', services: ['finance', 'crm'] }),
      services: ['finance', 'crm'],
    });
    client.send({ type: 'refresh', token: mint({ user: 'r10', services: ['finance'] }) });
    await client.next((m) => m.type === 'refreshed', { what: 'refreshed' });
    const unsub = await client.next((m) => m.type === 'unsubscribed', { what: 'unsubscribed' });
    assert.deepEqual(unsub.services, ['crm']);
    const err = await client.next((m) => m.type === 'error', { what: 'forbidden_service' });
    assert.equal(err.code, 'forbidden_service');
    assert.equal(err.service, 'crm');

    await publishOk(server, { orgId: 456, service: 'crm', event: 'crm.gone', data: {} });
    await publishOk(server, { orgId: 456, service: 'finance', event: 'finance.kept', data: {} });
    const event = await client.nextEvent();
    assert.equal(event.event, 'finance.kept', 'the dropped service delivers nothing');
    assert.equal(client.received.filter((m) => m.type === 'event' && m.service === 'crm').length, 0);

    client.send({ type: 'subscribe', services: ['crm'] });
    const refused = await client.next((m) => m.type === 'error', { what: 'the refused subscribe' });
    assert.equal(refused.code, 'forbidden_service', 'the new claim applies to later subscribes');
  });

  test('a narrower rooms claim leaves the rooms it no longer allows', async () => {
    const { client } = await openStream(server, { token: mint({ user: 'r11', rooms: ['general', 'ops'] }), services: [] });
    await join(client, 'general');
    await join(client, 'ops');
    client.send({ type: 'refresh', token: mint({ user: 'r11', rooms: ['general'] }) });
    await client.next((m) => m.type === 'refreshed', { what: 'refreshed' });
    const left = await client.next((m) => m.type === 'left', { what: 'left' });
    assert.equal(left.room, 'ops');
    const err = await client.next((m) => m.type === 'error', { what: 'forbidden_room' });
    assert.equal(err.code, 'forbidden_room');
    assert.equal(err.room, 'ops');
    assert.ok(client.isOpen);
    await client.close();
  });
});

test('the notice is due before exp whatever --jwt-leeway', async () => {
  const server = await startServer({ flags: { 'jwt-leeway': 30, 'token-refresh-notice': NOTICE } });
  try {
    // exp + leeway is half a minute away, exp itself one second: the notice counts from exp.
    const exp = nowSeconds() + 1;
    const { client } = await openStream(server, { token: mintHS256(claims({ user: 'l1', exp }), server.secret) });
    client.send({ type: 'ping' });
    const next = await client.next((m) => m.type === 'expiring' || m.type === 'pong', { what: 'expiring or pong' });
    assert.equal(next.type, 'expiring');
    await client.close();
  } finally {
    await server.stop();
  }
});

test('--token-refresh-notice 0 sends no notice', async () => {
  const server = await startServer({ flags: { 'jwt-leeway': 0, 'token-refresh-notice': 0 } });
  try {
    const { client } = await openStream(server, { token: mintHS256(claims({ user: 'z1', exp: nowSeconds() + 1 }), server.secret) });
    const { code } = await client.waitClose(ms(5000));
    assert.equal(code, 4001);
    assert.equal(client.received.filter((m) => m.type === 'expiring').length, 0);
  } finally {
    await server.stop();
  }
});

describe('upload socket', () => {
  let server;
  before(async () => {
    server = await startUploadServer({ flags: { 'jwt-leeway': 0, 'token-refresh-notice': NOTICE } });
  });
  after(async () => {
    await server?.cleanup();
  });

  test('refresh moves the expiry, and expiring comes after ready', { timeout: ms(20000) }, async () => {
    const exp = nowSeconds() + 2;
    const client = await openUpload(server, { token: mintHS256(claims({ user: 'u1', exp }), server.secret) });
    const ready = await start(client, { size: 10 });
    assert.equal(ready.type, 'ready');
    const expiring = await client.next((m) => m.type === 'expiring', { what: 'expiring' });
    assert.equal(expiring.expiresAt, expiresAtOf(exp));
    const newExp = nowSeconds() + 3600;
    client.send({ type: 'refresh', token: mintHS256(claims({ user: 'u1', exp: newExp }), server.secret) });
    const refreshed = await client.next((m) => m.type === 'refreshed' || m.type === 'error', { what: 'refreshed' });
    assert.deepEqual(refreshed, { type: 'refreshed', expiresAt: expiresAtOf(newExp) });
    await until(exp * 1000 + 500, 'the first token to have expired');
    client.send(Buffer.alloc(10, 1));
    const complete = await client.next((m) => m.type === 'complete' || m.type === 'error', { what: 'complete' });
    assert.equal(complete.type, 'complete', 'the upload finished on the refreshed token');
    await client.close();
  });

  test('a token of another user closes the upload socket with refresh_mismatch and 4001', async () => {
    const client = await openUpload(server, { user: 'u2' });
    client.send({ type: 'refresh', token: mintHS256(claims({ user: 'u3' }), server.secret) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'refresh_mismatch');
    assert.equal((await client.waitClose()).code, 4001);
  });

  test('a rejected token on the upload socket is an error frame; the socket stays', async () => {
    const client = await openUpload(server, { user: 'u4' });
    client.send({ type: 'refresh', token: 'not-a-jwt' });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'malformed_token');
    const ready = await start(client, { size: 1 });
    assert.equal(ready.type, 'ready');
    await client.close();
  });
});
