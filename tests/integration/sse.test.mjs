// Server-Sent Events (GET /v2/realtime/sse) over raw sockets, so the framing is what the server
// wrote: the response head, chunks, one message per event with the WebSocket event frame as
// data and a cursor over every service as id; auth, Origin and request errors; Last-Event-ID
// (header and query) resuming every service with no gap or duplicate; resume_failed; retry and
// heartbeats; org isolation; the hub's one subscription per (org, service); slow consumers; token
// expiry; the end of the stream on shutdown.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loops, ms, unique, waitFor } from './support/env.mjs';
import { metricsJson, promValue, publish, publishOk, sampleKey } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { openSse, openSseStream } from './support/sse.mjs';
import { openStream } from './support/ws.mjs';

const ORIGIN = 'https://app.example';

// The cursor is opaque to clients; the tests read it to check what it covers.
function cursorEntries(id) {
  const text = Buffer.from(id, 'base64url').toString('utf8');
  assert.ok(text.startsWith('1'), `cursor ${text}`);
  return Object.fromEntries(
    text
      .split(' ')
      .slice(1)
      .map((e) => e.split('=')),
  );
}

async function publishN(server, org, service, n, event = 'e') {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await publishOk(server, { orgId: org, service, event, data: { i } }));
  return ids;
}

