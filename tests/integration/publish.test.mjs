// POST /v2/realtime/publish: ids, idempotency keys, batches, API key checks, 400 and 413,
// HTTP keep-alive.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { EVENT_ID, loops, ms, parseEventId, unique } from './support/env.mjs';
import { publish, publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { assertEventFrame, openStream, tokenFor } from './support/ws.mjs';

const MAX_PUBLISH = 4096;

// POST /v2/realtime/publish over node:http with the server's API key, for what fetch doesn't
// show (which socket a request went on, a chunked body): `send(req)` writes the body.
// Resolves {status, text}.
function rawPublish(server, { agent = false, headers = {} }, send) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/v2/realtime/publish',
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json', ...headers },
      },
      (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (d) => {
          text += d;
        });
        r.on('end', () => resolve({ status: r.statusCode, text }));
      },
    );
    req.on('error', reject);
    send(req);
  });
}

function assertJsonError(r, status) {
  assert.equal(r.status, status, `status (body ${r.text})`);
  assert.match(String(r.headers.get('content-type') ?? ''), /^application\/json/);
  assert.ok(r.json, `JSON body: ${r.text}`);
  assert.equal(typeof r.json.error, 'string', `"error" in ${r.text}`);
  assert.ok(r.json.error.length > 0);
  return r.json;
}

