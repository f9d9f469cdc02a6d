// The stream itself: handshake and ack, events with exact fields, seq numbering, isolation
// between orgs, user-targeted events, live subscribe/unsubscribe, application ping.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RFC3339, loops, ms, parseEventId, unique } from './support/env.mjs';
import { publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { assertEventFrame, connect, openStream, tokenFor } from './support/ws.mjs';

describe('stream', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('the ack is seq 0 with timestamp, connectionId and the services', async () => {
    const before_ = Date.now();
    const { client, ack } = await openStream(server, { org: unique('o'), services: ['finance', 'ops'] });
    assert.equal(ack.type, 'ack');
    assert.equal(ack.seq, 0);
    assert.match(ack.timestamp, RFC3339);
    const t = Date.parse(ack.timestamp);
    assert.ok(Math.abs(t - before_) < 60000, `ack timestamp ${ack.timestamp} is not now`);
    assert.equal(typeof ack.connectionId, 'string');
    assert.ok(ack.connectionId.length > 0);
    assert.deepEqual([...ack.services].sort(), ['finance', 'ops']);
    assert.equal('resume' in ack, false, 'no resume field when none was asked');
    assert.equal(client.received[0], ack, 'the ack is the first frame');
    await client.close();
  });

  test('two connections get different connectionIds', async () => {
    const org = unique('o');
    const a = await openStream(server, { org, user: 'u1' });
    const b = await openStream(server, { org, user: 'u1' });
    assert.notEqual(a.ack.connectionId, b.ack.connectionId);
    await Promise.all([a.client.close(), b.client.close()]);
  });

  test('an explicit "type":"handshake" first message is accepted', async () => {
    const client = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
    client.send({ type: 'handshake', services: ['finance'], version: 1 });
    const ack = await client.next((m) => m.type === 'ack' || m.type === 'error');
    assert.equal(ack.type, 'ack');
    await client.close();
  });

  test('a published event arrives with exactly the contract fields', async () => {
    const org = 9000 + (process.pid % 1000);
    const { client } = await openStream(server, { org, services: ['finance'] });
    const data = {
      invoiceId: 'inv_42',
      amount: 1234.5,
      currency: 'EUR',
      tags: ['a', 'b'],
      nested: { ok: true, none: null, zero: 0 },
      text: 'héllo "quoted" \\ ✓ \n line',
    };
    const sent = Date.now();
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'invoice.paid', data });
    assert.doesNotThrow(() => parseEventId(id));
    const ev = await client.nextEvent();
    assertEventFrame(ev, { seq: 1, service: 'finance', id, event: 'invoice.paid', data });
    assert.ok(Math.abs(Date.parse(ev.timestamp) - sent) < 60000, `timestamp ${ev.timestamp}`);
    await client.close();
  });

  test('seq counts 1, 2, 3… per connection across services; offsets grow per channel', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org, services: ['finance', 'ops'] });
    const n = loops(30, 10);
    const ids = [];
    for (let i = 0; i < n; i++) {
      const service = i % 3 === 0 ? 'ops' : 'finance';
      ids.push(await publishOk(server, { orgId: org, service, event: 'tick', data: { i } }));
    }
    const events = await client.collectEvents(n);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.deepEqual(
      events.map((e) => e.id),
      ids,
      'events arrive in publish order with the ids publish returned',
    );
    for (const service of ['finance', 'ops']) {
      const offs = events.filter((e) => e.service === service).map((e) => parseEventId(e.id).offset);
      assert.deepEqual(
        offs,
        offs.map((_, i) => offs[0] + i),
        `${service} offsets contiguous`,
      );
    }
    // A second connection starts its own seq at 1.
    const second = await openStream(server, { org, services: ['finance'] });
    await publishOk(server, { orgId: org, service: 'finance', event: 'tick', data: { i: n } });
    const ev2 = await second.client.nextEvent();
    assert.equal(ev2.seq, 1);
    const ev1 = await client.nextEvent();
    assert.equal(ev1.seq, n + 1);
    await Promise.all([client.close(), second.client.close()]);
  });

  test('events published right after the ack on a brand-new channel all arrive, in offset order', { timeout: ms(30000) }, async () => {
    const rounds = loops(30, 10);
    for (let r = 0; r < rounds; r++) {
      const org = unique('fresh');
      const { client } = await openStream(server, { org });
      const ids = await Promise.all(
        Array.from({ length: 8 }, (_, i) => publishOk(server, { orgId: org, service: 'finance', event: 'early', data: { i } })),
      );
      const expected = ids.map((id) => parseEventId(id).offset).sort((a, b) => a - b);
      let events;
      try {
        events = await client.collectEvents(8, { timeout: ms(5000) });
      } catch (e) {
        const got = client.received.filter((m) => m.type === 'event').map((m) => parseEventId(m.id).offset);
        throw new Error(`round ${r}: offsets ${JSON.stringify(got)} arrived of ${JSON.stringify(expected)}`);
      }
      assert.deepEqual(
        events.map((e) => parseEventId(e.id).offset),
        expected,
        `round ${r}`,
      );
      await client.close();
    }
  });

  test('org isolation: an event for org A never reaches org B on the same service', async () => {
    const orgA = 100000 + (process.pid % 10000);
    const orgB = orgA + 1;
    const a = await openStream(server, { org: orgA, user: 'same-user', services: ['finance'] });
    const b = await openStream(server, { org: orgB, user: 'same-user', services: ['finance'] });
    const idA = await publishOk(server, { orgId: orgA, service: 'finance', event: 'secret.a', data: { org: 'A' } });
    const idB = await publishOk(server, { orgId: orgB, service: 'finance', event: 'public.b', data: { org: 'B' } });
    const evA = await a.client.nextEvent();
    assertEventFrame(evA, { id: idA, event: 'secret.a', seq: 1 });
    const evB = await b.client.nextEvent();
    // B's first event is its own, and nothing of A's came before or with it.
    assertEventFrame(evB, { id: idB, event: 'public.b', seq: 1, data: { org: 'B' } });
    assert.equal(
      b.client.received.some((m) => m.type === 'event' && m.event === 'secret.a'),
      false,
    );
    assert.equal(
      a.client.received.some((m) => m.type === 'event' && m.event === 'public.b'),
      false,
    );
    await Promise.all([a.client.close(), b.client.close()]);
  });

  test('a numeric orgId and the same org as a JSON number in the token match', async () => {
    const org = 200000 + (process.pid % 10000);
    const { client } = await openStream(server, { org });
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'x', data: {} });
    assert.equal((await client.nextEvent()).id, id);
    await client.close();
  });

  test('a numeric org is the same org whether token or publish spell it as a string', async () => {
    const org = 300000 + (process.pid % 10000);
    const asString = await openStream(server, { org: String(org), user: 's' });
    const asNumber = await openStream(server, { org, user: 'n' });
    const id1 = await publishOk(server, { orgId: org, service: 'finance', event: 'x', data: {} });
    const id2 = await publishOk(server, { orgId: String(org), service: 'finance', event: 'y', data: {} });
    for (const c of [asString, asNumber]) {
      assert.deepEqual(
        (await c.client.collectEvents(2)).map((e) => e.id),
        [id1, id2],
      );
    }
    await Promise.all([asString.client.close(), asNumber.client.close()]);
  });

  test('userId targets only that user (all of their connections)', async () => {
    const org = unique('o');
    const u1a = await openStream(server, { org, user: 'u1' });
    const u1b = await openStream(server, { org, user: 'u1' });
    const u2 = await openStream(server, { org, user: 'u2' });
    const targeted = await publishOk(server, {
      orgId: org,
      service: 'finance',
      event: 'for.u1',
      userId: 'u1',
      data: { private: true },
    });
    const broadcast = await publishOk(server, { orgId: org, service: 'finance', event: 'for.all', data: {} });
    for (const c of [u1a, u1b]) {
      const [e1, e2] = await c.client.collectEvents(2);
      assertEventFrame(e1, { id: targeted, event: 'for.u1', service: 'finance', seq: 1, data: { private: true } });
      assertEventFrame(e2, { id: broadcast, event: 'for.all', seq: 2 });
    }
    const first = await u2.client.nextEvent();
    assertEventFrame(first, { event: 'for.all', seq: 1 });
    assert.equal(
      u2.client.received.some((m) => m.event === 'for.u1'),
      false,
      'u2 never sees the targeted event',
    );
    await Promise.all([u1a, u1b, u2].map((c) => c.client.close()));
  });

  test('userId for a service the user did not subscribe to is not delivered', async () => {
    const org = unique('o');
    const c = await openStream(server, { org, user: 'u1', services: ['finance'] });
    await publishOk(server, { orgId: org, service: 'ops', event: 'ops.for.u1', userId: 'u1', data: {} });
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const ev = await c.client.nextEvent();
    assert.equal(ev.id, sentinel);
    assert.equal(ev.seq, 1);
    await c.client.close();
  });

  test('subscribe and unsubscribe on a live connection', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org, services: ['finance'] });

    client.send({ type: 'subscribe', services: ['ops'] });
    const sub = await client.next((m) => m.type === 'subscribed' || m.type === 'error');
    assert.equal(sub.type, 'subscribed');
    assert.deepEqual(sub.services, ['ops']);

    const opsId = await publishOk(server, { orgId: org, service: 'ops', event: 'deploy', data: { v: 1 } });
    assertEventFrame(await client.nextEvent(), { id: opsId, service: 'ops', seq: 1 });

    client.send({ type: 'unsubscribe', services: ['finance'] });
    const unsub = await client.next((m) => m.type === 'unsubscribed' || m.type === 'error');
    assert.equal(unsub.type, 'unsubscribed');
    assert.deepEqual(unsub.services, ['finance']);

    await publishOk(server, { orgId: org, service: 'finance', event: 'gone', data: {} });
    const opsId2 = await publishOk(server, { orgId: org, service: 'ops', event: 'deploy', data: { v: 2 } });
    const next = await client.nextEvent();
    assertEventFrame(next, { id: opsId2, service: 'ops', seq: 2 });
    assert.equal(
      client.received.some((m) => m.event === 'gone'),
      false,
      'no finance event after unsubscribe',
    );

    // Resubscribing brings finance back.
    client.send({ type: 'subscribe', services: ['finance'] });
    assert.equal((await client.next((m) => m.type === 'subscribed' || m.type === 'error')).type, 'subscribed');
    const finId = await publishOk(server, { orgId: org, service: 'finance', event: 'back', data: {} });
    assertEventFrame(await client.nextEvent(), { id: finId, service: 'finance', seq: 3 });
    await client.close();
  });

  test('{"type":"ping"} is answered with {"type":"pong"}', async () => {
    const { client } = await openStream(server, { org: unique('o') });
    client.send({ type: 'ping' });
    const pong = await client.next((m) => m.type === 'pong' || m.type === 'error');
    assert.equal(pong.type, 'pong');
    assert.ok(client.isOpen);
    await client.close();
  });

  test('several subscribers of one channel each get every event once, in order', { timeout: ms(30000) }, async () => {
    const org = unique('o');
    const subs = await Promise.all(Array.from({ length: 8 }, (_, i) => openStream(server, { org, user: `u${i}` })));
    const n = loops(50, 10);
    const ids = [];
    for (let i = 0; i < n; i++) ids.push(await publishOk(server, { orgId: org, service: 'finance', event: 'e', data: { i } }));
    for (const s of subs) {
      const evs = await s.client.collectEvents(n);
      assert.deepEqual(
        evs.map((e) => e.id),
        ids,
      );
      assert.deepEqual(
        evs.map((e) => e.data.i),
        Array.from({ length: n }, (_, i) => i),
      );
    }
    await Promise.all(subs.map((s) => s.client.close()));
  });
});
