// GET /v2/realtime/metrics (JSON pool stats) and GET /metrics (Prometheus), on a server of
// their own so every number is exact.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './support/env.mjs';
import { get, metricsJson, metricsUntil, prometheus, publishOk, rawUpgrade, sampleKey } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { claims, mintHS256, nowSeconds } from './support/tokens.mjs';
import { connect, openStream, tokenFor } from './support/ws.mjs';

function byOrg(list) {
  return [...list].sort((a, b) => String(a.orgId).localeCompare(String(b.orgId)));
}

describe('metrics', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('/v2/realtime/metrics without the API key → 401; with a wrong key → 401', async () => {
    assert.equal((await get(server, '/v2/realtime/metrics')).status, 401);
    assert.equal((await get(server, '/v2/realtime/metrics', { apiKey: 'nope' })).status, 401);
  });

  test('an idle server reports zeros', async () => {
    const m = await metricsJson(server);
    assert.equal(m.activeConnections, 0);
    assert.equal(m.eventsDelivered, 0);
    assert.equal(m.connectionPoolStats.totalConnections, 0);
    assert.equal(m.connectionPoolStats.totalOrgs, 0);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
    assert.deepEqual(m.connectionPoolStats.connectionsByOrg, []);
  });

  test('pool stats follow connections, subscriptions and deliveries exactly', async () => {
    const a1 = await openStream(server, { org: 456, user: 'a1', services: ['finance', 'ops'] });
    const a2 = await openStream(server, { org: 456, user: 'a2', services: ['finance'] });
    const b1 = await openStream(server, { org: 'acme', user: 'b1', services: ['finance'] });

    let m = await metricsJson(server);
    assert.equal(m.activeConnections, 3);
    assert.equal(m.connectionPoolStats.totalConnections, 3);
    assert.equal(m.connectionPoolStats.totalOrgs, 2);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 3, '456/finance, 456/ops, acme/finance');
    assert.deepEqual(byOrg(m.connectionPoolStats.connectionsByOrg), [
      { orgId: 456, connections: 2 },
      { orgId: 'acme', connections: 1 },
    ]);
    assert.equal(typeof m.connectionPoolStats.connectionsByOrg.find((o) => o.orgId === 456)?.orgId, 'number');

    await publishOk(server, { orgId: 456, service: 'finance', event: 'e', data: {} });
    await a1.client.nextEvent();
    await a2.client.nextEvent();
    m = await metricsUntil(server, (x) => x.eventsDelivered >= 2, 'eventsDelivered 2');
    assert.equal(m.eventsDelivered, 2);

    await publishOk(server, { orgId: 456, service: 'ops', event: 'e', data: {} });
    await a1.client.nextEvent();
    m = await metricsUntil(server, (x) => x.eventsDelivered >= 3, 'eventsDelivered 3');
    assert.equal(m.eventsDelivered, 3);

    // The last subscriber of 456/ops leaving releases that subscription.
    a1.client.send({ type: 'unsubscribe', services: ['ops'] });
    await a1.client.next((m_) => m_.type === 'unsubscribed');
    m = await metricsUntil(server, (x) => x.connectionPoolStats.totalSubscriptions !== 3, 'ops released');
    assert.equal(m.connectionPoolStats.totalSubscriptions, 2);
    assert.equal(m.activeConnections, 3);

    await b1.client.close();
    m = await metricsUntil(server, (x) => x.activeConnections === 2, 'acme gone');
    assert.equal(m.connectionPoolStats.totalOrgs, 1);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 1);
    assert.deepEqual(m.connectionPoolStats.connectionsByOrg, [{ orgId: 456, connections: 2 }]);

    await Promise.all([a1.client.close(), a2.client.close()]);
    m = await metricsUntil(server, (x) => x.activeConnections === 0, 'all gone');
    assert.equal(m.connectionPoolStats.totalConnections, 0);
    assert.equal(m.connectionPoolStats.totalOrgs, 0);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
    assert.deepEqual(m.connectionPoolStats.connectionsByOrg, []);
    assert.equal(m.eventsDelivered, 3, 'a counter, not a gauge');
  });

  test('connectionsByOrg gives a numeric org as a JSON number even when the token spelled it as a string', async () => {
    const c = await openStream(server, { org: '8888', user: 'str' });
    const m = await metricsJson(server);
    assert.deepEqual(m.connectionPoolStats.connectionsByOrg, [{ orgId: 8888, connections: 1 }]);
    await c.client.close();
    await metricsUntil(server, (x) => x.activeConnections === 0, 'closed');
  });

  test('Prometheus text has the contract metrics with their types', async () => {
    const p = await prometheus(server);
    assert.match(String(p.headers.get('content-type') ?? ''), /^text\/plain/);
    const expectTypes = {
      streamgate_connections_active: 'gauge',
      streamgate_events_published_total: 'counter',
      streamgate_events_delivered_total: 'counter',
      streamgate_slow_consumer_closes_total: 'counter',
      streamgate_auth_failures_total: 'counter',
      streamgate_closes_total: 'counter',
      streamgate_delivery_latency_seconds: 'histogram',
    };
    for (const [name, type] of Object.entries(expectTypes)) {
      assert.equal(p.types.get(name), type, `# TYPE ${name} ${type}`);
    }
    assert.equal(p.samples.get('streamgate_connections_active'), 0);
    assert.equal(p.samples.get('streamgate_events_published_total'), 2);
    assert.equal(p.samples.get('streamgate_events_delivered_total'), 3);
    assert.equal(p.samples.get('streamgate_slow_consumer_closes_total'), 0);

    // Histogram: cumulative buckets ending in +Inf == _count, and some deliveries observed.
    const buckets = [...p.samples.entries()]
      .filter(([k]) => k.startsWith('streamgate_delivery_latency_seconds_bucket{'))
      .map(([k, v]) => ({ le: /le="([^"]+)"/.exec(k)[1], v }));
    assert.ok(buckets.length >= 2, 'several buckets');
    const inf = buckets.find((b) => b.le === '+Inf');
    assert.ok(inf, 'an le="+Inf" bucket');
    const count = p.samples.get('streamgate_delivery_latency_seconds_count');
    assert.equal(inf.v, count);
    assert.ok(count > 0, 'latency observed for the deliveries');
    assert.ok(p.samples.get('streamgate_delivery_latency_seconds_sum') >= 0);
    const finite = buckets
      .filter((b) => b.le !== '+Inf')
      .sort((a, b) => Number(a.le) - Number(b.le))
      .map((b) => b.v);
    for (let i = 1; i < finite.length; i++) assert.ok(finite[i] >= finite[i - 1], 'buckets are cumulative');
    assert.ok(finite[finite.length - 1] <= count);
  });

  test('Prometheus gauge follows live connections', async () => {
    const c = await openStream(server, { org: 456, user: 'g' });
    const p = await prometheus(server);
    assert.equal(p.samples.get('streamgate_connections_active'), 1);
    await c.client.close();
    await waitFor(async () => (await prometheus(server)).samples.get('streamgate_connections_active') === 0, {
      what: 'gauge back to 0',
    });
  });

  test('auth failures are counted by reason', async () => {
    const key = (reason) => sampleKey('streamgate_auth_failures_total', { reason });
    const before_ = (await prometheus(server)).samples;
    const bad = mintHS256(claims({ org: 456 }), 'wrong-secret-0123456789abcdefghijklmn');
    const expired = mintHS256(claims({ org: 456, exp: nowSeconds() - 3600 }), server.secret);
    assert.equal((await rawUpgrade(server, `/v2/realtime/stream?access_token=${bad}`)).status, 401);
    assert.equal((await rawUpgrade(server, `/v2/realtime/stream?access_token=${bad}`)).status, 401);
    assert.equal((await rawUpgrade(server, `/v2/realtime/stream?access_token=${expired}`)).status, 401);
    const after_ = (await prometheus(server)).samples;
    assert.equal(after_.get(key('bad_signature')), (before_.get(key('bad_signature')) ?? 0) + 2);
    assert.equal(after_.get(key('token_expired')), (before_.get(key('token_expired')) ?? 0) + 1);
  });

  test('server-initiated closes are counted by code', async () => {
    const key = sampleKey('streamgate_closes_total', { code: '1008' });
    const before_ = (await prometheus(server)).samples.get(key) ?? 0;
    const client = await connect(server, { token: tokenFor(server, { org: 456, user: 'x' }) });
    client.send({ services: ['finance'], version: 99 });
    assert.equal((await client.waitClose()).code, 1008);
    await waitFor(async () => ((await prometheus(server)).samples.get(key) ?? 0) > before_, {
      what: 'streamgate_closes_total{code="1008"} to move',
    });
    assert.equal((await prometheus(server)).samples.get(key), before_ + 1);
  });
});
