// The connection pool's promise: 1000 users of one org on the same 10 services hold 10
// broker subscriptions, not 10 000; an event reaches all 1000; the subscriptions go away
// with the last user.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inBatches, loops, ms } from './support/env.mjs';
import { metricsJson, metricsUntil, promValue, publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

const ORG = 777;
const USERS = 1000;
const SERVICES = Array.from({ length: 10 }, (_, i) => `svc${i}`);

describe('connection pool with 1000 connections', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('1000 users × 10 services → 10 subscriptions; fan-out to all; 0 after they leave', { timeout: ms(50000) }, async () => {
    const users = Array.from({ length: USERS }, (_, i) => `user-${i}`);
    const streams = await inBatches(users, 100, (user) => openStream(server, { org: ORG, user, services: SERVICES }));
    const clients = streams.map((s) => s.client);
    try {
      for (const s of streams) assert.deepEqual([...s.ack.services].sort(), [...SERVICES].sort());

      let m = await metricsJson(server);
      assert.equal(m.activeConnections, USERS);
      assert.equal(m.connectionPoolStats.totalConnections, USERS);
      assert.equal(m.connectionPoolStats.totalOrgs, 1);
      assert.equal(m.connectionPoolStats.totalSubscriptions, 10);
      assert.deepEqual(m.connectionPoolStats.connectionsByOrg, [{ orgId: ORG, connections: USERS }]);
      assert.equal(await promValue(server, 'streamgate_connections_active'), USERS);

      // One publish reaches every connection once.
      const id = await publishOk(server, { orgId: ORG, service: 'svc3', event: 'fanout', data: { hello: 'all' } });
      await Promise.all(
        clients.map(async (c) => {
          const ev = await c.nextEvent({ timeout: ms(15000) });
          assert.equal(ev.id, id);
          assert.equal(ev.seq, 1);
        }),
      );
      m = await metricsUntil(server, (x) => x.eventsDelivered >= USERS, `eventsDelivered ${USERS}`);
      assert.equal(m.eventsDelivered, USERS);

      // A connection on one more service adds exactly one subscription, and takes it away.
      const extra = await openStream(server, { org: ORG, user: 'extra', services: ['svc0', 'extra'] });
      m = await metricsJson(server);
      assert.equal(m.connectionPoolStats.totalSubscriptions, 11);
      await extra.client.close();
      m = await metricsUntil(server, (x) => x.activeConnections === USERS, 'extra gone');
      assert.equal(m.connectionPoolStats.totalSubscriptions, 10);

      // Half leave: the subscriptions stay, shared by the rest.
      await closeAll(clients.slice(0, USERS / 2));
      m = await metricsUntil(server, (x) => x.activeConnections === USERS / 2, 'half gone');
      assert.equal(m.connectionPoolStats.totalConnections, USERS / 2);
      assert.equal(m.connectionPoolStats.totalSubscriptions, 10);
      assert.deepEqual(m.connectionPoolStats.connectionsByOrg, [{ orgId: ORG, connections: USERS / 2 }]);

      // The rest leave: nothing remains.
      await closeAll(clients.slice(USERS / 2));
      m = await metricsUntil(server, (x) => x.activeConnections === 0, 'all gone');
      assert.equal(m.connectionPoolStats.totalConnections, 0);
      assert.equal(m.connectionPoolStats.totalOrgs, 0);
      assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
      assert.deepEqual(m.connectionPoolStats.connectionsByOrg, []);
    } finally {
      for (const c of clients) if (!c.closeInfo) c.terminate();
    }
  });

  test('churn while a producer publishes leaves no connection or subscription behind', { timeout: ms(40000) }, async () => {
    const rounds = loops(20, 5);
    let producing = true;
    let published = 0;
    const producer = (async () => {
      while (producing) {
        const service = SERVICES[published % SERVICES.length];
        await publishOk(server, { orgId: ORG, service, event: 'churn', data: { n: published } });
        published += 1;
      }
    })();
    try {
      for (let r = 0; r < rounds; r++) {
        const batch = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            openStream(server, { org: ORG, user: `churn-${r}-${i}`, services: [SERVICES[(r + i) % 10], SERVICES[(r * 3 + i) % 10]] }),
          ),
        );
        // Half close politely, half vanish; some have events in flight either way.
        await Promise.all(batch.map((s, i) => (i % 2 ? s.client.close() : Promise.resolve(s.client.terminate()))));
      }
    } finally {
      producing = false;
      await producer;
    }
    assert.ok(published > 0);
    const m = await metricsUntil(server, (x) => x.activeConnections === 0, 'all churned connections released');
    assert.equal(m.connectionPoolStats.totalConnections, 0);
    assert.equal(m.connectionPoolStats.totalOrgs, 0);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
    // And the server still works.
    const { client } = await openStream(server, { org: ORG, user: 'after-churn', services: ['svc1'] });
    const id = await publishOk(server, { orgId: ORG, service: 'svc1', event: 'after', data: {} });
    assert.equal((await client.nextEvent()).id, id);
    await client.close();
  });

  test('abruptly dropped connections (no close frame) are released too', { timeout: ms(30000) }, async () => {
    const users = Array.from({ length: 100 }, (_, i) => `drop-${i}`);
    const streams = await inBatches(users, 100, (user) => openStream(server, { org: ORG, user, services: SERVICES }));
    let m = await metricsJson(server);
    assert.equal(m.connectionPoolStats.totalSubscriptions, 10);
    for (const s of streams) s.client.terminate();
    m = await metricsUntil(server, (x) => x.activeConnections === 0, 'terminated connections released');
    assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
    assert.equal(m.connectionPoolStats.totalOrgs, 0);
  });
});
