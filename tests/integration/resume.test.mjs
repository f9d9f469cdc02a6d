// Resume: a client that reconnects with the last id it saw gets every later event still in
// history, then live, with no gap and no duplicate — also while a producer races the replay.
// epoch_changed, too_old (--history 5), resume through a later subscribe, malformed ids.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loops, ms, parseEventId, unique } from './support/env.mjs';
import { publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { assertEventFrame, connect, openStream, tokenFor } from './support/ws.mjs';

async function publishN(server, org, service, n, event = 'e') {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await publishOk(server, { orgId: org, service, event, data: { i } }));
  return ids;
}

describe('resume (--history 2000)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { history: 2000 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('replays exactly the events after the given id, then continues live', async () => {
    const org = unique('o');
    const first = await openStream(server, { org });
    const early = await publishN(server, org, 'finance', 3);
    const seen = await first.client.collectEvents(3);
    assert.deepEqual(
      seen.map((e) => e.id),
      early,
    );
    await first.client.close();

    const missed = await publishN(server, org, 'finance', 4);
    const { client, ack } = await openStream(server, { org, resume: { finance: early[2] } });
    assert.deepEqual(ack.resume, { finance: { recovered: true } });
    const replay = await client.collectEvents(4);
    replay.forEach((e, i) => assertEventFrame(e, { id: missed[i], seq: i + 1, service: 'finance', data: { i } }));
    const live = await publishOk(server, { orgId: org, service: 'finance', event: 'live', data: {} });
    assertEventFrame(await client.nextEvent(), { id: live, seq: 5, event: 'live' });
    assert.deepEqual(
      client.received.map((m) => m.type),
      ['ack', 'event', 'event', 'event', 'event', 'event'],
      'nothing else was sent',
    );
    await client.close();
  });

  test('resuming from the newest id replays nothing and is recovered', async () => {
    const org = unique('o');
    const ids = await publishN(server, org, 'finance', 3);
    const { client, ack } = await openStream(server, { org, resume: { finance: ids[2] } });
    assert.deepEqual(ack.resume, { finance: { recovered: true } });
    const live = await publishOk(server, { orgId: org, service: 'finance', event: 'live', data: {} });
    assertEventFrame(await client.nextEvent(), { id: live, seq: 1 });
    await client.close();
  });

  test('resume applies per service: the other service of the handshake is live only', async () => {
    const org = unique('o');
    const fin = await publishN(server, org, 'finance', 3);
    await publishN(server, org, 'ops', 2);
    const { client, ack } = await openStream(server, { org, services: ['finance', 'ops'], resume: { finance: fin[0] } });
    assert.deepEqual(ack.resume, { finance: { recovered: true } });
    const replay = await client.collectEvents(2);
    assert.deepEqual(
      replay.map((e) => e.id),
      fin.slice(1),
    );
    const opsLive = await publishOk(server, { orgId: org, service: 'ops', event: 'live', data: {} });
    assertEventFrame(await client.nextEvent(), { id: opsLive, seq: 3, service: 'ops' });
    await client.close();
  });

  test('a later subscribe can resume too', async () => {
    const org = unique('o');
    const ops = await publishN(server, org, 'ops', 4);
    const { client } = await openStream(server, { org, services: ['finance'] });
    client.send({ type: 'subscribe', services: ['ops'], resume: { ops: ops[1] } });
    const sub = await client.next((m) => m.type === 'subscribed' || m.type === 'error');
    assert.equal(sub.type, 'subscribed', JSON.stringify(sub));
    assert.deepEqual(sub.services, ['ops']);
    assert.deepEqual(sub.resume, { ops: { recovered: true } });
    const replay = await client.collectEvents(2);
    replay.forEach((e, i) => assertEventFrame(e, { id: ops[i + 2], seq: i + 1, service: 'ops' }));
    await client.close();
  });

  test('an unknown epoch → recovered:false, reason epoch_changed; live events still flow', async () => {
    const org = unique('o');
    const ids = await publishN(server, org, 'finance', 2);
    const { epoch } = parseEventId(ids[0]);
    const fake = epoch === 'zz0000zz' ? 'yy1111yy' : 'zz0000zz';
    const { client, ack } = await openStream(server, { org, resume: { finance: `${fake}-1` } });
    assert.deepEqual(ack.resume, { finance: { recovered: false, reason: 'epoch_changed' } });
    const live = await publishOk(server, { orgId: org, service: 'finance', event: 'live', data: {} });
    const events = await client.eventsUntil((e) => e.id === live);
    const ids2 = events.map((e) => e.id);
    assert.equal(new Set(ids2).size, ids2.length, `no duplicates: ${ids2}`);
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, i) => i + 1),
    );
    await client.close();
  });

  const malformed = ['garbage', '12345', 'abc-', '-5', 'ABC-1', 'abc-x', 'abc-1-2', 'abc--1', `${'a'.repeat(33)}-1`, ''];
  for (const id of malformed) {
    test(`a malformed resume id ${JSON.stringify(id)} → error frame + close 1008`, async () => {
      const client = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
      client.send({ services: ['finance'], version: 1, resume: { finance: id } });
      const err = await client.next((m) => m.type === 'error', { what: 'an error frame' });
      assert.equal(typeof err.code, 'string');
      assert.equal((await client.waitClose()).code, 1008);
      assert.equal(client.received.some((m) => m.type === 'ack'), false, 'no ack');
    });
  }

  test('a resume id that is not a string → error frame + close 1008', async () => {
    const client = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
    client.send({ services: ['finance'], version: 1, resume: { finance: 5 } });
    await client.next((m) => m.type === 'error', { what: 'an error frame' });
    assert.equal((await client.waitClose()).code, 1008);
  });

  test('resume while a producer publishes continuously: every event once, offsets contiguous', { timeout: ms(50000) }, async (t) => {
    const org = unique('race');
    const total = loops(600, 150);
    let { client } = await openStream(server, { org });

    let next = 0;
    const producer = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < total) {
          const i = next++;
          await publishOk(server, { orgId: org, service: 'finance', event: 'tick', data: { i } });
        }
      }),
    );
    let producerError;
    producer.catch((e) => {
      producerError = e;
    });

    let expected = 1;
    let epoch;
    let lastId;
    let reconnects = 0;
    const seenData = new Set();
    try {
      for (;;) {
        const chunk = 3 + ((reconnects * 7) % 29);
        let seq = 1;
        for (let got = 0; got < chunk && expected <= total; got++) {
          if (producerError) throw producerError;
          const ev = await client.nextEvent({ timeout: ms(10000) });
          const pos = parseEventId(ev.id);
          epoch ??= pos.epoch;
          assert.equal(pos.epoch, epoch, 'epoch stable');
          assert.equal(
            pos.offset,
            expected,
            `offset after ${lastId} on reconnect #${reconnects}: expected ${expected}, got ${pos.offset}`,
          );
          assert.equal(ev.seq, seq, 'seq contiguous on this connection');
          assert.equal(seenData.has(ev.data.i), false, `payload ${ev.data.i} seen twice`);
          seenData.add(ev.data.i);
          seq += 1;
          expected += 1;
          lastId = ev.id;
        }
        if (expected > total) break;
        await client.close();
        reconnects += 1;
        const r = await openStream(server, { org, resume: { finance: lastId } });
        assert.deepEqual(r.ack.resume, { finance: { recovered: true } }, `reconnect #${reconnects}`);
        client = r.client;
      }
      await producer;
      const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
      const ev = await client.nextEvent();
      assert.equal(ev.id, sentinel, 'nothing after the last produced event but the sentinel');
      assert.equal(parseEventId(sentinel).offset, total + 1);
      assert.equal(seenData.size, total);
      assert.ok(reconnects >= 3, `only ${reconnects} reconnects`);
      t.diagnostic(`${total} events, ${reconnects} resumes`);
    } finally {
      await client.close().catch(() => client.terminate());
      await producer.catch(() => {});
    }
  });
});

