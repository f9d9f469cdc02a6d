// --jwks-file: an identity provider's JWK Set, read at start-up; RS256 and ES256 tokens are
// verified with the key their header's kid names, a kid the set doesn't hold is 401 unknown_key,
// and a file without a usable key stops start-up.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rawUpgrade } from './support/http.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { claims, ecKeyPair, mintES256, mintRS256, rsaKeyPair } from './support/tokens.mjs';
import { openStream } from './support/ws.mjs';

const STREAM = '/v2/realtime/stream';

const jwk = (publicKeyPem, extra) => ({ ...crypto.createPublicKey(publicKeyPem).export({ format: 'jwk' }), ...extra });

describe('a server with a JWK Set and no other key', () => {
  let dir;
  let server;
  const rsa = rsaKeyPair();
  const ec = ecKeyPair();
  const ec2 = ecKeyPair();
  const stranger = ecKeyPair();
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sg-jwks-'));
    const file = path.join(dir, 'jwks.json');
    writeFileSync(
      file,
      JSON.stringify({
        keys: [
          jwk(rsa.publicKey, { kid: 'rsa-1', use: 'sig', alg: 'RS256' }),
          jwk(ec.publicKey, { kid: 'ec-1' }),
          jwk(ec2.publicKey, { kid: 'ec-2' }),
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
        ],
      }),
    );
    server = await startServer({ flags: { 'jwt-secret': null, 'jwks-file': file } });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an RS256 token with kid rsa-1 opens a stream', async () => {
    const token = mintRS256(claims({ user: 'j1' }), rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' });
    const { client } = await openStream(server, { token });
    await client.close();
  });

  test('ES256 tokens are verified with the key their kid names', async () => {
    for (const [key, kid] of [
      [ec, 'ec-1'],
      [ec2, 'ec-2'],
    ]) {
      const token = mintES256(claims({ user: 'j2' }), key.privateKey, { alg: 'ES256', kid });
      const { client } = await openStream(server, { token });
      await client.close();
    }
  });

  for (const [title, build, reason] of [
    ['a kid the set does not hold', () => mintES256(claims(), ec.privateKey, { alg: 'ES256', kid: 'ec-9' }), 'unknown_key'],
    ['no kid, with two EC keys in the set', () => mintES256(claims(), ec.privateKey, { alg: 'ES256' }), 'unknown_key'],
    ['signed by another key under a known kid', () => mintES256(claims(), stranger.privateKey, { alg: 'ES256', kid: 'ec-1' }), 'bad_signature'],
    ['the right key under the other kid', () => mintES256(claims(), ec2.privateKey, { alg: 'ES256', kid: 'ec-1' }), 'bad_signature'],
  ]) {
    test(`${title}: 401 ${reason}`, async () => {
      const r = await rawUpgrade(server, `${STREAM}?access_token=${encodeURIComponent(build())}`);
      assert.equal(r.upgraded, false);
      assert.equal(r.status, 401);
      assert.equal(r.json?.error, reason, r.body);
    });
  }

  test('a token without kid uses the only RSA key', async () => {
    const token = mintRS256(claims({ user: 'j3' }), rsa.privateKey);
    const { client } = await openStream(server, { token });
    await client.close();
  });
});

test('a JWK Set without a usable key stops start-up', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sg-jwks-'));
  try {
    const file = path.join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    const r = await runToExit({ 'api-key': 'k', 'jwks-file': file });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /token key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
