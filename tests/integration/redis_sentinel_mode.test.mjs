// Three streamgate nodes on Redis Sentinel (--broker redis-sentinel://user:pw@s1,s2,s3/mymaster over
// one primary, one replica and three Sentinels; --redis-wait-replicas 1): events cross nodes
// through the primary the Sentinels name; a SENTINEL FAILOVER (after the Sentinel the nodes
// listen to died) and a SIGKILL of the primary while
// events flow are followed by every node — /readyz and publishes answer 503 while there is no
// primary, recover once the promoted replica is verified, and every subscriber gets every
// acknowledged event, once, with its own content.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { publish, publishOk, publishRetrying } from './support/http.mjs';
import { channelName, redisCommand } from './support/redis.mjs';
import { startRedisSentinel } from './support/redis_sentinel_setup.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

async function readyz(node) {
  return (await fetch(`${node.httpUrl}/readyz`)).status;
}

async function allReady(nodes, what) {
  await waitFor(async () => {
    for (const node of nodes) if ((await readyz(node)) !== 200) return false;
    return true;
  }, { timeout: ms(20000), what });
}

describe('three nodes on redis sentinel', () => {
  let setup;
  let nodes = [];
  before(async () => {
    setup = await startRedisSentinel({ downAfter: 1000, failoverTimeout: 3000 });
    nodes = await Promise.all(Array.from({ length: 3 }, () => startServer({
      flags: { broker: setup.url, history: 5000, 'redis-wait-replicas': 1 },
    })));
    await allReady(nodes, 'every node ready');
  });
  after(async () => {
    for (const node of nodes) await node.stop();
    await setup?.cleanup();
  });

  test('events cross nodes; each node subscribes on the primary the Sentinels name', async () => {
    const org = unique('cross');
    const streams = await Promise.all(nodes.map((n) => openStream(n, { org })));
    try {
      const primary = await setup.primaryPort();
      await waitFor(async () => (await redisCommand(primary, ['PUBSUB', 'NUMSUB', channelName(org, 'finance')]))[1] === 3,
        { what: 'three subscriptions on the primary' });
      for (const [i, node] of nodes.entries()) {
        const id = await publishOk(node, { orgId: org, service: 'finance', event: 'e', data: { i } });
        for (const s of streams) {
          const m = await s.client.nextEvent();
          assert.equal(m.id, id);
          assert.deepEqual(m.data, { i });
        }
      }
      for (const node of nodes) {
        assert.ok(node.logs().some((l) => l.message === 'redis sentinel names the primary' && l.redis === `127.0.0.1:${primary}`),
          'the node found the primary through a Sentinel');
      }
      // The URL's user and password reached the primary (the Sentinels, which have none,
      // served the nodes all the same).
      const clients = (await redisCommand(primary, ['CLIENT', 'LIST'])).split('\n').filter((l) => / name=streamgate-(cmd|sub)-/.test(l));
      assert.equal(clients.length, 6, 'two connections per node');
      for (const line of clients) assert.match(line, / user=streamgate /);
    } finally {
      await closeAll(streams.map((s) => s.client));
    }
  });

  // Publishes through the three nodes in turn while `act` takes the primary away (it resolves
  // with the new primary's port); then checks what every node's subscriber got.
  async function failoverWhileFlowing(prefix, act) {
    const org = unique(prefix);
    const subs = await Promise.all(nodes.map((n) => openStream(n, { org })));
    const acked = []; // {id, i}, in publish order
    let stop = false;
    const producer = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        const body = { orgId: org, service: 'finance', event: 'e', data: { i }, eventId: `${org}-${i}` };
        acked.push({ id: await publishRetrying(nodes[i % 3], body), i });
      }
    })();
    let primary;
    let logsBefore;
    try {
      await waitFor(() => acked.length >= 10, { timeout: ms(10000), what: 'events before the failover' });
      const old = await setup.primaryPort();
      logsBefore = nodes.map((n) => n.logs().length);
      primary = await act(old);
      assert.notEqual(primary, old);
      await allReady(nodes, 'every node ready on the new primary');
      const switched = acked.length;
      await waitFor(() => acked.length >= switched + 30, { timeout: ms(20000), what: 'events after the failover' });
    } finally {
      stop = true;
      await producer;
    }
    for (const [k, node] of nodes.entries()) {
      assert.ok(node.logs().slice(logsBefore[k]).some((l) => (l.message === 'redis sentinel announced a failover' ||
        l.message === 'redis sentinel names the primary') && l.redis === `127.0.0.1:${primary}`),
      'the node was told of the new primary');
    }
    const last = acked[acked.length - 1].id;
    for (const s of subs) {
      const got = await s.client.eventsUntil((m) => m.id === last, { timeout: ms(20000) });
      const byId = new Map();
      for (const m of got) {
        assert.ok(!byId.has(m.id), `event ${m.id} delivered twice`);
        byId.set(m.id, m);
      }
      for (const { id, i } of acked) {
        assert.ok(byId.has(id), `acknowledged event ${id} (i=${i}) delivered`);
        assert.equal(byId.get(id).data.i, i, `event ${id} carries its own content`);
      }
    }
    await closeAll(subs.map((s) => s.client));
  }

  test('SENTINEL FAILOVER while events flow, after the Sentinel the nodes ask and watch died: every node moves to the next Sentinel and follows the switch, /readyz recovers, every acknowledged event arrives once', { timeout: ms(60000) }, async () => {
    await failoverWhileFlowing('switch', async (old) => {
      // The first Sentinel of the URL is the one every node asks and listens to.
      const first = setup.sentinels[0];
      await first.kill();
      await waitFor(() => nodes.every((n) => n.logs().some((l) => l.message === 'leaving a redis sentinel' &&
        l.sentinel === `127.0.0.1:${first.port}`)), { timeout: ms(10000), what: 'every node to leave the dead Sentinel' });
      await setup.failover();
      const primary = await setup.waitNewPrimary(old);
      // With --redis-wait-replicas 1 the new primary needs the old one as its replica.
      await setup.makeReplica(old, primary);
      return primary;
    });
  });

  test('SIGKILL of the primary: 503 while there is none, then every node follows the promoted replica and every acknowledged event arrives once', { timeout: ms(60000) }, async () => {
    await failoverWhileFlowing('kill', async (old) => {
      await setup.server(old).kill();
      // The nodes see the primary go at once; the Sentinels take down-after-milliseconds (1 s)
      // and an election to replace it.
      await waitFor(async () => {
        for (const node of nodes) if ((await readyz(node)) !== 503) return false;
        return true;
      }, { timeout: ms(5000), what: '/readyz 503 on every node' });
      const r = await publish(nodes[0], { orgId: 'nobody', service: 'finance', event: 'e', data: {} });
      assert.equal(r.status, 503);
      assert.equal(r.json.error, 'broker_unavailable');
      const primary = await setup.waitNewPrimary(old);
      await setup.makeReplica(old, primary);
      return primary;
    });
  });
});
