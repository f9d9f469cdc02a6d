// Three streamgate nodes on a Redis Cluster (3 primaries + 3 replicas, --broker
// redis-cluster://…): channels spread over every shard are delivered across nodes; each node
// holds one sharded subscription per channel, on the channel's own primary; a client resumes
// on another node; a busy channel's slot is resharded to another primary while events flow
// (nothing lost, nothing twice); a channel whose counter is behind on its primary moves to a new
// epoch; a primary killed with SIGKILL is replaced by its replica and publishes and deliveries
// resume.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { get, metricsUntil, publish, publishOk, publishRetrying } from './support/http.mjs';
import { channelName } from './support/redis.mjs';
import { startRedisCluster } from './support/redis_cluster_setup.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

// An org per shard: orgs whose 'finance' channel lands on `count` different primaries.
async function orgsOnDistinctPrimaries(cluster, count, prefix) {
  const byOwner = new Map();
  for (let i = 0; i < 200 && byOwner.size < count; i++) {
    const org = unique(prefix);
    const owner = await cluster.ownerPort(await cluster.keySlot(channelName(org, 'finance')));
    if (owner && !byOwner.has(owner)) byOwner.set(owner, org);
  }
  assert.equal(byOwner.size, count, 'channels on distinct primaries');
  return [...byOwner.entries()].map(([port, org]) => ({ port, org }));
}

async function shardNumsub(cluster, port, channel) {
  const reply = await cluster.command(['PUBSUB', 'SHARDNUMSUB', channel], port);
  return reply[1];
}

