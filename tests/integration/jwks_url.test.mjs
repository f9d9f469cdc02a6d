// --jwks-url: the JWK Set comes from a local HTTP(S) server that counts its requests. The node
// is ready only once a set loaded (the first fetch failing is retried); a rotated-in kid is
// refused at once and accepted after the refresh it triggers; a burst of unknown kids costs at
// most one fetch per --jwks-min-refresh; a failed, malformed or oversized answer keeps the last
// good set; https verifies the server against --jwks-ca-file and refreshes periodically; a
// server that never answers fails the fetch after --jwks-timeout.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { promValue, rawUpgrade } from './support/http.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { makeTestCertificates } from './support/tls.mjs';
import { claims, ecKeyPair, mintES256, mintRS256, rsaKeyPair } from './support/tokens.mjs';

const STREAM = '/v2/realtime/stream';
const FAILURES = 'streamgate_jwks_refresh_failures_total';

const jwk = (key, kid) => ({ ...crypto.createPublicKey(key.publicKey).export({ format: 'jwk' }), kid });
// Keys whose kid starts with "rsa" sign RS256, the others ES256.
const tokenFor = (key, kid) =>
  kid.startsWith('rsa')
    ? mintRS256(claims({ user: 'j' }), key.privateKey, { alg: 'RS256', kid })
    : mintES256(claims({ user: 'j' }), key.privateKey, { alg: 'ES256', kid });

