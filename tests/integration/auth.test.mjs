// Who may open a stream: JWT verification failures (every reason, query and header forms),
// HS256/RS256/ES256 keys, the services claim, Origin policy, 426 without upgrade, and the
// live connection closed with 4001 when its token expires.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms, unique } from './support/env.mjs';
import { publishOk, rawUpgrade } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import {
  claims,
  ecKeyPair,
  mintES256,
  mintHmac,
  mintHS256,
  mintNone,
  mintRS256,
  nowSeconds,
  rsaKeyPair,
  withPayload,
} from './support/tokens.mjs';
import { UpgradeRejected, connect, openStream } from './support/ws.mjs';

const STREAM = '/v2/realtime/stream';

function queryPath(token) {
  return `${STREAM}?access_token=${encodeURIComponent(token)}`;
}

// Asserts the answer is a refused upgrade with `status` and {"error": reason, "message": "…"}.
function assertRefused(r, status, reason) {
  assert.equal(r.upgraded, false, 'the server must not upgrade');
  assert.equal(r.status, status, `status (body ${r.body})`);
  assert.match(String(r.headers['content-type'] ?? ''), /^application\/json/, 'content-type');
  assert.ok(r.json, `body is JSON: ${r.body}`);
  assert.equal(r.json.error, reason, `error reason (body ${r.body})`);
  assert.equal(typeof r.json.message, 'string', 'message is a string');
  assert.ok(r.json.message.length > 0, 'message is not empty');
  if (status === 401) {
    assert.equal(r.headers['www-authenticate'], 'Bearer', 'a 401 names its scheme (RFC 9110)');
  }
}