describe('publish', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'max-publish-bytes': MAX_PUBLISH } });
  });
  after(async () => {
    await server?.stop();
  });

  test('200 {"id"} with an "<epoch>-<offset>" id; offsets of a channel are 1, 2, 3…', async () => {
    const org = unique('o');
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await publish(server, { orgId: org, service: 'finance', event: 'invoice.paid', data: { i } });
      assert.equal(r.status, 200, r.text);
      assert.match(String(r.headers.get('content-type') ?? ''), /^application\/json/);
      assert.deepEqual(Object.keys(r.json), ['id']);
      assert.match(r.json.id, EVENT_ID);
      ids.push(parseEventId(r.json.id));
    }
    assert.deepEqual(
      ids.map((x) => x.offset),
      [1, 2, 3],
    );
    assert.equal(new Set(ids.map((x) => x.epoch)).size, 1, 'one epoch');
    // Another service of the same org is another channel with its own offsets.
    const other = parseEventId(await publishOk(server, { orgId: org, service: 'ops', event: 'x', data: {} }));
    assert.equal(other.offset, 1);
  });

  test('publishing with nobody connected still succeeds', async () => {
    const r = await publish(server, { orgId: unique('nobody'), service: 'finance', event: 'e', data: {} });
    assert.equal(r.status, 200, r.text);
  });

  test('an eventId retry returns the same id and the event is delivered once', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org });
    const body = { orgId: org, service: 'finance', event: 'invoice.paid', eventId: 'pay-123', data: { a: 1 } };
    const first = await publishOk(server, body);
    const second = await publishOk(server, body);
    const third = await publishOk(server, body);
    assert.equal(second, first);
    assert.equal(third, first);
    const fresh = await publishOk(server, { ...body, eventId: 'pay-124' });
    assert.notEqual(fresh, first);
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const events = await client.eventsUntil((e) => e.id === sentinel);
    assert.deepEqual(
      events.map((e) => e.id),
      [first, fresh, sentinel],
    );
    assert.deepEqual(
      events.map((e) => e.seq),
      [1, 2, 3],
    );
    await client.close();
  });

  test('concurrent retries of one eventId all get the same id; delivered once', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org });
    const body = { orgId: org, service: 'finance', event: 'invoice.paid', eventId: 'race-1', data: { a: 1 } };
    const ids = await Promise.all(Array.from({ length: 10 }, () => publishOk(server, body)));
    assert.equal(new Set(ids).size, 1, `ids: ${ids}`);
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const events = await client.eventsUntil((e) => e.id === sentinel);
    assert.deepEqual(
      events.map((e) => e.id),
      [ids[0], sentinel],
    );
    await client.close();
  });

  // Producers on different HTTP connections land on different workers; each worker publishes
  // into the channel and the subscriber's worker must still deliver every offset, in order.
  test('concurrent producers on one channel: unique contiguous offsets, all delivered in offset order', { timeout: ms(40000) }, async () => {
    // The loss this guards against showed up in about one round in ten; 20 rounds catch it
    // most of the time without making the file slow.
    const rounds = loops(20, 5);
    const producers = 8;
    const batches = 10;
    const perBatch = 5;
    const total = producers * batches * perBatch;
    for (let round = 0; round < rounds; round++) {
      const org = unique('o');
      const { client } = await openStream(server, { org });
      const all = [];
      await Promise.all(
        Array.from({ length: producers }, async (_, p) => {
          for (let b = 0; b < batches; b++) {
            const items = Array.from({ length: perBatch }, (_, k) => ({ orgId: org, service: 'finance', event: 'c', data: { p, b, k } }));
            const r = await publish(server, items);
            assert.equal(r.status, 200, r.text);
            all.push(...r.json.ids);
          }
        }),
      );
      const offsets = all.map((id) => parseEventId(id).offset).sort((a, b) => a - b);
      assert.deepEqual(
        offsets,
        Array.from({ length: total }, (_, i) => i + 1),
        'every publish got its own offset, none skipped',
      );
      let events;
      try {
        events = await client.collectEvents(total, { timeout: ms(5000) });
      } catch {
        const got = client.received.filter((m) => m.type === 'event').map((m) => parseEventId(m.id).offset);
        const missing = offsets.filter((o) => !got.includes(o));
        throw new Error(`round ${round}: ${got.length} of ${total} events arrived; missing offsets ${JSON.stringify(missing)}`);
      }
      assert.deepEqual(
        events.map((e) => parseEventId(e.id).offset),
        offsets,
        `round ${round}: delivered in offset order`,
      );
      // Each batch stays in order within itself.
      const seen = new Map();
      for (const e of events) {
        const key = `${e.data.p}/${e.data.b}`;
        const k = seen.get(key) ?? -1;
        assert.equal(e.data.k, k + 1, `batch ${key} in order`);
        seen.set(key, e.data.k);
      }
      await client.close();
    }
  });

  test('a batch returns {"ids"} in order and delivers in order', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org, services: ['finance', 'ops'] });
    const items = [
      { orgId: org, service: 'finance', event: 'b1', data: { n: 1 } },
      { orgId: org, service: 'ops', event: 'b2', data: { n: 2 } },
      { orgId: org, service: 'finance', event: 'b3', data: { n: 3 } },
    ];
    const r = await publish(server, items);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json), ['ids']);
    assert.equal(r.json.ids.length, 3);
    for (const id of r.json.ids) assert.match(id, EVENT_ID);
    assert.equal(parseEventId(r.json.ids[2]).offset, parseEventId(r.json.ids[0]).offset + 1);
    const events = await client.collectEvents(3);
    events.forEach((e, i) =>
      assertEventFrame(e, { id: r.json.ids[i], event: items[i].event, service: items[i].service, data: items[i].data, seq: i + 1 }),
    );
    await client.close();
  });

  test('a batch item with an already used eventId gets the old id and is not redelivered', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org });
    const once = await publishOk(server, { orgId: org, service: 'finance', event: 'e', eventId: 'k-1', data: {} });
    const r = await publish(server, [
      { orgId: org, service: 'finance', event: 'e', eventId: 'k-1', data: {} },
      { orgId: org, service: 'finance', event: 'e', eventId: 'k-2', data: {} },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ids[0], once);
    assert.notEqual(r.json.ids[1], once);
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const events = await client.eventsUntil((e) => e.id === sentinel);
    assert.deepEqual(
      events.map((e) => e.id),
      [once, r.json.ids[1], sentinel],
    );
    await client.close();
  });

  const body = () => ({ orgId: 456, service: 'finance', event: 'e', data: {} });

  test('401 invalid_api_key without Authorization', async () => {
    const r = await publish(server, body(), { apiKey: null });
    assert.equal(assertJsonError(r, 401).error, 'invalid_api_key');
  });

  test('401 invalid_api_key with a wrong key', async () => {
    const r = await publish(server, body(), { apiKey: `${server.apiKey}x` });
    assert.equal(assertJsonError(r, 401).error, 'invalid_api_key');
  });

  test('401 invalid_api_key with a prefix of the key', async () => {
    const r = await publish(server, body(), { apiKey: server.apiKey.slice(0, -1) });
    assert.equal(assertJsonError(r, 401).error, 'invalid_api_key');
  });

  test('401 invalid_api_key with a non-Bearer scheme', async () => {
    const r = await publish(server, body(), { authorization: `Basic ${Buffer.from(server.apiKey).toString('base64')}` });
    assert.equal(assertJsonError(r, 401).error, 'invalid_api_key');
  });

  test('401 invalid_api_key when the JWT is presented instead of the API key', async () => {
    const r = await publish(server, body(), { apiKey: tokenFor(server, { org: 456 }) });
    assert.equal(assertJsonError(r, 401).error, 'invalid_api_key');
  });

  const bad = [
    ['malformed JSON', '{"orgId": 456, "service": "finance",'],
    ['not JSON at all', 'hello'],
    ['a JSON number', '42'],
    ['missing orgId', JSON.stringify({ service: 'finance', event: 'e', data: {} })],
    ['missing service', JSON.stringify({ orgId: 456, event: 'e', data: {} })],
    ['missing event', JSON.stringify({ orgId: 456, service: 'finance', data: {} })],
    ['orgId an object', JSON.stringify({ orgId: { id: 1 }, service: 'finance', event: 'e', data: {} })],
    ['service not a string', JSON.stringify({ orgId: 456, service: 7, event: 'e', data: {} })],
    ['service with a space', JSON.stringify({ orgId: 456, service: 'fin ance', event: 'e', data: {} })],
    ['empty event', JSON.stringify({ orgId: 456, service: 'finance', event: '', data: {} })],
    ['a batch with one bad item', JSON.stringify([body(), { orgId: 456, service: 'finance' }])],
  ];
  for (const [title, raw] of bad) {
    test(`400 with {"error","message"} for ${title}`, async () => {
      const r = await publish(server, raw);
      const json = assertJsonError(r, 400);
      assert.equal(typeof json.message, 'string');
      assert.ok(json.message.length > 0);
    });
  }

  // Regression: unknown fields were ignored, so `user_id` (for `userId`) sent a private event
  // to every user of the org.
  test('400 unknown_field naming the field; the misspelt private event reaches nobody', async () => {
    const org = unique('o');
    const bystander = await openStream(server, { org, user: 'u2' });
    const r = await publish(server, { orgId: org, service: 'finance', event: 'private', user_id: 'u1', data: { secret: 1 } });
    const json = assertJsonError(r, 400);
    assert.equal(json.error, 'unknown_field');
    assert.equal(json.field, 'user_id');
    assert.match(json.message, /user_id/);
    assert.match(json.message, /userId/, 'suggests the field it probably meant');
    assert.equal(json.index, undefined, 'no index for a single event');
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const ev = await bystander.client.nextEvent();
    assert.equal(ev.id, sentinel, `first event the bystander saw: ${JSON.stringify(ev)}`);
    assert.equal(parseEventId(sentinel).offset, 1, 'the refused event consumed no offset');
    await bystander.client.close();
  });

  test('400 unknown_field also for a null value and for any name outside the documented six', async () => {
    for (const extra of [{ user_id: null }, { type: 'event' }, { timestamp: 'x' }, { Data: {} }]) {
      const r = await publish(server, { ...body(), ...extra });
      const json = assertJsonError(r, 400);
      assert.equal(json.error, 'unknown_field', JSON.stringify(extra));
      assert.equal(json.field, Object.keys(extra)[0]);
    }
    // Every documented field together is accepted.
    const ok = await publish(server, { ...body(), userId: 'u', eventId: unique('k') });
    assert.equal(ok.status, 200, ok.text);
  });

  test('missing_field and bad_field carry "field"; in a batch also the failing item\'s "index"', async () => {
    const cases = [
      [{ service: 'finance', event: 'e' }, 'missing_field', 'orgId'],
      [{ orgId: 456, event: 'e' }, 'missing_field', 'service'],
      [{ orgId: 456, service: 'finance' }, 'missing_field', 'event'],
      [{ orgId: -1, service: 'finance', event: 'e' }, 'bad_field', 'orgId'],
      [{ orgId: 'a\u0001b', service: 'finance', event: 'e' }, 'bad_field', 'orgId'],
      [{ orgId: 456, service: 'fin ance', event: 'e' }, 'bad_field', 'service'],
      [{ orgId: 456, service: 'finance', event: '' }, 'bad_field', 'event'],
      [{ orgId: 456, service: 'finance', event: 'e', userId: '' }, 'bad_field', 'userId'],
      [{ orgId: 456, service: 'finance', event: 'e', eventId: 7 }, 'bad_field', 'eventId'],
    ];
    for (const [item, error, field] of cases) {
      const single = assertJsonError(await publish(server, item), 400);
      assert.deepEqual([single.error, single.field, single.index], [error, field, undefined], JSON.stringify(item));
      assert.match(single.message, new RegExp(field));
      const batch = assertJsonError(await publish(server, [body(), body(), item, body()]), 400);
      assert.deepEqual([batch.error, batch.field, batch.index], [error, field, 2], `in a batch: ${JSON.stringify(item)}`);
    }
    const first = assertJsonError(await publish(server, [{ orgId: 456, service: 'finance' }, body()]), 400);
    assert.deepEqual([first.error, first.field, first.index], ['missing_field', 'event', 0]);
    const notObject = assertJsonError(await publish(server, [body(), 7]), 400);
    assert.deepEqual([notObject.error, notObject.index], ['not_an_object', 1]);
  });

  test('400 empty_batch for [] (not too_many_items)', async () => {
    const r = await publish(server, '[]');
    const json = assertJsonError(r, 400);
    assert.equal(json.error, 'empty_batch');
    assert.equal(json.field, undefined);
    assert.equal(json.index, undefined);
  });

  test('a rejected batch publishes nothing', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org });
    const r = await publish(server, [
      { orgId: org, service: 'finance', event: 'half', data: {} },
      { orgId: org, service: 'finance' },
    ]);
    assert.equal(r.status, 400, r.text);
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const ev = await client.nextEvent();
    assert.equal(ev.id, sentinel, `first event after the rejected batch: ${JSON.stringify(ev)}`);
    assert.equal(parseEventId(sentinel).offset, 1, 'the rejected batch consumed no offset');
    await client.close();
  });

  test(`413 for a body over --max-publish-bytes (${MAX_PUBLISH}); exactly the limit is accepted`, async () => {
    const make = (size) => {
      const base = JSON.stringify({ orgId: 456, service: 'finance', event: 'big', data: { pad: '' } });
      return JSON.stringify({ orgId: 456, service: 'finance', event: 'big', data: { pad: 'x'.repeat(size - base.length) } });
    };
    const exact = make(MAX_PUBLISH);
    assert.equal(Buffer.byteLength(exact), MAX_PUBLISH);
    const ok = await publish(server, exact);
    assert.equal(ok.status, 200, `exactly ${MAX_PUBLISH} bytes: ${ok.text}`);
    const over = await publish(server, make(MAX_PUBLISH + 1));
    assert.equal(over.status, 413, over.text);
    const far = await publish(server, make(MAX_PUBLISH * 4));
    assert.equal(far.status, 413, far.text);
  });

  test('HTTP keep-alive: several requests on one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    const reused = [];
    try {
      for (let i = 0; i < 5; i++) {
        const payload = JSON.stringify({ orgId: 456, service: 'finance', event: 'ka', data: { i } });
        const res = await rawPublish(server, { agent, headers: { 'content-length': Buffer.byteLength(payload) } }, (req) => {
          req.end(payload);
          req.on('socket', (s) => sockets.add(s));
          reused.push(() => req.reusedSocket);
        });
        assert.equal(res.status, 200, res.text);
      }
    } finally {
      agent.destroy();
    }
    assert.equal(sockets.size, 1, 'all requests used one TCP connection');
    assert.deepEqual(
      reused.map((f) => f()),
      [false, true, true, true, true],
    );
  });

  test('a chunked request body is accepted (or refused with 411, never hung)', async () => {
    const payload = JSON.stringify({ orgId: 456, service: 'finance', event: 'chunked', data: { ok: true } });
    const res = await rawPublish(server, { headers: { 'transfer-encoding': 'chunked' } }, (req) => {
      req.write(payload.slice(0, 10));
      req.end(payload.slice(10));
    });
    assert.ok([200, 411].includes(res.status), `status ${res.status} ${res.text}`);
  });
});