describe('SSE stream', () => {
  let server;
  before(async () => {
    server = await startServer({
      flags: { 'sse-heartbeat': 300, 'sse-retry': 1500, 'max-services': 4, 'allowed-origins': ORIGIN, history: 100 },
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('frames each event as one message: event name, the WebSocket frame as data, a cursor as id', async () => {
    const org = unique('o');
    const { client, ack } = await openSseStream(server, { org, services: ['finance', 'ops'] });
    const head = client.head;
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'text/event-stream');
    assert.equal(head.headers['transfer-encoding'], 'chunked');
    assert.equal(head.headers['cache-control'], 'no-store');
    assert.equal(head.headers['x-accel-buffering'], 'no');
    assert.equal(head.headers['content-length'], undefined);
    assert.equal(client.messages[0].retry, 1500, 'the first message sets retry');
    assert.equal(ack.json.type, 'ack');
    assert.deepEqual(ack.json.services, ['finance', 'ops']);
    assert.match(ack.json.connectionId, /^[0-9a-f]{16}$/);
    assert.ok(ack.id, 'the ack carries the cursor');

    const ws = await openStream(server, { org, services: ['finance'] });
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'invoice.paid', data: { amount: 12.5, s: 'a "q" \\ é' } });
    const [event] = await client.collectEvents(1);
    const frame = await ws.client.nextEvent();
    assert.equal(event.event, 'invoice.paid');
    assert.deepEqual(event.json, frame, 'data is the WebSocket event frame');
    assert.equal(event.json.seq, 1);
    assert.equal(event.json.id, id);
    assert.deepEqual(cursorEntries(event.id).finance, id);
    assert.ok('ops' in cursorEntries(event.id), 'the cursor covers the service without events too');
    // Every chunk is whole messages: a proxy passing chunks on never splits one.
    for (const c of client.rawChunks) assert.ok(c.endsWith('\n\n'), JSON.stringify(c));
    await ws.client.close();
    await client.close();
  });

  test('the token may come as Authorization: Bearer', async () => {
    const { client } = await openSseStream(server, { via: 'header', services: ['finance'] });
    await client.close();
  });

  test('refusals are HTTP errors with a JSON body, and change nothing', async () => {
    const cases = [
      [{ token: null }, 401, 'missing_token'],
      [{ token: 'not.a.jwt' }, 401, undefined],
      [{ origin: 'https://evil.example' }, 403, 'origin_not_allowed'],
      [{ services: ['no such'] }, 400, 'unknown_service', 'no such'],
      [{ services: [] }, 400, 'missing_services'],
      [{ services: ['a', 'b', 'c', 'd', 'e'] }, 400, 'too_many_services'],
      [{ services: ['hr'], claimOpts: { services: ['finance'] } }, 403, 'forbidden_service', 'hr'],
      [{ method: 'POST' }, 405, 'method_not_allowed'],
      [{ lastEventId: 'bm90IGEgY3Vyc29y' }, 400, 'bad_last_event_id'],
      [{ lastEventId: '%%%' }, 400, 'bad_last_event_id'],
      [{ lastEventIdQuery: 'A'.repeat(2000) }, 400, 'bad_last_event_id'],
    ];
    // The earlier tests' streams are closed on the client's side; the server may count them a
    // moment longer (under the sanitizers, a moment is long).
    await waitFor(async () => (await metricsJson(server)).activeConnections === 0, {
      what: "the earlier tests' connections to close",
    });
    const before = 0;
    for (const [opts, status, code, service] of cases) {
      const c = await openSse(server, opts);
      assert.equal(c.head.status, status, `${JSON.stringify(opts).slice(0, 80)} → ${c.bodyText}`);
      if (code) assert.equal(c.json.error, code);
      // A refused service is named in a field, as in the WebSocket's error frame.
      assert.equal(c.json.service, service);
      assert.equal(typeof c.json.message, 'string');
    }
    assert.equal((await metricsJson(server)).activeConnections, before);
    const { client } = await openSseStream(server, { origin: ORIGIN });
    assert.equal(client.head.headers['access-control-allow-origin'], ORIGIN);
    await client.close();
  });

  test("one org never sees another's events", async () => {
    const a = unique('a');
    const b = unique('b');
    const sa = await openSseStream(server, { org: a });
    const sb = await openSseStream(server, { org: b });
    const idB = await publishOk(server, { orgId: b, service: 'finance', event: 'secret', data: {} });
    const idA = await publishOk(server, { orgId: a, service: 'finance', event: 'mine', data: {} });
    assert.deepEqual(
      (await sa.client.collectEvents(1)).map((e) => e.json.id),
      [idA],
    );
    assert.deepEqual(
      (await sb.client.collectEvents(1)).map((e) => e.json.id),
      [idB],
    );
    await publishOk(server, { orgId: a, service: 'finance', event: 'more', data: {} });
    await sa.client.collectEvents(2);
    assert.equal(sb.client.events.length, 1);
    await sa.client.close();
    await sb.client.close();
  });

  test('Last-Event-ID resumes every service with no gap and no duplicate, then live', async () => {
    const org = unique('o');
    const services = ['finance', 'ops', 'hr'];
    const { client } = await openSseStream(server, { org, services });
    const seenFin = await publishN(server, org, 'finance', 2);
    const seenOps = await publishN(server, org, 'ops', 1);
    const got = await client.collectEvents(3);
    const last = got[2].id;
    await client.close();

    // Published while disconnected, hr's first events included (its channel was empty).
    const missed = [
      ...(await publishN(server, org, 'finance', 2)),
      ...(await publishN(server, org, 'hr', 2)),
      ...(await publishN(server, org, 'ops', 1)),
    ];
    const again = await openSseStream(server, { org, services, lastEventId: last });
    assert.deepEqual(again.ack.json.resume, {
      finance: { recovered: true },
      ops: { recovered: true },
      hr: { recovered: true },
    });
    const replay = await again.client.collectEvents(missed.length);
    assert.deepEqual(replay.map((e) => e.json.id).sort(), [...missed].sort());
    for (const id of [...seenFin, ...seenOps]) assert.ok(!replay.some((e) => e.json.id === id), 'no duplicate');
    assert.deepEqual(
      replay.map((e) => e.json.seq),
      replay.map((_, i) => i + 1),
    );
    const live = await publishOk(server, { orgId: org, service: 'hr', event: 'live', data: {} });
    const [, , , , , liveEvent] = await again.client.collectEvents(missed.length + 1);
    assert.equal(liveEvent.json.id, live);
    assert.equal(again.client.events.length, missed.length + 1, 'nothing else');
    await again.client.close();

    // The same through the query parameter, for clients that can't set headers.
    const more = await publishN(server, org, 'ops', 2);
    const viaQuery = await openSseStream(server, { org, services, lastEventIdQuery: liveEvent.id });
    assert.deepEqual(
      (await viaQuery.client.collectEvents(2)).map((e) => e.json.id),
      more,
    );
    await viaQuery.client.close();
  });

  test("a reconnect before any event still resumes from the ack's cursor", async () => {
    const org = unique('o');
    await publishN(server, org, 'finance', 2); // before the connection: not its business
    const { client, ack } = await openSseStream(server, { org, services: ['finance', 'ops'] });
    await client.close();
    const missed = [...(await publishN(server, org, 'finance', 1)), ...(await publishN(server, org, 'ops', 1))];
    const again = await openSseStream(server, { org, services: ['finance', 'ops'], lastEventId: ack.id });
    assert.deepEqual(
      (await again.client.collectEvents(2)).map((e) => e.json.id).sort(),
      missed.sort(),
    );
    await waitFor(() => again.client.comments.includes('ping'), { what: 'a heartbeat', timeout: ms(5000) });
    assert.equal(again.client.events.length, 2);
    await again.client.close();
  });

  test('heartbeats are comments, sent only while the stream is quiet', async () => {
    const { client } = await openSseStream(server, { org: unique('o') });
    await waitFor(() => client.comments.filter((c) => c === 'ping').length >= 2, { what: 'two heartbeats' });
    assert.ok(client.messages.every((m) => m.event !== 'ping'));
    await client.close();
  });

  test('SSE and WebSocket clients share one broker subscription per (org, service)', async () => {
    const org = unique('pool');
    // The earlier tests' streams are closed; their subscriptions go a moment later.
    const base = 0;
    await waitFor(async () => (await metricsJson(server)).connectionPoolStats.totalSubscriptions === base, {
      what: 'no subscription left',
    });
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push((await openSseStream(server, { org, user: `u${i}` })).client);
    const ws = await openStream(server, { org, user: 'w' });
    const m = await metricsJson(server);
    assert.equal(m.connectionPoolStats.totalSubscriptions, base + 1);
    assert.equal(m.connectionPoolStats.connectionsByOrg.find((c) => c.orgId === org)?.connections, 4);
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'x', data: {} });
    for (const c of clients) assert.equal((await c.collectEvents(1))[0].json.id, id);
    for (const c of clients) await c.close();
    await ws.client.close();
    await waitFor(async () => (await metricsJson(server)).connectionPoolStats.totalSubscriptions === base, {
      what: 'the subscription released',
    });
  });
});