describe('resume with --history 5', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { history: 5 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('an id older than history → recovered:false too_old, the kept events replayed', async () => {
    const org = unique('o');
    const ids = await publishN(server, org, 'finance', 10);
    const { client, ack } = await openStream(server, { org, resume: { finance: ids[1] } });
    assert.deepEqual(ack.resume, { finance: { recovered: false, reason: 'too_old' } });
    const replay = await client.collectEvents(5);
    replay.forEach((e, i) => assertEventFrame(e, { id: ids[5 + i], seq: i + 1 }));
    const live = await publishOk(server, { orgId: org, service: 'finance', event: 'live', data: {} });
    assertEventFrame(await client.nextEvent(), { id: live, seq: 6 });
    await client.close();
  });

  test('one event short of history → too_old; exactly at the edge → recovered', async () => {
    const org = unique('o');
    const ids = await publishN(server, org, 'finance', 10);
    // History holds offsets 6..10. After 4, offset 5 is gone; after 5, nothing is missing.
    const short = await openStream(server, { org, resume: { finance: ids[3] } });
    assert.deepEqual(short.ack.resume, { finance: { recovered: false, reason: 'too_old' } });
    assert.deepEqual(
      (await short.client.collectEvents(5)).map((e) => e.id),
      ids.slice(5),
    );
    const edge = await openStream(server, { org, resume: { finance: ids[4] } });
    assert.deepEqual(edge.ack.resume, { finance: { recovered: true } });
    assert.deepEqual(
      (await edge.client.collectEvents(5)).map((e) => e.id),
      ids.slice(5),
    );
    await Promise.all([short.client.close(), edge.client.close()]);
  });
});
