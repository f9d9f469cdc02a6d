// Per-org quotas on one node: the limits API (PUT/GET/DELETE /v2/realtime/orgs/{orgId}/limits),
// and each quota enforced at its exact number against the real binary: connections (429 at
// upgrade), publish rate (429 on publish, batches take N), channels (an error frame, the socket
// stays open), upload bytes per day (upload socket and tus); refusals counted by quota.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { metricsJson, orgLimits, promValue, publish, rawUpgrade } from './support/http.mjs';
import { openSse, openSseStream } from './support/sse.mjs';
import { create as tusCreate, request as tusRequest, tusHeaders } from './support/tus.mjs';
import { openUpload, start as startUpload, startUploadServer } from './support/upload.mjs';
import { UpgradeRejected, connect, openStream, tokenFor } from './support/ws.mjs';

const refusals = (server, quota) => promValue(server, 'streamgate_quota_refusals_total', { quota });

function assertQuota429(r, quota) {
  assert.equal(r.status, 429, r.text ?? r.body);
  assert.equal(r.json?.error, 'quota_exceeded', r.text ?? r.body);
  assert.equal(r.json?.quota, quota, r.text ?? r.body);
  const retry = Number(r.headers['retry-after'] ?? r.headers.get?.('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${retry}`);
}

const event = (org, n = 0) => ({ orgId: org, service: 'finance', event: 'e', data: { n } });

describe('org quotas on one node (--org-publish-rate 1 --org-publish-burst 4 --org-max-overrides 3)', () => {
  let server;
  before(async () => {
    server = await startUploadServer({
      flags: { 'org-publish-rate': 1, 'org-publish-burst': 4, 'org-max-overrides': 3 },
    });
  });
  after(async () => {
    await server?.cleanup();
  });

  test('limits API: PUT sets, GET reads back the names set, DELETE removes; API key required', async () => {
    const org = unique('o');
    let r = await orgLimits(server, 'GET', org);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {});
    r = await orgLimits(server, 'PUT', org, { maxConnections: 3, publishRate: 100 });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { maxConnections: 3, publishRate: 100 });
    r = await orgLimits(server, 'GET', org);
    assert.deepEqual(r.json, { maxConnections: 3, publishRate: 100 });
    // PUT replaces the whole override.
    r = await orgLimits(server, 'PUT', org, { maxChannels: 2 });
    assert.deepEqual((await orgLimits(server, 'GET', org)).json, { maxChannels: 2 });
    r = await orgLimits(server, 'DELETE', org);
    assert.equal(r.status, 204);
    assert.deepEqual((await orgLimits(server, 'GET', org)).json, {});
    r = await orgLimits(server, 'GET', org, undefined, { apiKey: 'wrong' });
    assert.equal(r.status, 401);
    r = await orgLimits(server, 'POST', org, {});
    assert.equal(r.status, 405);
  });

  test('limits API: unknown keys and bad values → 400 naming the field; nothing changes', async () => {
    const org = unique('o');
    await orgLimits(server, 'PUT', org, { maxConnections: 5 });
    const cases = [
      [{ maxConnections: 3, maxConnection: 1 }, 'unknown_field', 'maxConnection'],
      [{ publishRate: -1 }, 'bad_value', 'publishRate'],
      [{ publishRate: 1.5 }, 'bad_value', 'publishRate'],
      [{ publishRate: '10' }, 'bad_value', 'publishRate'],
      [{ maxChannels: null }, 'bad_value', 'maxChannels'],
    ];
    for (const [body, error, field] of cases) {
      const r = await orgLimits(server, 'PUT', org, body);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, error, r.text);
      assert.equal(r.json.field, field, r.text);
    }
    for (const raw of ['[1]', '{"maxConnections":', '']) {
      const r = await orgLimits(server, 'PUT', org, raw);
      assert.equal(r.status, 400, `${raw} → ${r.text}`);
    }
    assert.deepEqual((await orgLimits(server, 'GET', org)).json, { maxConnections: 5 });
    const bad = await fetch(`${server.httpUrl}/v2/realtime/orgs/a%01b/limits`, {
      headers: { authorization: `Bearer ${server.apiKey}` },
    });
    assert.equal(bad.status, 404);
    await orgLimits(server, 'DELETE', org);
  });

  test('--org-max-overrides caps the overrides: another org gets 409, replacing is fine', async () => {
    const orgs = [unique('o'), unique('o'), unique('o'), unique('o')];
    for (const org of orgs.slice(0, 3)) assert.equal((await orgLimits(server, 'PUT', org, { maxChannels: 9 })).status, 200);
    const r = await orgLimits(server, 'PUT', orgs[3], { maxChannels: 9 });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error, 'too_many_overrides');
    assert.equal((await orgLimits(server, 'PUT', orgs[0], { maxChannels: 8 })).status, 200);
    await orgLimits(server, 'DELETE', orgs[0]);
    assert.equal((await orgLimits(server, 'PUT', orgs[3], { maxChannels: 9 })).status, 200);
    for (const org of orgs) await orgLimits(server, 'DELETE', org);
  });

  test('maxConnections: the (N+1)th upgrade of the org → 429 with Retry-After; other orgs unaffected', async () => {
    const org = unique('o');
    assert.equal((await orgLimits(server, 'PUT', org, { maxConnections: 2 })).status, 200);
    const before_ = await refusals(server, 'maxConnections');
    const a = await openStream(server, { org, user: 'a' });
    const b = await openStream(server, { org, user: 'b' });
    const token = tokenFor(server, { org, user: 'c' });
    const r = await rawUpgrade(server, `/v2/realtime/stream?access_token=${encodeURIComponent(token)}`);
    assert.equal(r.upgraded, false);
    assertQuota429(r, 'maxConnections');
    await assert.rejects(connect(server, { token }), (e) => e instanceof UpgradeRejected && e.status === 429);
    assert.equal(await refusals(server, 'maxConnections'), before_ + 2);
    // Another org, and the default (unlimited), are not affected.
    const other = await openStream(server, { org: unique('o'), user: 'c' });
    // A closed connection frees its slot; an override removed lifts the quota.
    await a.client.close();
    await waitFor(
      async () => !(await metricsJson(server)).connectionPoolStats.connectionsByOrg.some((e) => e.orgId === org && e.connections > 1),
      { what: 'the closed connection to be released' },
    );
    const c = await openStream(server, { org, user: 'c' });
    await orgLimits(server, 'DELETE', org);
    const d = await openStream(server, { org, user: 'd' });
    await Promise.all([b, other, c, d].map((x) => x.client.close()));
  });

  test('publishRate: the burst passes, the next is 429 with Retry-After; a batch of N takes N', async () => {
    const org = unique('o');
    const before_ = await refusals(server, 'publishRate');
    // The flags: burst 4, 1 event/s. A batch of 3 takes 3, leaving 1: a batch of 2 is refused
    // whole, a single event still fits.
    let r = await publish(server, [event(org, 1), event(org, 2), event(org, 3)]);
    assert.equal(r.status, 200, r.text);
    r = await publish(server, [event(org, 4), event(org, 5)]);
    assertQuota429(r, 'publishRate');
    r = await publish(server, event(org, 6));
    assert.equal(r.status, 200, r.text);
    r = await publish(server, event(org, 7));
    assertQuota429(r, 'publishRate');
    assert.equal(await refusals(server, 'publishRate'), before_ + 2);
    // Another org has its own bucket.
    assert.equal((await publish(server, event(unique('o')))).status, 200);
    // An override replaces the flags for this org only.
    assert.equal((await orgLimits(server, 'PUT', org, { publishRate: 1000, publishBurst: 50 })).status, 200);
    r = await publish(server, Array.from({ length: 50 }, (_, i) => event(org, i)));
    assert.equal(r.status, 200, r.text);
    r = await publish(server, Array.from({ length: 51 }, (_, i) => event(org, i)));
    assertQuota429(r, 'publishRate');
    await orgLimits(server, 'DELETE', org);
  });

  test('maxChannels: a subscribe past it gets an error frame naming the quota; the socket stays open', async () => {
    const org = unique('o');
    assert.equal((await orgLimits(server, 'PUT', org, { maxChannels: 2 })).status, 200);
    const before_ = await refusals(server, 'maxChannels');
    const a = await openStream(server, { org, user: 'a', services: ['finance', 'ops'] });
    // The same two channels from another connection cost nothing more.
    const b = await openStream(server, { org, user: 'b', services: ['ops'] });
    b.client.send({ type: 'subscribe', services: ['finance', 'hr'] });
    const refused = await b.client.next((m) => m.type === 'error' || m.type === 'subscribed', { what: 'the refusal' });
    assert.equal(refused.type, 'error', JSON.stringify(refused));
    assert.equal(refused.code, 'quota_exceeded');
    assert.equal(refused.quota, 'maxChannels');
    assert.equal(await refusals(server, 'maxChannels'), before_ + 1);
    // Still open and usable: a subscribe within the quota works, and events arrive.
    b.client.send({ type: 'subscribe', services: ['finance'] });
    const ok = await b.client.next((m) => m.type === 'subscribed' || m.type === 'error', { what: 'subscribed' });
    assert.equal(ok.type, 'subscribed', JSON.stringify(ok));
    await orgLimits(server, 'DELETE', org);
    const id = (await publish(server, event(org, 1))).json.id;
    const got = await b.client.next((m) => m.type === 'event' && m.id === id, { what: 'the event' });
    assert.equal(got.service, 'finance');
    // A handshake over the quota is refused the same way, and the connection may try again.
    assert.equal((await orgLimits(server, 'PUT', org, { maxChannels: 2 })).status, 200);
    const c = await connect(server, { token: tokenFor(server, { org, user: 'c' }) });
    c.send({ services: ['legal'], version: 1 });
    const hsRefused = await c.next((m) => m.type === 'error' || m.type === 'ack', { what: 'the handshake refusal' });
    assert.equal(hsRefused.quota, 'maxChannels', JSON.stringify(hsRefused));
    c.send({ services: ['finance'], version: 1 });
    const ack = await c.next((m) => m.type === 'ack' || m.type === 'error', { what: 'the ack' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    assert.equal(c.closeInfo, undefined);
    await orgLimits(server, 'DELETE', org);
    await Promise.all([a.client.close(), b.client.close(), c.close()]);
  });

  test('maxChannels: an SSE stream past it is refused with 429 naming the quota; within it, it opens', async () => {
    const org = unique('o');
    assert.equal((await orgLimits(server, 'PUT', org, { maxChannels: 1 })).status, 200);
    const before_ = await refusals(server, 'maxChannels');
    const a = await openStream(server, { org, user: 'a', services: ['finance'] });
    const refused = await openSse(server, { org, user: 'b', services: ['hr'] });
    assertQuota429({ status: refused.head.status, headers: refused.head.headers, json: refused.json, text: refused.bodyText }, 'maxChannels');
    assert.equal(await refusals(server, 'maxChannels'), before_ + 1);
    // The channel the org already holds costs nothing more.
    const { client } = await openSseStream(server, { org, user: 'b', services: ['finance'] });
    await Promise.all([a.client.close(), client.close()]);
    await orgLimits(server, 'DELETE', org);
  });

  test('uploadBytesPerDay: the upload socket gets quota_exceeded, tus gets 429 with Retry-After', async () => {
    const org = unique('o');
    assert.equal((await orgLimits(server, 'PUT', org, { uploadBytesPerDay: 1000 })).status, 200);
    const before_ = await refusals(server, 'uploadBytesPerDay');
    const up = await openUpload(server, { org });
    const started = await startUpload(up, { size: 600 });
    assert.equal(started.type, 'ready', JSON.stringify(started));
    const second = await openUpload(server, { org, user: 'user-2' });
    second.send({ type: 'start', filename: 'b.bin', size: 401, contentType: 'application/octet-stream' });
    const refused = await second.next((m) => m.type === 'error' || m.type === 'ready', { what: 'the refusal' });
    assert.equal(refused.code, 'quota_exceeded', JSON.stringify(refused));
    assert.equal(refused.quota, 'uploadBytesPerDay');
    const token = tokenFor(server, { org, user: 'user-3' });
    const r = await tusRequest(server, 'POST', '/v2/uploads/', {
      headers: tusHeaders(token, { 'upload-length': '401' }),
    });
    assertQuota429(r, 'uploadBytesPerDay');
    assert.equal(r.headers['tus-resumable'], '1.0.0');
    await tusCreate(server, token, 400);
    assert.equal(await refusals(server, 'uploadBytesPerDay'), before_ + 2);
    await orgLimits(server, 'DELETE', org);
    up.close();
    second.close();
  });

  test('an org with no override and nothing pending is forgotten', async () => {
    // Every override was deleted; the publish buckets refill within 4 s (burst 4 at 1/s). Only
    // the upload test's org is remembered, with its bytes of today.
    assert.ok((await promValue(server, 'streamgate_quota_orgs')) > 1);
    await waitFor(async () => (await promValue(server, 'streamgate_quota_orgs')) === 1, {
      what: 'the idle orgs to be forgotten',
      timeout: ms(10000),
      interval: 200,
    });
  });
});