describe('SSE resume_failed, token expiry (--history 3, --jwt-leeway 0)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { history: 3, 'jwt-leeway': 0 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('when history no longer reaches back, resume_failed names the service; the rest is replayed', async () => {
    const org = unique('o');
    const { client } = await openSseStream(server, { org, services: ['finance', 'ops'] });
    await publishN(server, org, 'finance', 1);
    const opsSeen = await publishN(server, org, 'ops', 1);
    const got = await client.collectEvents(2);
    await client.close();
    const fin = await publishN(server, org, 'finance', 6);
    const ops = await publishN(server, org, 'ops', 1);
    const again = await openSseStream(server, { org, services: ['finance', 'ops'], lastEventId: got[1].id });
    assert.deepEqual(again.ack.json.resume, {
      finance: { recovered: false, reason: 'too_old' },
      ops: { recovered: true },
    });
    const failed = await again.client.next((m) => m.event === 'resume_failed');
    assert.deepEqual(failed.json, { type: 'resume_failed', services: { finance: { recovered: false, reason: 'too_old' } } });
    assert.ok(again.client.messages.indexOf(failed) < again.client.messages.findIndex((m) => m.json?.type === 'event'));
    const replay = await again.client.collectEvents(4);
    assert.deepEqual(replay.map((e) => e.json.id).sort(), [...fin.slice(3), ...ops].sort());
    assert.ok(!replay.some((e) => e.json.id === opsSeen[0]));
    await again.client.close();
  });

  test('a service that had no event yet reports too_old too when history dropped what came since', async () => {
    const org = unique('o');
    const { client, ack } = await openSseStream(server, { org, services: ['finance'] });
    await client.close();
    const ids = await publishN(server, org, 'finance', 5);
    const again = await openSseStream(server, { org, services: ['finance'], lastEventId: ack.id });
    assert.deepEqual(again.ack.json.resume, { finance: { recovered: false, reason: 'too_old' } });
    await again.client.next((m) => m.event === 'resume_failed');
    assert.deepEqual(
      (await again.client.collectEvents(3)).map((e) => e.json.id),
      ids.slice(2),
    );
    await again.client.close();
  });

  test('an expired token ends the stream with an error message (4001 counted)', async () => {
    const key = sampleKey('streamgate_closes_total', { code: '4001' });
    const base = await promValue(server, 'streamgate_closes_total', { code: '4001' });
    const { client } = await openSseStream(server, { org: unique('o'), claimOpts: { ttl: 1 } });
    const err = await client.next((m) => m.event === 'error', { timeout: ms(5000) });
    assert.equal(err.json.code, 'token_expired');
    await waitFor(() => client.ended && client.closed, { what: 'the stream to end' });
    await waitFor(async () => (await promValue(server, 'streamgate_closes_total', { code: '4001' })) === base + 1, {
      what: key,
    });
  });
});

