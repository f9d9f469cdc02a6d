// Per-org fairness quotas against the real binary (issue 18): egressBytes paces what one org's
// connections are written on a node (delayed, never dropped; another org unaffected); chatRate
// refuses an org's chat messages past its bucket. Fair fan-out: one worker writes a small org's
// event among another org's burst, not after it. One server per describe.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inBatches, ms, unique, waitFor } from './support/env.mjs';
import { orgLimits, promValue, publishOk } from './support/http.mjs';
import { chatClient, expectRoomError, join, roomGetOk, say } from './support/chat.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

const EGRESS = 2000; // --org-egress-bytes, bytes/s per org; its bucket holds one second's worth
const OUTBOX = 65536; // --outbox-bytes: what a paced connection may fall behind by

const refusals = (server, quota) => promValue(server, 'streamgate_quota_refusals_total', { quota });

// Records each text message's arrival time and size next to what the Client keeps.
function timed(client) {
  const arrivals = [];
  client.ws.on('message', (data, isBinary) => {
    if (!isBinary) arrivals.push({ at: Date.now(), bytes: data.length, m: JSON.parse(data.toString('utf8')) });
  });
  return arrivals;
}

describe(`org fairness quotas (--org-egress-bytes ${EGRESS} --org-chat-rate 1 --org-chat-burst 2)`, () => {
  let server;
  before(async () => {
    server = await startServer({
      flags: { 'org-egress-bytes': EGRESS, 'outbox-bytes': OUTBOX, 'org-chat-rate': 1, 'org-chat-burst': 2 },
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('egressBytes: an org over its rate gets every event, in order, paced; another org is not delayed', async () => {
    const orgA = unique('ea');
    const orgB = unique('eb');
    const { client: a } = await openStream(server, { org: orgA, user: 'u1' });
    const { client: b } = await openStream(server, { org: orgB, user: 'u1' });
    const arrivalsA = timed(a);
    const refusedBefore = (await refusals(server, 'egressBytes')) ?? 0;

    // 10 events of ~1 KB: five seconds' worth of the org's rate, so at most the first ~2 KB
    // can go out at once.
    const count = 10;
    for (let n = 0; n < count; n += 1) {
      await publishOk(server, { orgId: orgA, service: 'finance', event: 'big', data: { n, pad: 'x'.repeat(1000) } });
    }
    await waitFor(() => arrivalsA.length >= 1, { what: "org A's first event", timeout: ms(5000) });
    // Org B's event, published while A's are still paced, arrives before A's last one.
    await publishOk(server, { orgId: orgB, service: 'finance', event: 'small', data: { n: 0 } });
    const eventB = await b.nextEvent({ timeout: ms(5000) });
    assert.equal(eventB.event, 'small');
    const aDoneWhenBArrived = arrivalsA.length;
    assert.ok(aDoneWhenBArrived < count, `org B's event waited for all of org A's (${aDoneWhenBArrived} of ${count})`);

    await waitFor(() => arrivalsA.length >= count, { what: `org A's ${count} events`, timeout: ms(15000) });
    assert.ok(a.isOpen, 'paced, not closed');
    assert.deepEqual(
      arrivalsA.map((x) => x.m.data.n),
      [...Array(count).keys()],
      'every event, once, in order',
    );
    // A bucket of EGRESS bytes refilled at EGRESS bytes/s can pass at most EGRESS + EGRESS·t
    // bytes in t seconds: the bytes after the first event need at least this long (less a
    // margin for the client's own scheduling of the first arrival).
    const after1 = arrivalsA.slice(1).reduce((sum, x) => sum + x.bytes, 0);
    const minimum = ((after1 - EGRESS) / EGRESS) * 1000 - 250;
    const spread = arrivalsA[count - 1].at - arrivalsA[0].at;
    assert.ok(spread >= minimum, `${after1} bytes at ${EGRESS} B/s arrived over ${spread} ms (at least ${minimum} ms)`);
    assert.ok((await refusals(server, 'egressBytes')) > refusedBefore, 'waits counted as egressBytes refusals');
    a.ws.close();
    b.ws.close();
  });

  test('egressBytes: a paced client that falls more than --outbox-bytes behind is closed as a slow consumer and resumes', async () => {
    const org = unique('es');
    const { client } = await openStream(server, { org, user: 'u1' });
    const slowBefore = (await promValue(server, 'streamgate_slow_consumer_closes_total')) ?? 0;
    // A first small event, so the client has a position to resume from.
    await publishOk(server, { orgId: org, service: 'finance', event: 'small', data: { n: -1 } });
    await client.nextEvent();
    // 100 KB queued at 2 KB/s: past the 64 KiB bound long before it could be written.
    const ids = [];
    for (let n = 0; n < 10; n += 1) {
      ids.push(await publishOk(server, { orgId: org, service: 'finance', event: 'big', data: { n, pad: 'x'.repeat(10000) } }));
    }
    const closed = await client.closed;
    assert.equal(closed.code, 4008, JSON.stringify(closed));
    const got = client.received.filter((m) => m.type === 'event');
    assert.ok(got.length < ids.length + 1, `${got.length} events before the close`);
    assert.deepEqual(got.map((m) => m.data.n), [...Array(got.length).keys()].map((k) => k - 1), 'a prefix, in order');
    assert.equal(await promValue(server, 'streamgate_slow_consumer_closes_total'), slowBefore + 1);
    // It resumes from the last event it has, as any slow consumer does.
    const resume = { finance: got[got.length - 1].id };
    const { client: again, ack } = await openStream(server, { org, user: 'u1', resume });
    assert.deepEqual(ack.resume?.finance, { recovered: true }, JSON.stringify(ack));
    again.ws.close();
  });

  test('egressBytes override: set, read back; 0 lifts the default for that org', async () => {
    const org = unique('eo');
    let r = await orgLimits(server, 'PUT', org, { egressBytes: 0 });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { egressBytes: 0 });
    const { client } = await openStream(server, { org, user: 'u1' });
    const arrivals = timed(client);
    const refusedBefore = (await refusals(server, 'egressBytes')) ?? 0;
    const count = 10;
    for (let n = 0; n < count; n += 1) {
      await publishOk(server, { orgId: org, service: 'finance', event: 'big', data: { n, pad: 'x'.repeat(1000) } });
    }
    // Five seconds of the default's rate, yet never held back.
    await waitFor(() => arrivals.length >= count, { what: 'the unpaced events', timeout: ms(5000) });
    assert.equal((await refusals(server, 'egressBytes')) ?? 0, refusedBefore, 'no egress wait');
    r = await orgLimits(server, 'PUT', org, { egressBytes: 5000, publishRate: 0 });
    assert.deepEqual(r.json, { publishRate: 0, egressBytes: 5000 });
    assert.equal((await orgLimits(server, 'DELETE', org)).status, 204);
    client.ws.close();
  });

  test('chatRate: past the org burst a message gets quota_exceeded, nothing stored; another org unaffected', async () => {
    const org = unique('ch');
    const other = unique('ch');
    const alice = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    const carol = await chatClient(server, { org: other, user: 'carol' });
    await join(alice, 'general');
    await join(bob, 'general');
    await join(carol, 'general');
    const refusedBefore = (await refusals(server, 'chatRate')) ?? 0;
    // The burst (2) is the org's, shared by its users, each far under their own --chat-burst.
    // Sent back to back: the bucket refills one message a second, far slower than this.
    alice.send({ type: 'message', room: 'general', text: 'one', clientMessageId: 'm1' });
    alice.send({ type: 'message', room: 'general', text: 'two', clientMessageId: 'm2' });
    const replies = [];
    for (const id of ['m1', 'm2']) {
      replies.push(await alice.next((m) => m.clientMessageId === id && (m.type === 'sent' || m.type === 'error'), { what: id }));
    }
    assert.deepEqual(replies.map((m) => m.type), ['sent', 'sent'], JSON.stringify(replies));
    bob.send({ type: 'message', room: 'general', text: 'three', clientMessageId: 'm3' });
    const refused = await expectRoomError(bob, 'general', 'quota_exceeded');
    assert.equal(refused.clientMessageId, 'm3');
    assert.match(refused.message, /chatRate/);
    assert.equal(await refusals(server, 'chatRate'), refusedBefore + 1);
    // Another org's bucket is its own; the refused message was not stored.
    await say(carol, 'general', 'hi', 'c1');
    const stats = await roomGetOk(server, 'general', 'stats', alice.token);
    assert.equal(stats.messagesTotal, 2, JSON.stringify(stats));
    assert.ok(alice.isOpen && bob.isOpen, 'the connection stays open');
    alice.ws.close();
    bob.ws.close();
    carol.ws.close();
  });
});

describe('fair flush: one worker, org A with many connections, org B with one', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { workers: 1 } });
  });
  after(async () => {
    await server?.stop();
  });

  test("org B's event is written among org A's burst, not after all of it", { timeout: ms(60000) }, async () => {
    const orgA = unique('fa');
    const orgB = unique('fb');
    const MANY = 500; // many flush batches (8 connections each)
    const opened = await inBatches(Array.from({ length: MANY }, (_, k) => k), 50, (k) =>
      openStream(server, { org: orgA, user: `u${k}` }),
    );
    const clients = opened.map((o) => o.client);
    const { client: b } = await openStream(server, { org: orgB, user: 'u1' });
    // One count over every client: the rank in which the event frames arrived.
    let rank = 0;
    const ranks = new Map();
    for (const c of [...clients, b]) {
      c.ws.on('message', (data) => {
        if (JSON.parse(data.toString('utf8')).type === 'event') ranks.set(c, ++rank);
      });
    }
    // One request: org A's event (to MANY connections), then org B's; both reach the worker
    // before its first flush.
    const res = await fetch(`${server.httpUrl}/v2/realtime/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify([
        { orgId: orgA, service: 'finance', event: 'burst', data: {} },
        { orgId: orgB, service: 'finance', event: 'single', data: {} },
      ]),
    });
    assert.equal(res.status, 200, await res.text());
    await waitFor(() => ranks.size === MANY + 1, { what: 'every event', timeout: ms(20000) });
    // In arrival order org B's event would be last (rank MANY + 1) if flushes ran first come,
    // first served; an org with nothing waiting has its event fanned out and written by the
    // handler it arrives in, and round robin by org would write it in the first batch anyway.
    const rankB = ranks.get(b);
    assert.ok(rankB <= MANY - 100, `org B's event arrived ${rankB}th of ${MANY + 1}`);
    await closeAll([...clients, b]);
  });
});
