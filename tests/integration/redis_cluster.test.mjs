// Three streamgate nodes sharing one private redis-server (--broker redis://…): an event
// published through any node reaches clients on every node; each node holds one Redis
// subscription per (org, service) it has connections for; a client resumes on another node
// with no gap and no duplicate while producers race it; eventId dedup holds across nodes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { inBatches, loops, ms, parseEventId, unique, waitFor } from './support/env.mjs';
import { metricsJson, metricsUntil, publish, publishOk } from './support/http.mjs';
import { channelName } from './support/redis.mjs';
import { assertEventFrame, closeAll, openStream } from './support/ws.mjs';

const SERVICES = Array.from({ length: 10 }, (_, i) => `svc${i}`);

async function numsub(redis, org, service) {
  const reply = await redis.command('PUBSUB', 'NUMSUB', channelName(org, service));
  return reply[1];
}

describe('three nodes on one redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(3, { history: 5000 }));
  });
  after(() => stopCluster({ redis, nodes }));

  test('every node is ready', async () => {
    for (const node of nodes) {
      const res = await fetch(`${node.httpUrl}/readyz`);
      assert.equal(res.status, 200);
    }
  });

  test('an event published through A reaches clients on B and C, frame for frame', async () => {
    const org = unique('o');
    const b = await openStream(nodes[1], { org });
    const c = await openStream(nodes[2], { org });
    const id = await publishOk(nodes[0], { orgId: org, service: 'finance', event: 'invoice.paid', data: { amount: 5 } });
    const atB = await b.client.nextEvent();
    const atC = await c.client.nextEvent();
    assertEventFrame(atB, { id, seq: 1, service: 'finance', event: 'invoice.paid', data: { amount: 5 } });
    assert.deepEqual(atC, atB);
    // A second publisher node continues the same sequence.
    const next = await publishOk(nodes[2], { orgId: org, service: 'finance', event: 'e', data: {} });
    assert.equal(parseEventId(next).epoch, parseEventId(id).epoch);
    assert.equal(parseEventId(next).offset, parseEventId(id).offset + 1);
    assertEventFrame(await b.client.nextEvent(), { id: next, seq: 2 });
    assertEventFrame(await c.client.nextEvent(), { id: next, seq: 2 });
    await closeAll([b.client, c.client]);
  });

  test('connections spread over the nodes on 10 services → each node holds 10 subscriptions, one per channel in redis', { timeout: ms(55000) }, async () => {
    const org = unique('pool');
    const users = Array.from({ length: loops(1000, 300) }, (_, i) => `user-${i}`);
    const streams = await inBatches(users, 100, (user, i) => openStream(nodes[i % 3], { org, user, services: SERVICES }));
    const clients = streams.map((s) => s.client);
    try {
      for (const [i, node] of nodes.entries()) {
        const m = await metricsJson(node);
        const here = users.filter((_, j) => j % 3 === i).length;
        assert.equal(m.connectionPoolStats.totalConnections, here, `node ${i} connections`);
        assert.equal(m.connectionPoolStats.totalSubscriptions, 10, `node ${i} subscriptions`);
      }
      for (const service of SERVICES) assert.equal(await numsub(redis, org, service), 3, `redis subscribers of ${service}`);

      // One publish through one node reaches every connection on every node, once.
      const id = await publishOk(nodes[1], { orgId: org, service: 'svc3', event: 'fanout', data: { all: true } });
      await Promise.all(
        clients.map(async (c) => {
          const ev = await c.nextEvent({ timeout: ms(15000) });
          assert.equal(ev.id, id);
          assert.equal(ev.seq, 1);
        }),
      );

      // Node 0's users leave: node 0 lets go of every channel, the others keep theirs.
      await closeAll(clients.filter((_, j) => j % 3 === 0));
      await metricsUntil(nodes[0], (m) => m.activeConnections === 0, 'node 0 empty');
      const m0 = await metricsJson(nodes[0]);
      assert.equal(m0.connectionPoolStats.totalSubscriptions, 0);
      await waitFor(async () => (await numsub(redis, org, 'svc0')) === 2, { what: 'redis to see node 0 unsubscribe' });
      for (const service of SERVICES) assert.equal(await numsub(redis, org, service), 2);

      await closeAll(clients);
      for (const node of nodes) {
        const m = await metricsUntil(node, (x) => x.activeConnections === 0, 'all gone');
        assert.equal(m.connectionPoolStats.totalSubscriptions, 0);
      }
      await waitFor(async () => (await numsub(redis, org, 'svc9')) === 0, { what: 'redis to see every node unsubscribe' });
      for (const service of SERVICES) assert.equal(await numsub(redis, org, service), 0);
    } finally {
      for (const c of clients) if (!c.closeInfo) c.terminate();
    }
  });

  test('a client resumes on another node while producers on two nodes race it: no gap, no duplicate', { timeout: ms(50000) }, async () => {
    const org = unique('o');
    const total = loops(300, 100);
    const ids = [];
    let stop = false;
    const producer = (async () => {
      for (let i = 0; i < total && !stop; i++) {
        ids.push(await publishOk(nodes[1 + (i % 2)], { orgId: org, service: 'finance', event: 'race', data: { i } }));
      }
    })();
    try {
      const first = await openStream(nodes[0], { org });
      const seen = await first.client.collectEvents(20, { timeout: ms(15000) });
      first.client.terminate();
      const last = seen[seen.length - 1].id;

      const { client, ack } = await openStream(nodes[2], { org, resume: { finance: last } });
      assert.deepEqual(ack.resume, { finance: { recovered: true } });
      await producer;
      const rest = await client.eventsUntil((m) => m.id === ids[ids.length - 1], { timeout: ms(20000) });
      const expected = ids.slice(ids.indexOf(last) + 1);
      assert.deepEqual(
        rest.map((e) => e.id),
        expected,
      );
      rest.forEach((e, i) => assert.equal(e.seq, i + 1));
      assert.deepEqual(
        rest.map((e) => e.data.i),
        expected.map((_, i) => ids.indexOf(last) + 1 + i),
      );
      await client.close();
    } finally {
      stop = true;
      await producer.catch(() => {});
    }
  });

  test('a repeated eventId is deduplicated across nodes: same id, delivered once', async () => {
    const org = unique('o');
    const { client } = await openStream(nodes[2], { org });
    const body = { orgId: org, service: 'finance', event: 'order.created', data: { n: 1 }, eventId: unique('evt') };
    const first = await publish(nodes[0], body);
    const again = await publish(nodes[1], body);
    const third = await publish(nodes[2], body);
    assert.equal(first.status, 200);
    assert.equal(again.status, 200);
    assert.equal(third.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.equal(third.json.id, first.json.id);
    const sentinel = await publishOk(nodes[1], { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const events = await client.eventsUntil((m) => m.id === sentinel);
    assert.deepEqual(
      events.map((e) => e.id),
      [first.json.id, sentinel],
    );
    await client.close();
  });
});