describe('SSE slow consumer and shutdown (--outbox-bytes 262144)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'outbox-bytes': 256 * 1024, 'max-publish-bytes': 1 << 20 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('a client that never reads is closed as a slow consumer; others keep receiving', { timeout: ms(50000) }, async () => {
    const org = unique('slow');
    const slow = await openSseStream(server, { org, user: 'slow' });
    const healthy = await openSseStream(server, { org, user: 'healthy' });
    const base = await promValue(server, 'streamgate_slow_consumer_closes_total');
    slow.client.pause();
    const pad = 'p'.repeat(32 * 1024);
    const ids = [];
    let moved = false;
    for (let batch = 0; batch < loops(500, 100) && !moved; batch++) {
      const items = Array.from({ length: 4 }, (_, k) => ({ orgId: org, service: 'finance', event: 'big', data: { i: batch * 4 + k, pad } }));
      const r = await publish(server, items);
      assert.equal(r.status, 200, r.text);
      ids.push(...r.json.ids);
      moved = (await promValue(server, 'streamgate_slow_consumer_closes_total')) > base;
    }
    assert.ok(moved, `not cut off after ${ids.length} events of 32 KiB`);
    slow.client.socket.resume();
    await waitFor(() => slow.client.closed, { what: 'the slow stream to close', timeout: ms(15000) });
    const got = await healthy.client.collectEvents(ids.length, { timeout: ms(20000) });
    assert.deepEqual(
      got.map((e) => e.json.id),
      ids,
    );
    assert.equal(await promValue(server, 'streamgate_closes_total', { code: '4008' }), 1);
    await healthy.client.close();
  });

  test('bad requests disturb no other stream', async () => {
    const org = unique('o');
    const { client } = await openSseStream(server, { org });
    for (let i = 0; i < 20; i++) {
      const bad = await openSse(server, { org, lastEventId: `garbage-${i}` });
      assert.equal(bad.head.status, 400);
    }
    // What a client sends after its request is read and dropped: no reply, no memory, no close.
    client.socket.write(Buffer.alloc(1 << 20, 'x'));
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'still', data: {} });
    assert.equal((await client.collectEvents(1))[0].json.id, id);
    assert.equal(client.closed, false);
    await client.close();
  });

  test('shutdown ends every stream with the last chunk', async () => {
    const { client } = await openSseStream(server, { org: unique('o') });
    await server.stop();
    await waitFor(() => client.closed, { what: 'the stream to close' });
    assert.equal(client.ended, true, 'the terminating chunk came before the FIN');
  });
});

describe('SSE drain (--drain-period 2)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'drain-period': 2 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('SIGTERM: streams end with the last chunk within the period, new ones get 503', { timeout: ms(30000) }, async () => {
    const { client } = await openSseStream(server, { org: unique('o') });
    server.signal('SIGTERM');
    await waitFor(
      async () => {
        const c = await openSse(server, { org: unique('o') });
        return c.head.status === 503 && c.json.error === 'shutting_down';
      },
      { what: 'a new stream refused with 503' },
    );
    await waitFor(() => client.closed, { what: 'the stream to end', timeout: ms(5000) });
    assert.equal(client.ended, true);
    assert.equal((await server.waitExit()).code, 0);
  });
});