// Reserved services are the server's own channels: producers must never forge upload progress or
// chat messages, whatever --services lists.
describe('publish to reserved services', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { services: 'finance,uploads,room:x,room:general' } });
  });
  after(async () => {
    await server?.stop();
  });

  for (const service of ['uploads', 'room:x', 'room:general', 'room:other']) {
    test(`400 reserved_service for ${service} although --services lists it (or not)`, async () => {
      const item = { orgId: 456, service, event: 'upload.completed', userId: 'victim', data: {} };
      const single = assertJsonError(await publish(server, item), 400);
      assert.deepEqual([single.error, single.field, single.index], ['reserved_service', 'service', undefined], single.message);
      assert.match(single.message, new RegExp(service));
      const batch = assertJsonError(await publish(server, [{ orgId: 456, service: 'finance', event: 'e' }, item]), 400);
      assert.deepEqual([batch.error, batch.field, batch.index], ['reserved_service', 'service', 1]);
    });
  }

  test('reserved_service is checked before unknown_service; an unlisted service is still unknown_service', async () => {
    const unknown = assertJsonError(await publish(server, { orgId: 456, service: 'ops', event: 'e' }), 400);
    assert.deepEqual([unknown.error, unknown.field], ['unknown_service', 'service']);
    const ok = await publish(server, { orgId: 456, service: 'finance', event: 'e' });
    assert.equal(ok.status, 200, ok.text);
  });

  test('a forged upload event never reaches the user it targets', async () => {
    const org = unique('o');
    const victim = await openStream(server, { org, user: 'victim', services: ['finance', 'uploads'] });
    const forged = await publish(server, { orgId: org, service: 'uploads', event: 'upload.completed', userId: 'victim', data: { status: 'complete' } });
    assert.equal(forged.status, 400, forged.text);
    const sentinel = await publishOk(server, { orgId: org, service: 'finance', event: 'sentinel', data: {} });
    const ev = await victim.client.nextEvent();
    assert.equal(ev.id, sentinel, `first event: ${JSON.stringify(ev)}`);
    await victim.client.close();
  });
});