// A JWKS endpoint whose answer the test sets: { status, body } (body: an object, sent as JSON, or
// a string); `fetches` counts GET /jwks.json.
async function startJwksServer(tls) {
  const state = { status: 200, body: { keys: [] }, fetches: 0 };
  const handler = (req, res) => {
    if (req.url !== '/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.fetches += 1;
    const text = typeof state.body === 'string' ? state.body : JSON.stringify(state.body);
    res.writeHead(state.status, { 'content-type': 'application/json' }).end(text);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = tls ? 'https' : 'http';
  state.url = `${scheme}://127.0.0.1:${server.address().port}/jwks.json`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  return state;
}

async function upgradeStatus(server, token) {
  const r = await rawUpgrade(server, `${STREAM}?access_token=${encodeURIComponent(token)}`);
  return r.upgraded ? 101 : `${r.status} ${r.json?.error}`;
}

async function readyz(server) {
  const res = await fetch(`${server.httpUrl}/readyz`);
  return { status: res.status, json: await res.json() };
}

describe('--jwks-url over http', () => {
  const a = ecKeyPair();
  const b = rsaKeyPair();
  const k = ecKeyPair();
  let jwks;
  let server;
  before(async () => {
    jwks = await startJwksServer();
    // The first answer fails: the node retries (1 s backoff) and is not ready meanwhile.
    jwks.status = 500;
    jwks.body = 'down';
    server = await startServer({
      flags: {
        'jwt-secret': null,
        'jwks-url': jwks.url,
        'jwks-min-refresh': 2,
        'jwks-max-bytes': 1024,
      },
    });
  });
  after(async () => {
    await server?.stop();
    await jwks?.close();
  });

  test('not ready until the set loads; the failed first fetch is retried and counted', async () => {
    await waitFor(() => jwks.fetches >= 1, { what: 'the first fetch' });
    const before = await readyz(server);
    assert.equal(before.status, 503);
    assert.equal(before.json.error, 'jwks_unavailable');
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), '401 unknown_key');
    jwks.status = 200;
    jwks.body = { keys: [jwk(a, 'a')] };
    await waitFor(async () => (await readyz(server)).status === 200, { what: 'ready', timeout: ms(10000) });
    // Every failed fetch counted, then the good one.
    const failures = await promValue(server, FAILURES);
    assert.ok(failures >= 1);
    assert.equal(jwks.fetches, failures + 1);
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), 101);
    assert.equal(jwks.fetches, failures + 1, 'a known kid fetches nothing');
  });

  test('a rotated-in kid is refused at once, then accepted after the one refresh it triggers', async () => {
    const start = jwks.fetches;
    jwks.body = { keys: [jwk(a, 'a'), jwk(b, 'rsa-b')] };
    const tokenB = tokenFor(b, 'rsa-b');
    assert.equal(await upgradeStatus(server, tokenB), '401 unknown_key');
    await waitFor(async () => (await upgradeStatus(server, tokenB)) === 101, {
      what: 'kid rsa-b accepted',
      interval: 100,
      timeout: ms(10000),
    });
    assert.equal(jwks.fetches, start + 1);
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), 101);
  });

  test('a burst of 50 unknown kids costs at most one fetch per --jwks-min-refresh', async () => {
    const start = jwks.fetches;
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => upgradeStatus(server, tokenFor(a, crypto.randomBytes(8).toString('hex')))),
    );
    assert.deepEqual(new Set(answers), new Set(['401 unknown_key']));
    // The misses are folded into one fetch, made once the interval since the last has passed.
    await waitFor(() => jwks.fetches > start, { what: 'the refresh', timeout: ms(10000) });
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), 101);
    assert.equal(jwks.fetches, start + 1);
  });

  test('a malformed, failed or oversized answer keeps the last good set, each counted', async () => {
    const failures = await promValue(server, FAILURES);
    // Garbage, asked for by an unknown kid.
    jwks.body = '{"keys": [garbage';
    assert.equal(await upgradeStatus(server, tokenFor(k, 'k')), '401 unknown_key');
    await waitFor(async () => (await promValue(server, FAILURES)) === failures + 1, { what: 'a failure', timeout: ms(10000) });
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), 101);
    assert.equal(await upgradeStatus(server, tokenFor(b, 'rsa-b')), 101);
    // Over --jwks-max-bytes (1024): a set holding k, padded, is refused whole. The node retries
    // a failed refresh by itself (after --jwks-min-refresh at the soonest).
    jwks.body = { keys: [jwk(a, 'a'), jwk(k, 'k')], padding: 'x'.repeat(1200) };
    await waitFor(async () => (await promValue(server, FAILURES)) === failures + 2, { what: 'a second failure', timeout: ms(10000) });
    assert.equal(await upgradeStatus(server, tokenFor(k, 'k')), '401 unknown_key');
    assert.equal(await upgradeStatus(server, tokenFor(a, 'a')), 101);
    // An error status.
    jwks.status = 503;
    await waitFor(async () => (await promValue(server, FAILURES)) === failures + 3, { what: 'a third failure', timeout: ms(10000) });
    assert.equal(await upgradeStatus(server, tokenFor(b, 'rsa-b')), 101);
    assert.ok(
      server.logs().some((l) => l.message === 'JWK Set refresh failed; the last good set stays in use' && /over --jwks-max-bytes/.test(l.error)),
      'the oversized answer is logged as such',
    );
  });
});

describe('--jwks-url beside --jwt-public-key', () => {
  const pem = rsaKeyPair(); // the static key; its tokens may name a kid the set lacks
  const a = ecKeyPair();
  const r = rsaKeyPair();
  let jwks;
  let server;
  before(async () => {
    jwks = await startJwksServer();
    jwks.body = { keys: [jwk(a, 'a')] };
    server = await startServer({
      flags: { 'jwt-secret': null, 'jwt-public-key': pem.publicKey, 'jwks-url': jwks.url, 'jwks-min-refresh': 1 },
    });
    await waitFor(async () => (await readyz(server)).status === 200, { what: 'ready', timeout: ms(10000) });
  });
  after(async () => {
    await server?.stop();
    await jwks?.close();
  });

  test("the static key's tokens pass with or without a kid; a rotated-in kid is unknown_key and triggers the refresh", async () => {
    assert.equal(await upgradeStatus(server, mintRS256(claims({ user: 'j' }), pem.privateKey)), 101);
    assert.equal(await upgradeStatus(server, tokenFor(pem, 'rsa-static')), 101);
    const start = jwks.fetches;
    jwks.body = { keys: [jwk(a, 'a'), jwk(r, 'rsa-r')] };
    // Not the static key's signature: the kid may be a key the set has not loaded yet.
    const tokenR = tokenFor(r, 'rsa-r');
    assert.equal(await upgradeStatus(server, tokenR), '401 unknown_key');
    await waitFor(async () => (await upgradeStatus(server, tokenR)) === 101, {
      what: 'kid rsa-r accepted',
      interval: 100,
      timeout: ms(10000),
    });
    assert.equal(jwks.fetches, start + 1);
    // A token naming no kid and not signed by the static key is still a bad signature.
    assert.equal(await upgradeStatus(server, mintRS256(claims({ user: 'j' }), r.privateKey)), '401 bad_signature');
  });
});

