// Issue 16: a channel's counter going back in Redis (a failover to a replica that lacked the last
// writes, or Redis restarting empty) must never give a client two different events under one id.
// Two nodes on one private redis-server; the channel is rewound by hand the way such a failover
// leaves it (the epoch key survives, the counter and the stream are behind). A node that handed
// the offsets out moves the channel to a new epoch; resuming clients are told epoch_changed.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, parseEventId, unique, waitFor } from './support/env.mjs';
import { publishOk } from './support/http.mjs';
import { channelName } from './support/redis.mjs';
import { openStream } from './support/ws.mjs';

async function publishTicks(node, org, tag, count) {
  const ids = [];
  for (let i = 0; i < count; i++) {
    ids.push(await publishOk(node, { orgId: org, service: 'finance', event: tag, data: { i } }));
  }
  return ids;
}

// Sets the channel's counter back from `from` to `to`, deletes its stream entries above and sets
// the stream's last id back.
async function rewind(redis, org, from, to) {
  const key = channelName(org, 'finance');
  assert.equal(await redis.command('SET', `${key}:seq`, String(to)), 'OK');
  for (let offset = to + 1; offset <= from; offset++) {
    assert.equal(await redis.command('XDEL', `${key}:stream`, `${offset}-0`), 1);
  }
  assert.equal(await redis.command('XSETID', `${key}:stream`, `${to}-0`), 'OK');
}

// Every id a client received names one event only.
function assertNoIdTwice(events) {
  const byId = new Map();
  for (const e of events) {
    const seen = byId.get(e.id);
    if (seen) assert.deepEqual([e.event, e.data], [seen.event, seen.data], `two events under ${e.id}`);
    byId.set(e.id, e);
  }
  assert.equal(byId.size, events.length, `an id arrived twice: ${events.map((e) => e.id)}`);
}

describe('a channel whose counter goes back in redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(2));
  });
  after(() => stopCluster({ redis, nodes }));

  test('rewound below what the publishing node acknowledged: a new epoch, no id twice, epoch_changed on resume', { timeout: ms(20000) }, async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const { client } = await openStream(a, { org });
    const first = await publishTicks(a, org, 'before', 3);
    await client.eventsUntil((e) => e.id === first[2]);
    const { epoch } = parseEventId(first[2]);
    await rewind(redis, org, 3, 1);

    const next = await publishTicks(a, org, 'after', 2);
    assert.deepEqual(
      next.map((id) => parseEventId(id).offset),
      [1, 2],
    );
    assert.notEqual(parseEventId(next[0]).epoch, epoch, 'the channel moved to a new epoch');
    assert.equal(parseEventId(next[1]).epoch, parseEventId(next[0]).epoch);
    await client.eventsUntil((e) => e.id === next[1], { timeout: ms(5000) });
    const events = client.received.filter((m) => m.type === 'event');
    assert.deepEqual(
      events.map((e) => e.id),
      [...first, ...next],
    );
    assertNoIdTwice(events);

    const resumed = await openStream(b, { org, user: 'back', resume: { finance: first[2] } });
    assert.deepEqual(resumed.ack.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    await resumed.client.close();
    await client.close();
  });

  test('an offset the subscribed node delivered comes again from a node that could not know: not delivered, the channel moves', { timeout: ms(20000) }, async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const { client } = await openStream(a, { org });
    const first = await publishTicks(a, org, 'before', 3);
    await client.eventsUntil((e) => e.id === first[2]);
    const { epoch } = parseEventId(first[2]);
    const key = channelName(org, 'finance');
    await rewind(redis, org, 3, 1);

    // b never handed out an offset of this channel: its publish reuses offset 2 (only
    // --redis-wait-replicas prevents that); a has delivered 2 already and moves the channel.
    const [clash] = await publishTicks(b, org, 'clash', 1);
    assert.equal(clash, `${epoch}-2`);
    await waitFor(async () => (await redis.command('GET', `${key}:epoch`)) !== epoch, {
      what: 'the channel to move to a new epoch',
    });
    const [later] = await publishTicks(b, org, 'later', 1);
    assert.notEqual(parseEventId(later).epoch, epoch);
    await client.eventsUntil((e) => e.id === later, { timeout: ms(5000) });
    const events = client.received.filter((m) => m.type === 'event');
    assert.deepEqual(
      events.map((e) => e.event),
      ['before', 'before', 'before', 'later'],
    );
    assertNoIdTwice(events);
    await client.close();
  });

  // Last: FLUSHALL takes every other test's channels with it.
  test('redis loses everything (FLUSHALL, as a restart without persistence): ids start over under a new epoch', { timeout: ms(20000) }, async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const { client } = await openStream(a, { org });
    const first = await publishTicks(b, org, 'before', 2);
    await client.eventsUntil((e) => e.id === first[1]);
    assert.equal(await redis.command('FLUSHALL'), 'OK');
    const next = await publishTicks(b, org, 'after', 2);
    assert.notEqual(parseEventId(next[0]).epoch, parseEventId(first[0]).epoch);
    assert.equal(parseEventId(next[0]).offset, 1);
    await client.eventsUntil((e) => e.id === next[1], { timeout: ms(5000) });
    const events = client.received.filter((m) => m.type === 'event');
    assert.deepEqual(
      events.map((e) => e.id),
      [...first, ...next],
    );
    assertNoIdTwice(events);
    const resumed = await openStream(a, { org, user: 'back', resume: { finance: first[1] } });
    assert.deepEqual(resumed.ack.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    await resumed.client.close();
    await client.close();
  });
});