describe('HS256 server', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'jwt-leeway': 0 } });
  });
  after(async () => {
    await server?.stop();
  });

  const secret = () => server.secret;
  const good = (extra = {}) => claims({ org: 456, user: 'alice', ...extra });

  // [title, reason, token builder]. A builder returning undefined means "no token at all".
  const cases = [
    ['no token', 'missing_token', () => undefined],
    ['one part only', 'malformed_token', () => 'not-a-jwt'],
    ['two parts', 'malformed_token', () => 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0'],
    ['parts that are not base64url', 'malformed_token', () => '@@@.###.$$$'],
    [
      'a header that is not JSON',
      'malformed_token',
      () => `${Buffer.from('hello').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.c2ln`,
    ],
    ['alg none', 'unsupported_algorithm', () => mintNone(good())],
    ['alg HS512', 'unsupported_algorithm', () => mintHmac(good(), secret(), 'sha512', { alg: 'HS512', typ: 'JWT' })],
    [
      'alg RS256 on a server without a public key',
      'unsupported_algorithm',
      () => mintHS256(good(), secret(), { alg: 'RS256', typ: 'JWT' }),
    ],
    ['signed with another secret', 'bad_signature', () => mintHS256(good(), 'another-secret-0123456789abcdefghijklmnop')],
    ['payload changed after signing', 'bad_signature', () => withPayload(mintHS256(good(), secret()), good({ org: 1 }))],
    ['exp an hour ago', 'token_expired', () => mintHS256(good({ exp: nowSeconds() - 3600 }), secret())],
    ['nbf in an hour', 'token_not_yet_valid', () => mintHS256(good({ nbf: nowSeconds() + 3600 }), secret())],
    ['no sub', 'missing_claim', () => mintHS256(good({ sub: undefined }), secret())],
    ['no org_id', 'missing_claim', () => mintHS256(good({ org_id: undefined }), secret())],
    ['no exp', 'missing_claim', () => mintHS256(good({ exp: undefined }), secret())],
    ['org_id an object', 'bad_claim', () => mintHS256(good({ org_id: { id: 456 } }), secret())],
    ['org_id a boolean', 'bad_claim', () => mintHS256(good({ org_id: true }), secret())],
    // Org ids that a publish's orgId could never address (one rule for both).
    ['org_id a negative number', 'bad_claim', () => mintHS256(good({ org_id: -7 }), secret())],
    ['org_id with a control character', 'bad_claim', () => mintHS256(good({ org_id: 'acme\u0007' }), secret())],
    ['org_id with a newline', 'bad_claim', () => mintHS256(good({ org_id: 'acme\nevil' }), secret())],
    ['exp a string', 'bad_claim', () => mintHS256(good({ exp: 'tomorrow' }), secret())],
    ['services a string', 'bad_claim', () => mintHS256(good({ services: 'finance' }), secret())],
    ['services holding numbers', 'bad_claim', () => mintHS256(good({ services: [1, 2] }), secret())],
  ];

  for (const [title, reason, build] of cases) {
    test(`401 ${reason} (${title}) in the query form`, async () => {
      const token = build();
      const r = await rawUpgrade(server, token === undefined ? STREAM : queryPath(token));
      assertRefused(r, 401, reason);
    });
    test(`401 ${reason} (${title}) in the Authorization header form`, async () => {
      const token = build();
      const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
      const r = await rawUpgrade(server, STREAM, { headers });
      assertRefused(r, 401, reason);
    });
  }

  test('401 missing_token for an Authorization header that is not Bearer', async () => {
    const r = await rawUpgrade(server, STREAM, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assertRefused(r, 401, 'missing_token');
  });

  test('the ws client sees the refusal as HTTP 401 and never opens', async () => {
    const token = mintHS256(good(), 'another-secret-0123456789abcdefghijklmnop');
    await assert.rejects(connect(server, { token }), (e) => {
      assert.ok(e instanceof UpgradeRejected, `expected an HTTP refusal, got ${e}`);
      assert.equal(e.status, 401);
      assert.equal(e.json?.error, 'bad_signature');
      return true;
    });
  });

  test('a valid token upgrades (101) in the query form and in the header form', async () => {
    const token = mintHS256(good(), secret());
    const q = await rawUpgrade(server, queryPath(token));
    assert.equal(q.status, 101);
    assert.equal(q.upgraded, true);
    const h = await rawUpgrade(server, STREAM, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(h.status, 101);
    assert.equal(h.upgraded, true);
  });

  test('a valid token from the header completes the handshake', async () => {
    const { client, ack } = await openStream(server, { org: 456, user: 'alice', via: 'header' });
    assert.equal(ack.type, 'ack');
    await client.close();
  });

  // One precedence everywhere: the Authorization header when present, then access_token.
  // Regression: the upgrade read the query first while the REST endpoints read the header first.
  test('upgrade: the Authorization header wins over the access_token query parameter', async () => {
    const valid = mintHS256(good(), secret());
    const forged = mintHS256(good(), 'another-secret-0123456789abcdefghijklmnop');
    const headerBad = await rawUpgrade(server, queryPath(valid), { headers: { authorization: `Bearer ${forged}` } });
    assertRefused(headerBad, 401, 'bad_signature');
    const headerGood = await rawUpgrade(server, queryPath(forged), { headers: { authorization: `Bearer ${valid}` } });
    assert.equal(headerGood.status, 101, headerGood.body);
    // A header with another scheme is no token: the query parameter still counts.
    const basic = await rawUpgrade(server, queryPath(valid), { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(basic.status, 101, basic.body);
  });

  test('upgrade: the header token decides who connects when both are sent', async () => {
    const org = unique('hdr');
    const queryOrg = unique('qry');
    const client = await connect(server, {
      token: mintHS256(claims({ org: queryOrg, user: 'q' }), secret()),
      headers: { authorization: `Bearer ${mintHS256(claims({ org, user: 'h' }), secret())}` },
    });
    client.send({ services: ['finance'], version: 1 });
    await client.next((m) => m.type === 'ack');
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'for.header.org', data: {} });
    const ev = await client.nextEvent();
    assert.equal(ev.id, id, 'the connection belongs to the header token\'s org');
    await client.close();
  });

  test('REST (presence): the Authorization header wins over the access_token query parameter', async () => {
    const org = unique('rest');
    const valid = mintHS256(claims({ org, user: 'alice' }), secret());
    const forged = mintHS256(claims({ org, user: 'alice' }), 'another-secret-0123456789abcdefghijklmnop');
    const url = (token) => `${server.httpUrl}/v2/realtime/presence?access_token=${encodeURIComponent(token)}`;
    const headerBad = await fetch(url(valid), { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(headerBad.status, 401);
    assert.equal((await headerBad.json()).error, 'bad_signature');
    const headerGood = await fetch(url(forged), { headers: { authorization: `Bearer ${valid}` } });
    assert.equal(headerGood.status, 200, await headerGood.text());
  });

  test('a string org_id is accepted and receives its org events', async () => {
    const org = unique('acme');
    const { client } = await openStream(server, { org, user: 'bob' });
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'invoice.paid', data: { n: 1 } });
    const ev = await client.nextEvent();
    assert.equal(ev.id, id);
    await client.close();
  });

  test('plain GET on the stream endpoint without upgrade headers → 426', async () => {
    const token = mintHS256(good(), secret());
    const r = await rawUpgrade(server, queryPath(token), { upgrade: false });
    assert.equal(r.upgraded, false);
    assert.equal(r.status, 426);
  });

  test('services claim: subscribing to a listed service works', async () => {
    const { client, ack } = await openStream(server, {
      org: 456,
      user: 'carol',
      services: ['finance'],
      claimOpts: { services: ['finance'] },
    });
    assert.deepEqual(ack.services, ['finance']);
    await client.close();
  });

  test('services claim: handshake for a service outside it → error frame + close 1008', async () => {
    const token = mintHS256(claims({ org: 456, user: 'carol', services: ['finance'] }), secret());
    const client = await connect(server, { token });
    client.send({ services: ['ops'], version: 1 });
    const err = await client.next((m) => m.type === 'error', { what: 'an error frame' });
    assert.equal(err.code, 'forbidden_service');
    assert.equal(err.service, 'ops', 'the frame names the refused service');
    const { code } = await client.waitClose();
    assert.equal(code, 1008);
    assert.equal(client.received.filter((m) => m.type === 'ack').length, 0, 'no ack');
  });

  test('services claim: a later subscribe outside it → error frame + close 1008', async () => {
    const { client } = await openStream(server, {
      org: 456,
      user: 'carol',
      services: ['finance'],
      claimOpts: { services: ['finance'] },
    });
    client.send({ type: 'subscribe', services: ['finance', 'ops'] });
    const err = await client.next((m) => m.type === 'error', { what: 'an error frame' });
    assert.equal(err.code, 'forbidden_service');
    assert.equal(err.service, 'ops', 'the frame names the refused service');
    const { code } = await client.waitClose();
    assert.equal(code, 1008);
  });

  test('a live connection is closed with 4001 when its token expires (leeway 0)', { timeout: ms(15000) }, async () => {
    const exp = nowSeconds() + 2;
    const token = mintHS256(claims({ org: 456, user: 'dave', exp }), secret());
    const { client } = await openStream(server, { token });
    const { code, at } = await client.waitClose(ms(3000) + 4000);
    assert.equal(code, 4001);
    assert.ok(at >= exp * 1000 - 250, `closed ${exp * 1000 - at} ms before exp`);
  });
});

describe('RS256 server (public key given inline, no HS256 secret)', () => {
  let server;
  let keys;
  let other;
  before(async () => {
    keys = rsaKeyPair();
    other = rsaKeyPair();
    server = await startServer({ flags: { 'jwt-secret': null, 'jwt-public-key': keys.publicKey } });
  });
  after(async () => {
    await server?.stop();
  });

  test('an RS256 token signed by the matching private key opens a stream', async () => {
    const token = mintRS256(claims({ org: 456, user: 'rsa-user' }), keys.privateKey);
    const { client, ack } = await openStream(server, { token });
    assert.equal(ack.type, 'ack');
    await client.close();
  });

  test('an RS256 token signed by another key → 401 bad_signature', async () => {
    const token = mintRS256(claims({ org: 456, user: 'rsa-user' }), other.privateKey);
    assertRefused(await rawUpgrade(server, queryPath(token)), 401, 'bad_signature');
  });

  test('alg confusion: HS256 "signed" with the public key PEM → 401 unsupported_algorithm', async () => {
    const token = mintHS256(claims({ org: 456, user: 'rsa-user' }), keys.publicKey);
    assertRefused(await rawUpgrade(server, queryPath(token)), 401, 'unsupported_algorithm');
  });
});

describe('ES256 server (public key given as a file path, plus an HS256 secret)', () => {
  let server;
  let keys;
  let other;
  let dir;
  before(async () => {
    keys = ecKeyPair();
    other = ecKeyPair();
    dir = mkdtempSync(path.join(tmpdir(), 'sg-itest-'));
    const pemPath = path.join(dir, 'jwt-public.pem');
    writeFileSync(pemPath, keys.publicKey);
    server = await startServer({ flags: { 'jwt-public-key': pemPath } });
  });
  after(async () => {
    try {
      await server?.stop();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an ES256 token signed by the matching private key opens a stream', async () => {
    const token = mintES256(claims({ org: 456, user: 'ec-user' }), keys.privateKey);
    const { client, ack } = await openStream(server, { token, via: 'header' });
    assert.equal(ack.type, 'ack');
    await client.close();
  });

  test('an HS256 token with the configured secret still works next to the key', async () => {
    const { client, ack } = await openStream(server, { org: 456, user: 'hs-user' });
    assert.equal(ack.type, 'ack');
    await client.close();
  });

  test('an ES256 token signed by another key → 401 bad_signature', async () => {
    const token = mintES256(claims({ org: 456, user: 'ec-user' }), other.privateKey);
    assertRefused(await rawUpgrade(server, queryPath(token)), 401, 'bad_signature');
  });

  test('an RS256 token against an EC key → 401 unsupported_algorithm', async () => {
    const token = mintRS256(claims({ org: 456, user: 'ec-user' }), rsaKeyPair().privateKey);
    assertRefused(await rawUpgrade(server, queryPath(token)), 401, 'unsupported_algorithm');
  });
});

describe('Origin policy (--allowed-origins)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'allowed-origins': 'https://app.example.com,https://admin.example.com' } });
  });
  after(async () => {
    await server?.stop();
  });

  test('a listed Origin is accepted', async () => {
    for (const origin of ['https://app.example.com', 'https://admin.example.com']) {
      const { client, ack } = await openStream(server, { origin });
      assert.equal(ack.type, 'ack', origin);
      await client.close();
    }
  });

  test('an Origin not in the list → 403 origin_not_allowed, no upgrade', async () => {
    const token = mintHS256(claims({ org: 456, user: 'eve' }), server.secret);
    for (const origin of ['https://evil.example.com', 'http://app.example.com', 'https://app.example.com.evil.io']) {
      const r = await rawUpgrade(server, queryPath(token), { headers: { origin } });
      assertRefused(r, 403, 'origin_not_allowed');
    }
  });

  test('the ws client sees the Origin refusal as HTTP 403', async () => {
    const token = mintHS256(claims({ org: 456, user: 'eve' }), server.secret);
    await assert.rejects(connect(server, { token, origin: 'https://evil.example.com' }), (e) => {
      assert.ok(e instanceof UpgradeRejected, `expected an HTTP refusal, got ${e}`);
      assert.equal(e.status, 403);
      return true;
    });
  });

  // auth.hpp's OriginPolicy: a request without Origin is not a browser and is allowed.
  test('a request without Origin (not a browser) is accepted', async () => {
    const token = mintHS256(claims({ org: 456, user: 'svc' }), server.secret);
    const r = await rawUpgrade(server, queryPath(token));
    assert.equal(r.status, 101);
  });
});