describe('--jwks-url over https', () => {
  let dir;
  let certs;
  let jwks;
  const c = ecKeyPair();
  const d = ecKeyPair();
  const servers = [];
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sg-jwks-url-'));
    certs = makeTestCertificates(dir);
    jwks = await startJwksServer({ key: readFileSync(certs.serverKey), cert: readFileSync(certs.serverCert) });
    jwks.body = { keys: [jwk(c, 'c')] };
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await jwks?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the server is verified against --jwks-ca-file, and the set refreshed every --jwks-refresh', async () => {
    const server = await startServer({
      flags: { 'jwt-secret': null, 'jwks-url': jwks.url, 'jwks-ca-file': certs.ca, 'jwks-refresh': 1, 'jwks-min-refresh': 600 },
    });
    servers.push(server);
    await waitFor(async () => (await readyz(server)).status === 200, { what: 'ready' });
    assert.equal(await upgradeStatus(server, tokenFor(c, 'c')), 101);
    // Rotated: the unknown-kid refresh waits out --jwks-min-refresh, so the periodic one brings d.
    jwks.body = { keys: [jwk(d, 'd')] };
    await waitFor(async () => (await upgradeStatus(server, tokenFor(d, 'd'))) === 101, {
      what: 'kid d accepted',
      interval: 100,
      timeout: ms(10000),
    });
    assert.equal(await upgradeStatus(server, tokenFor(c, 'c')), '401 unknown_key');
    assert.equal(await promValue(server, FAILURES), 0);
  });

  test('a server certificate from another CA is refused: never ready, failures counted', async () => {
    const server = await startServer({
      flags: { 'jwt-secret': null, 'jwks-url': jwks.url, 'jwks-ca-file': certs.otherCa },
    });
    servers.push(server);
    await waitFor(async () => (await promValue(server, FAILURES)) >= 1, { what: 'a failed fetch' });
    assert.equal((await readyz(server)).status, 503);
    assert.ok(server.logs().some((l) => /TLS handshake/.test(l.error ?? '')), 'the TLS failure is logged');
  });
});

test('a JWKS server that never answers fails the fetch after --jwks-timeout', async () => {
  const sockets = new Set();
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const server = await startServer({
    flags: { 'jwt-secret': null, 'jwks-url': `http://127.0.0.1:${silent.address().port}/jwks.json`, 'jwks-timeout': 1 },
  });
  try {
    await waitFor(async () => (await promValue(server, FAILURES)) >= 1, { what: 'the timed-out fetch' });
    assert.equal((await readyz(server)).status, 503);
    assert.ok(
      server.logs().some((l) => l.message.startsWith('JWK Set fetch failed') && /timed out/.test(l.error)),
      'the timeout is logged',
    );
  } finally {
    await server.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test('--jwks-url is refused with --jwks-file, or when it is not http(s)', async () => {
  const both = await runToExit({ 'api-key': 'k', 'jwks-url': 'http://127.0.0.1:1/j', 'jwks-file': '/nonexistent' });
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /--jwks-url and --jwks-file are exclusive/);
  const ftp = await runToExit({ 'api-key': 'k', 'jwks-url': 'ftp://127.0.0.1/j' });
  assert.notEqual(ftp.code, 0);
  assert.match(ftp.stderr, /--jwks-url must be an http:\/\/ or https:\/\/ URL/);
});