describe('three nodes on a redis cluster', () => {
  let cluster;
  let nodes = [];
  before(async () => {
    cluster = await startRedisCluster({ nodeTimeout: 1000 });
    nodes = await Promise.all(
      Array.from({ length: 3 }, () => startServer({ flags: { broker: cluster.url, history: 5000 } })),
    );
    await waitFor(async () => {
      for (const node of nodes) {
        if ((await fetch(`${node.httpUrl}/readyz`)).status !== 200) return false;
      }
      return true;
    }, { timeout: ms(15000), what: 'every node ready' });
  });
  after(async () => {
    for (const node of nodes) if (!node.killed) await node.stop();
    await cluster?.cleanup();
  });

  test('events on channels of all three shards reach clients on the other nodes; one sharded subscription per node, on the channel\'s primary', async () => {
    const placed = await orgsOnDistinctPrimaries(cluster, 3, 'spread');
    const clients = [];
    try {
      for (const { port, org } of placed) {
        const streams = await Promise.all(nodes.map((n) => openStream(n, { org })));
        clients.push(...streams.map((s) => s.client));
        // Each node subscribes once, on the primary serving the channel's slot.
        await waitFor(async () => (await shardNumsub(cluster, port, channelName(org, 'finance'))) === 3,
          { what: `3 sharded subscriptions on ${port}` });
        for (const [i, node] of nodes.entries()) {
          const id = await publishOk(node, { orgId: org, service: 'finance', event: 'e', data: { i } });
          for (const s of streams) {
            const m = await s.client.nextEvent();
            assert.equal(m.id, id);
            assert.deepEqual(m.data, { i });
          }
        }
      }
      for (const node of nodes) {
        await metricsUntil(node, (m) => m.connectionPoolStats.totalSubscriptions === 3, '3 subscriptions');
      }
    } finally {
      await closeAll(clients);
    }
    // The last client gone, each node unsubscribes.
    for (const { port, org } of placed) {
      await waitFor(async () => (await shardNumsub(cluster, port, channelName(org, 'finance'))) === 0,
        { what: 'no sharded subscription left' });
    }
  });

  test('a client resumes on another node with no gap and no duplicate', async () => {
    const org = unique('resume');
    const first = await openStream(nodes[0], { org });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await publishOk(nodes[1], { orgId: org, service: 'finance', event: 'e', data: { i } }));
    const seen = await first.client.collect(5, (m) => m.type === 'event');
    assert.deepEqual(seen.map((m) => m.id), ids);
    first.client.terminate();
    for (let i = 5; i < 8; i++) ids.push(await publishOk(nodes[2], { orgId: org, service: 'finance', event: 'e', data: { i } }));
    const { client, ack } = await openStream(nodes[2], { org, resume: { finance: ids[4] } });
    assert.deepEqual(ack.resume, { finance: { recovered: true } });
    const rest = await client.collect(3, (m) => m.type === 'event');
    assert.deepEqual(rest.map((m) => m.id), ids.slice(5));
    await client.close();
  });

  test('a busy channel\'s slot moves to another primary while events flow: nothing lost, nothing twice', { timeout: ms(60000) }, async () => {
    const org = unique('reshard');
    const channel = channelName(org, 'finance');
    const slot = await cluster.keySlot(channel);
    const fromPort = await cluster.ownerPort(slot);
    const toPort = (await cluster.primaries()).map((p) => p.port).find((p) => p !== fromPort);
    const subs = await Promise.all([openStream(nodes[1], { org }), openStream(nodes[2], { org })]);
    const ids = [];
    let stop = false;
    let i = 0;
    const producer = (async () => {
      while (!stop && i < 5000) {
        ids.push(await publishRetrying(nodes[i % 3], { orgId: org, service: 'finance', event: 'e', data: { i } }));
        i += 1;
      }
    })();
    try {
      await waitFor(() => ids.length >= 20, { timeout: ms(10000), what: 'events before the move' });
      await cluster.moveSlot(slot, toPort);
      assert.equal(await cluster.ownerPort(slot), toPort);
      const moved = ids.length;
      await waitFor(() => ids.length >= moved + 50, { timeout: ms(15000), what: 'events after the move' });
    } finally {
      stop = true;
      await producer;
    }
    // The subscriptions followed the slot.
    await waitFor(async () => (await shardNumsub(cluster, toPort, channel)) === 2,
      { what: 'both nodes subscribed on the new primary' });
    for (const s of subs) {
      const got = await s.client.eventsUntil((m) => m.id === ids[ids.length - 1], { timeout: ms(20000) });
      assert.deepEqual(got.map((m) => m.id), ids, 'every acknowledged event once, in order');
      assert.deepEqual(got.map((m) => m.data.i), ids.map((_, k) => k));
    }
    await closeAll(subs.map((s) => s.client));
  });

  test('presence and the cluster metrics answer for every node, with orgs on different shards', async () => {
    const placed = await orgsOnDistinctPrimaries(cluster, 3, 'presence');
    const streams = [];
    try {
      for (const [i, { org }] of placed.entries()) streams.push(await openStream(nodes[i], { org, user: `u${i}` }));
      for (const [i, { org }] of placed.entries()) {
        let last;
        await waitFor(async () => {
          const r = await get(nodes[(i + 1) % 3], `/v2/realtime/presence?orgId=${encodeURIComponent(org)}`, { apiKey: nodes[0].apiKey });
          last = r.json;
          return r.status === 200 && r.json.online === 1 && r.json.users[0].userId === `u${i}`;
        }, { what: `presence of ${org} from another node`, describe: async () => JSON.stringify(last) });
      }
      let view;
      await waitFor(async () => {
        view = (await get(nodes[0], '/v2/realtime/metrics?scope=cluster', { apiKey: nodes[0].apiKey })).json;
        return view?.nodes?.length === 3 &&
          placed.every(({ org }) => view.connectionPoolStats.connectionsByOrg.find((o) => o.orgId === org)?.connections === 1);
      }, { what: 'the cluster view of three nodes', describe: async () => JSON.stringify(view) });
    } finally {
      await closeAll(streams.map((s) => s.client));
    }
  });

  test('the producer control channel crosses the cluster: a disconnect through one node closes the user on every node, and a revoke refuses the old token everywhere', async () => {
    const org = unique('control');
    const mine = await Promise.all(nodes.map((n) => openStream(n, { org, user: 'u1' })));
    const other = await openStream(nodes[2], { org, user: 'u2' });
    const r = await fetch(`${nodes[0].httpUrl}/v2/realtime/disconnect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${nodes[0].apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orgId: org, userId: 'u1' }),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { closed: 1, cluster: true });
    for (const { client } of mine) assert.equal((await client.waitClose()).code, 4004);
    const id = await publishOk(nodes[1], { orgId: org, service: 'finance', event: 'e', data: {} });
    assert.equal((await other.client.nextEvent()).id, id, 'the other user stays connected');

    const revoked = await fetch(`${nodes[1].httpUrl}/v2/realtime/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${nodes[1].apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orgId: org, userId: 'u2', issuedBefore: Math.floor(Date.now() / 1000) + 60 }),
    });
    assert.equal(revoked.status, 200);
    // The open socket on node 2 holds a token issued before: closed with 4001 through the channel.
    assert.equal((await other.client.waitClose()).code, 4001);
  });

  test('--redis-wait-replicas: a publish is acknowledged after WAIT confirms it on the channel\'s primary, and answered 503 when too few replicas confirm in time', { timeout: ms(30000) }, async () => {
    const [one, two] = await Promise.all([
      startServer({ flags: { broker: cluster.url, 'redis-wait-replicas': 1 } }),
      startServer({ flags: { broker: cluster.url, 'redis-wait-replicas': 2 } }),
    ]);
    try {
      for (const node of [one, two]) {
        await waitFor(async () => (await fetch(`${node.httpUrl}/readyz`)).status === 200, { timeout: ms(15000), what: 'ready' });
      }
      const placed = await orgsOnDistinctPrimaries(cluster, 3, 'wait');
      const waits = async (port) => {
        const info = await cluster.command(['INFO', 'commandstats'], port);
        return Number(/cmdstat_wait:calls=(\d+)/.exec(info)?.[1] ?? 0);
      };
      for (const { port, org } of placed) {
        const { client } = await openStream(nodes[0], { org });
        const before = await waits(port);
        // A replica idle since it synced may take up to its once-a-second ack to answer the
        // first WAIT: retried with the same eventId, the publish gets its one id once confirmed.
        const id = await publishRetrying(one, { orgId: org, service: 'finance', event: 'e', data: {} });
        assert.ok((await waits(port)) > before, 'WAIT ran on the channel\'s primary');
        assert.equal((await client.nextEvent()).id, id);
        // Each primary has one replica: two can't confirm.
        const r = await publish(two, { orgId: org, service: 'finance', event: 'e', data: {}, eventId: unique('evt') });
        assert.equal(r.status, 503);
        assert.equal(r.json.error, 'broker_unavailable');
        await client.close();
      }
      assert.ok(two.logs().some((l) => l.message === 'publish not confirmed by enough replicas in time'));
    } finally {
      await one.stop();
      await two.stop();
    }
  });

  test('a channel\'s counter behind on its primary (what a failover to a replica without the last writes leaves): the next publish moves it to a new epoch, no id twice', async () => {
    const org = unique('rewound');
    const channel = channelName(org, 'finance');
    const owner = await cluster.ownerPort(await cluster.keySlot(channel));
    const { client } = await openStream(nodes[0], { org });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await publishOk(nodes[1], { orgId: org, service: 'finance', event: 'before', data: { i } }));
    assert.equal(await cluster.command(['SET', `${channel}:seq`, '1'], owner), 'OK');
    assert.equal(await cluster.command(['XDEL', `${channel}:stream`, '2-0', '3-0'], owner), 2);
    assert.equal(await cluster.command(['XSETID', `${channel}:stream`, '1-0'], owner), 'OK');
    ids.push(await publishOk(nodes[1], { orgId: org, service: 'finance', event: 'after', data: {} }));
    const [oldEpoch] = ids[0].split('-');
    const [newEpoch, offset] = ids[3].split('-');
    assert.notEqual(newEpoch, oldEpoch);
    assert.equal(offset, '1');
    const got = await client.eventsUntil((m) => m.id === ids[3], { timeout: ms(10000) });
    assert.deepEqual(got.map((m) => m.id), ids);
    const { client: resumed, ack } = await openStream(nodes[2], { org, user: 'back', resume: { finance: ids[2] } });
    assert.deepEqual(ack.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    await closeAll([client, resumed]);
  });

  test('SIGKILL of a primary: its replica takes over, publishes succeed again and subscribers get every event published after', { timeout: ms(60000) }, async () => {
    const org = unique('failover');
    const channel = channelName(org, 'finance');
    const slot = await cluster.keySlot(channel);
    const victim = await cluster.ownerPort(slot);
    const subs = await Promise.all([openStream(nodes[0], { org }), openStream(nodes[1], { org })]);
    const before = await publishOk(nodes[2], { orgId: org, service: 'finance', event: 'e', data: { n: 0 } });
    for (const s of subs) assert.equal((await s.client.nextEvent()).id, before);

    await cluster.server(victim).kill();
    // The first acknowledged publish after the kill comes from the promoted replica.
    const first = await publishRetrying(nodes[2], { orgId: org, service: 'finance', event: 'e', data: { n: 1 } }, { timeout: ms(30000) });
    const newOwner = await cluster.ownerPort(slot);
    assert.notEqual(newOwner, victim);
    const ids = [first];
    for (let n = 2; n <= 20; n++) {
      ids.push(await publishRetrying(nodes[n % 3], { orgId: org, service: 'finance', event: 'e', data: { n } }));
    }
    for (const s of subs) {
      const got = await s.client.eventsUntil((m) => m.id === ids[ids.length - 1], { timeout: ms(20000) });
      const seen = new Set(got.map((m) => m.id));
      for (const id of ids) assert.ok(seen.has(id), `event ${id} delivered`);
      assert.equal(seen.size, got.length, 'no event twice');
    }
    for (const node of nodes) {
      await waitFor(async () => (await fetch(`${node.httpUrl}/readyz`)).status === 200,
        { timeout: ms(15000), what: 'ready again after the failover' });
    }
    await closeAll(subs.map((s) => s.client));
  });
});
