// The org quotas that are counted per node with the memory broker, across two nodes sharing one
// redis-server: the daily upload bytes (one counter per org and UTC day in Redis, checked
// when an upload is created) and the distinct channels (each node's metrics snapshot carries
// its channels of the orgs with the quota). Convergence is waited on, never slept on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { promValue } from './support/http.mjs';
import { startRedis } from './support/redis.mjs';
import { create as tusCreate, request as tusRequest, tusHeaders } from './support/tus.mjs';
import { openUpload, startUploadServer } from './support/upload.mjs';
import { connect, openStream, tokenFor } from './support/ws.mjs';

const KiB = 1024;

function assertQuota429(r, quota) {
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json?.error, 'quota_exceeded', r.text);
  assert.equal(r.json?.quota, quota, r.text);
  const retry = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 86400, `Retry-After ${retry}`);
}

describe('org quotas across two nodes with Redis (--org-upload-bytes-per-day 1 MiB, --org-max-channels 2)', () => {
  let redis;
  const nodes = [];
  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i += 1) {
      nodes.push(
        await startUploadServer({
          flags: { broker: redis.url, 'presence-ttl': 300,
            'org-upload-bytes-per-day': 1024 * KiB,
            'org-max-channels': 2,
          },
        }),
      );
    }
    for (const node of nodes) {
      await waitFor(async () => (await promValue(node, 'streamgate_quota_cluster_nodes')) === 2, {
        what: 'each node to see the other',
        timeout: ms(10000),
      });
    }
  });
  after(async () => {
    try {
      for (const node of nodes) await node.cleanup();
    } finally {
      await redis?.cleanup();
    }
  });

  test('uploadBytesPerDay spans the nodes: 600 KiB on A, the next 600 KiB refused on B and on A', async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const tokenA = tokenFor(a, { org, user: 'u1' });
    const tokenB = tokenFor(b, { org, user: 'u2' });
    await tusCreate(a, tokenA, 600 * KiB);
    for (const [node, token] of [[b, tokenB], [a, tokenA]]) {
      const r = await tusRequest(node, 'POST', '/v2/uploads/', {
        headers: tusHeaders(token, { 'upload-length': String(600 * KiB) }),
      });
      assertQuota429(r, 'uploadBytesPerDay');
      assert.equal(r.headers['tus-resumable'], '1.0.0');
    }
    // The upload socket on B is refused the same way.
    const up = await openUpload(b, { org, user: 'u3' });
    up.send({ type: 'start', filename: 'b.bin', size: 600 * KiB, contentType: 'application/octet-stream' });
    const refused = await up.next((m) => m.type === 'error' || m.type === 'ready', { what: 'the refusal' });
    assert.equal(refused.code, 'quota_exceeded', JSON.stringify(refused));
    assert.equal(refused.quota, 'uploadBytesPerDay');
    up.close();
    // What is left of the quota (424 KiB) still fits, on either node; then not a byte more.
    await tusCreate(b, tokenB, 400 * KiB);
    await tusCreate(a, tokenA, 24 * KiB);
    const r = await tusRequest(b, 'POST', '/v2/uploads/', {
      headers: tusHeaders(tokenB, { 'upload-length': '1' }),
    });
    assertQuota429(r, 'uploadBytesPerDay');
    // Another org has its own count.
    await tusCreate(b, tokenFor(b, { org: unique('o'), user: 'x' }), 1000 * KiB);
  });

  // A handshake of `services` on a fresh connection: the first frame's answer (an accepted
  // probe is closed at once, so it holds its channel only for a moment).
  async function handshake(node, org, services) {
    const c = await connect(node, { token: tokenFor(node, { org, user: 'probe' }) });
    try {
      c.send({ services, version: 1 });
      return await c.next((m) => m.type === 'ack' || m.type === 'error', { what: 'the answer' });
    } finally {
      await c.close();
    }
  }

  test('maxChannels spans the nodes: finance on A, ops on B, then hr refused on both; ops on A is fine', async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const onA = await openStream(a, { org, user: 'a', services: ['finance'] });
    const onB = await openStream(b, { org, user: 'b', services: ['ops'] });
    for (const node of [a, b]) {
      const refused = await waitFor(
        async () => {
          const m = await handshake(node, org, ['hr']);
          return m.type === 'error' ? m : undefined;
        },
        { what: 'the third channel to be refused', timeout: ms(10000), interval: 100 },
      );
      assert.equal(refused.code, 'quota_exceeded', JSON.stringify(refused));
      assert.equal(refused.quota, 'maxChannels');
    }
    // A channel another node holds costs nothing more; the refused connection stays usable.
    assert.equal((await handshake(a, org, ['ops'])).type, 'ack');
    assert.equal((await handshake(b, org, ['finance', 'ops'])).type, 'ack');
    // Another org has its own quota.
    assert.equal((await handshake(a, unique('o'), ['hr', 'legal'])).type, 'ack');
    // B lets ops go: A may then take hr.
    await onB.client.close();
    const ok = await waitFor(
      async () => {
        const m = await handshake(a, org, ['hr']);
        return m.type === 'ack' ? m : undefined;
      },
      { what: 'A to admit hr once B released ops', timeout: ms(10000), interval: 100 },
    );
    assert.equal(ok.type, 'ack');
    await onA.client.close();
  });
});
