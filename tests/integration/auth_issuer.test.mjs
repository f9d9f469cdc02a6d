// Tokens from another issuer, taken as they are: --jwt-issuer and --jwt-audience refuse tokens
// minted for someone else (401 bad_issuer / bad_audience, at the upgrade and at in-band refresh),
// and --org-claim / --user-claim read the org and the user from the issuer's own claim names.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { publishOk, rawUpgrade } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { mintHS256, nowSeconds } from './support/tokens.mjs';
import { connect, openStream } from './support/ws.mjs';

const STREAM = '/v2/realtime/stream';

describe('a server for another issuer', () => {
  let server;
  before(async () => {
    server = await startServer({
      flags: {
        'jwt-issuer': 'https://idp.example.com/',
        'jwt-audience': 'streamgate',
        'org-claim': 'tenant',
        'user-claim': 'uid',
      },
    });
  });
  after(async () => {
    await server?.stop();
  });

  // The issuer's own shape: no sub or org_id at all.
  const tokenClaims = (extra = {}) => {
    const c = {
      iss: 'https://idp.example.com/',
      aud: ['billing', 'streamgate'],
      uid: 'u-42',
      tenant: 'acme',
      exp: nowSeconds() + 3600,
      ...extra,
    };
    for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
    return c;
  };
  const mint = (extra) => mintHS256(tokenClaims(extra), server.secret);

  test('its tokens open a stream; org and user come from tenant and uid', async () => {
    const { client } = await openStream(server, { token: mint(), services: ['finance'] });
    // Delivered to org "acme": the tenant claim is the org.
    await publishOk(server, { orgId: 'acme', service: 'finance', event: 'x', data: { n: 1 } });
    const event = await client.nextEvent();
    assert.equal(event.event, 'x');
    await client.close();
    const opened = server.logs().find((l) => l.message === 'connection opened' && l.user === 'u-42');
    assert.ok(opened, 'the log names the user from uid');
    assert.equal(opened.org, 'acme');
  });

  for (const [title, extra, reason] of [
    ['another issuer', { iss: 'https://evil.example.com/' }, 'bad_issuer'],
    ['no issuer', { iss: undefined }, 'bad_issuer'],
    ['another audience', { aud: 'billing' }, 'bad_audience'],
    ['no audience', { aud: undefined }, 'bad_audience'],
    ['an audience of the wrong type', { aud: 7 }, 'bad_audience'],
    ['no uid (a sub does not stand in)', { uid: undefined, sub: 'u-42' }, 'missing_claim'],
    ['no tenant (an org_id does not stand in)', { tenant: undefined, org_id: 1 }, 'missing_claim'],
  ]) {
    test(`${title}: 401 ${reason}`, async () => {
      const r = await rawUpgrade(server, `${STREAM}?access_token=${encodeURIComponent(mint(extra))}`);
      assert.equal(r.upgraded, false);
      assert.equal(r.status, 401);
      assert.equal(r.json?.error, reason, r.body);
    });
  }

  test('a refresh with a token for another audience is refused by name, and the socket stays', async () => {
    const { client } = await openStream(server, { token: mint() });
    client.send({ type: 'refresh', token: mint({ aud: 'billing' }) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'bad_audience');
    client.send({ type: 'ping' });
    await client.next((m) => m.type === 'pong', { what: 'pong' });
    await client.close();
  });

  test('a refresh naming another tenant is a refresh_mismatch (4001)', async () => {
    const { client } = await openStream(server, { token: mint() });
    client.send({ type: 'refresh', token: mint({ tenant: 'other' }) });
    const err = await client.next((m) => m.type === 'error', { what: 'the error frame' });
    assert.equal(err.code, 'refresh_mismatch');
    assert.equal((await client.waitClose()).code, 4001);
  });

  test('the failures are counted by reason on /metrics', async () => {
    const res = await fetch(`${server.httpUrl}/metrics`);
    const text = await res.text();
    assert.match(text, /streamgate_auth_failures_total\{reason="bad_issuer"\} [1-9]/);
    assert.match(text, /streamgate_auth_failures_total\{reason="bad_audience"\} [1-9]/);
  });
});

test('--org-claim and --user-claim must be usable names', async () => {
  const { runToExit } = await import('./support/server.mjs');
  const r = await runToExit({ 'jwt-secret': 'x'.repeat(32), 'api-key': 'k', 'org-claim': 'sub' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--org-claim and --user-claim name the same claim/);
});

test('without --jwt-issuer/--jwt-audience, iss and aud are not checked', async () => {
  const server = await startServer();
  try {
    const token = mintHS256({ sub: 'u', org_id: 1, exp: nowSeconds() + 60, iss: 'anyone', aud: 5 }, server.secret);
    const client = await connect(server, { token });
    await client.close();
  } finally {
    await server.stop();
  }
});
