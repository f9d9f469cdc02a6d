// Issue 16: a channel's counter going back in Redis (a failover to a replica that lacked the last
// writes, or Redis restarting empty) must never give a client two different events under one id.
// Two nodes on one private redis-server; the channel is rewound by hand the way such a failover
// leaves it (the epoch key survives, the counter and the stream are behind). A node that handed
// the offsets out moves the channel to a new epoch; resuming clients are told epoch_changed, also
// when they come back before anything else touched the channel. A forged id ahead of the counter
// moves nothing. streamgate_broker_epoch_moves_total counts each node's moves by reason.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, parseEventId, unique, waitFor } from './support/env.mjs';
import { promValue, publishOk } from './support/http.mjs';
import { channelName } from './support/redis.mjs';
import { openSseStream } from './support/sse.mjs';
import { openStream } from './support/ws.mjs';

const moves = (node, reason) => promValue(node, 'streamgate_broker_epoch_moves_total', { reason });

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
    const moved = await moves(a, 'publish');

    const next = await publishTicks(a, org, 'after', 2);
    assert.equal(await moves(a, 'publish'), moved + 1, 'one move, counted by the node whose publish made it');
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
    const moved = await moves(a, 'live');

    // b never handed out an offset of this channel: its publish reuses offset 2 (only
    // --redis-wait-replicas prevents that); a has delivered 2 already and moves the channel.
    const [clash] = await publishTicks(b, org, 'clash', 1);
    assert.equal(clash, `${epoch}-2`);
    await waitFor(async () => (await redis.command('GET', `${key}:epoch`)) !== epoch, {
      what: 'the channel to move to a new epoch',
    });
    assert.equal(await moves(a, 'live'), moved + 1);
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

  // The window before anything else touches the channel: the client was cut off with the rest
  // of the node's connections, the counter went back, and the client is the first to return.
  // Answered from the stream as it is, its id would be ahead of the counter (unknown_id) and the
  // next publishes would reuse ids it holds; the node remembers acknowledging them, so it moves
  // the channel first. Both resume paths: WebSocket resume and SSE Last-Event-ID.
  test('rewound, then the first to touch the channel is a client resuming with its last id: epoch_changed, never an id twice', { timeout: ms(20000) }, async () => {
    const [a, b] = nodes;
    const before = { resume: await moves(a, 'resume'), other: await moves(b, 'resume') };
    const setUp = async () => {
      const org = unique('o');
      const { client } = await openStream(a, { org });
      const first = await publishTicks(a, org, 'before', 3);
      await client.eventsUntil((e) => e.id === first[2]);
      await client.close();
      return { org, first, seen: client.received.filter((m) => m.type === 'event') };
    };
    const ws = await setUp();
    const sse = await setUp();
    await rewind(redis, ws.org, 3, 1);
    await rewind(redis, sse.org, 3, 1);

    const resumed = await openStream(a, { org: ws.org, user: 'back', resume: { finance: ws.first[2] } });
    assert.deepEqual(resumed.ack.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    const cursor = Buffer.from(`1 finance=${sse.first[2]}`).toString('base64url');
    const sseResumed = await openSseStream(a, { org: sse.org, user: 'back', lastEventId: cursor });
    assert.deepEqual(sseResumed.ack.json.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    assert.equal(await moves(a, 'resume'), before.resume + 2, 'one move per channel, by the resume');
    assert.equal(await moves(b, 'resume'), before.other);

    // b never saw the lost offsets: without the move its publishes would be e-2 and e-3 again.
    for (const { org, first } of [ws, sse]) {
      const key = channelName(org, 'finance');
      assert.notEqual(await redis.command('GET', `${key}:epoch`), parseEventId(first[0]).epoch);
    }
    const wsNext = await publishTicks(b, ws.org, 'after', 2);
    const sseNext = await publishTicks(b, sse.org, 'after', 2);
    for (const id of [...wsNext, ...sseNext]) assert.notEqual(parseEventId(id).epoch, parseEventId(ws.first[0]).epoch);
    await resumed.client.eventsUntil((e) => e.id === wsNext[1], { timeout: ms(5000) });
    const wsEvents = [...ws.seen, ...resumed.client.received.filter((m) => m.type === 'event')];
    assert.deepEqual(
      wsEvents.map((e) => e.id),
      [...ws.first, ...wsNext],
    );
    assertNoIdTwice(wsEvents);
    const sseEvents = (await sseResumed.client.collectEvents(2)).map((e) => e.json);
    assert.deepEqual(
      [...sse.seen, ...sseEvents].map((e) => e.id),
      [...sse.first, ...sseNext],
    );
    assertNoIdTwice([...sse.seen, ...sseEvents]);
    await resumed.client.close();
    await sseResumed.client.close();
  });

  // A client can claim any offset of its org's channel. Ahead of the counter with no node
  // remembering more, it is not evidence: nothing moves, the other clients keep their ids and
  // history, and the forger is only kept from events under the offsets it claimed to have.
  test('a forged id ahead of the counter moves nothing: other clients live and resuming are unaffected', { timeout: ms(20000) }, async () => {
    const [a, b] = nodes;
    const org = unique('o');
    const key = channelName(org, 'finance');
    const before = { a: await moves(a, 'resume'), b: await moves(b, 'resume') };
    const live = await openStream(a, { org, user: 'live' });
    const first = await publishTicks(a, org, 'before', 3);
    await live.client.eventsUntil((e) => e.id === first[2]);
    const { epoch } = parseEventId(first[0]);

    const forged = [];
    for (const node of [a, b]) {
      const f = await openStream(node, { org, user: 'forger', resume: { finance: `${epoch}-5` } });
      assert.deepEqual(f.ack.resume, { finance: { recovered: false, reason: 'unknown_id' } });
      forged.push(f.client);
    }
    assert.equal(await redis.command('GET', `${key}:epoch`), epoch, 'the channel did not move');
    assert.deepEqual([await moves(a, 'resume'), await moves(b, 'resume')], [before.a, before.b]);

    const resumer = await openStream(b, { org, user: 'resumer', resume: { finance: first[0] } });
    assert.deepEqual(resumer.ack.resume, { finance: { recovered: true } });
    const next = await publishTicks(b, org, 'after', 3);
    assert.deepEqual(
      next.map((id) => parseEventId(id)),
      [4, 5, 6].map((offset) => ({ epoch, offset })),
    );
    for (const c of [live.client, resumer.client, ...forged]) {
      await c.eventsUntil((e) => e.id === next[2], { timeout: ms(5000) });
    }
    const ids = (c) => c.received.filter((m) => m.type === 'event').map((e) => e.id);
    assert.deepEqual(ids(live.client), [...first, ...next]);
    assert.deepEqual(ids(resumer.client), [...first.slice(1), ...next]);
    // The forger said it had everything up to 5: 4 and 5 could be ids it holds for other events.
    for (const c of forged) assert.deepEqual(ids(c), [next[2]]);
    for (const c of [live.client, resumer.client, ...forged]) await c.close();
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
