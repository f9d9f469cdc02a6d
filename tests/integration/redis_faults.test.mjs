// Faults with three nodes on one private redis-server: a node killed with SIGKILL loses only
// its own connections, whose clients resume on another node with nothing lost; Redis stopped
// mid-stream turns publishes into 503 and /readyz non-200 within 3 s while WebSockets stay
// open, and once it is back every event whose publish returned 200 reaches every client
// exactly once, in order, on the connection it never left.

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { loops, ms, unique, waitFor } from './support/env.mjs';
import { publish, publishOk } from './support/http.mjs';
import { openStream } from './support/ws.mjs';

async function readyz(node) {
  return (await fetch(`${node.httpUrl}/readyz`)).status;
}

// Publishes `body` until it gets a 200, the way a producer honours "retry with the same
// eventId"; returns {id, refused} where refused counts the 503s on the way.
async function publishUntilOk(node, body, { timeout = ms(20000) } = {}) {
  const deadline = Date.now() + timeout;
  let refused = 0;
  for (;;) {
    const r = await publish(node, body);
    if (r.status === 200) return { id: r.json.id, refused };
    assert.equal(r.status, 503, `publish answered ${r.status}: ${r.text}`);
    refused += 1;
    if (Date.now() > deadline) throw new Error(`publish still refused after ${timeout} ms`);
    await delay(50);
  }
}

describe('faults with three nodes on one redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(3, { history: 5000 }));
  });
  after(() => stopCluster({ redis, nodes }));

  test('SIGKILL of a node mid-stream: its client resumes on another node with no gap; the others never notice', { timeout: ms(50000) }, async () => {
    const [victim, producer, other] = nodes;
    const org = unique('o');
    const total = loops(200, 80);
    const onVictim = await openStream(victim, { org, user: 'moving' });
    const onOther = await openStream(other, { org, user: 'staying' });
    const ids = [];
    const publishing = (async () => {
      for (let i = 0; i < total; i++) {
        ids.push(await publishOk(producer, { orgId: org, service: 'finance', event: 'tick', data: { i } }));
      }
    })();

    const before = await onVictim.client.collectEvents(loops(30, 10), { timeout: ms(15000) });
    victim.signal('SIGKILL');
    await victim.waitExit();
    const closed = await onVictim.client.waitClose();
    assert.equal(closed.code, 1006, 'the killed node sent no close frame');
    // Whatever else reached the client before the socket died counts as seen.
    const seen = onVictim.client.received.filter((m) => m.type === 'event');
    assert.ok(seen.length >= before.length);
    const last = seen[seen.length - 1].id;

    const resumed = await openStream(other, { org, user: 'moving', resume: { finance: last } });
    assert.deepEqual(resumed.ack.resume, { finance: { recovered: true } });
    await publishing;
    const final = ids[ids.length - 1];
    const rest = await resumed.client.eventsUntil((m) => m.id === final, { timeout: ms(20000) });
    assert.deepEqual(
      seen.concat(rest).map((e) => e.id),
      ids,
      'the moving client has every event once, in order',
    );
    const all = await onOther.client.eventsUntil((m) => m.id === final, { timeout: ms(20000) });
    assert.deepEqual(
      all.map((e) => e.id),
      ids,
    );
    assert.equal(onOther.client.closeInfo, undefined, 'the other node kept its connection');
    assert.equal(await readyz(producer), 200);
    resumed.client.terminate();
    onOther.client.terminate();
  });

  test('redis stopped and restarted mid-stream: 503 and /readyz down meanwhile, then every 200 event exactly once on connections that stayed open', { timeout: ms(55000) }, async () => {
    const live = nodes.filter((n) => !n.exitInfo);
    assert.ok(live.length >= 2);
    const org = unique('o');
    const clients = [];
    for (const [i, node] of live.entries()) clients.push((await openStream(node, { org, user: `u${i}` })).client);

    const total = loops(150, 60);
    const accepted = [];
    let refused = 0;
    const producing = (async () => {
      for (let i = 0; i < total; i++) {
        const node = live[i % live.length];
        const r = await publishUntilOk(node, { orgId: org, service: 'finance', event: 'tick', data: { i }, eventId: `${org}-${i}` });
        accepted.push(r.id);
        refused += r.refused;
        if (i === Math.floor(total / 3)) await outage();
      }
    })();

    // Runs inside the producer at one third: stop redis, check the node-side symptoms, start it again.
    async function outage() {
      await redis.stop();
      for (const node of live) {
        const started = Date.now();
        await waitFor(async () => (await readyz(node)) === 503, { timeout: ms(3000), interval: 50, what: '/readyz to turn 503' });
        assert.ok(Date.now() - started <= ms(3000));
      }
      const r = await publish(live[0], { orgId: org, service: 'finance', event: 'refused', data: {} });
      assert.equal(r.status, 503);
      assert.equal(r.json?.error, 'broker_unavailable');
      for (const c of clients) assert.ok(c.isOpen, 'WebSocket stays open while redis is down');
      // Publishing resumes at once: a node whose command connection is back before its Pub/Sub
      // connection has resubscribed stores events its subscribers must catch up on.
      await redis.launch();
    }

    await producing;
    for (const node of live) await waitFor(async () => (await readyz(node)) === 200, { timeout: ms(10000), what: '/readyz back to 200' });
    const final = accepted[accepted.length - 1];
    for (const c of clients) {
      const events = await c.eventsUntil((m) => m.id === final, { timeout: ms(20000) });
      assert.deepEqual(
        events.map((e) => e.id),
        accepted,
        'every accepted event once, in order',
      );
      events.forEach((e, i) => assert.equal(e.seq, i + 1));
      assert.ok(c.isOpen);
      c.terminate();
    }
    // Publishes racing the stop may have been refused and retried; none was lost or doubled.
    assert.equal(new Set(accepted).size, total, `${refused} publish(es) were refused and retried`);
  });
});
