// Everything that ends a connection on purpose: bad client input (1007, 1008, 1003, 1009),
// no handshake in time (4002), no pong after a ping (4003), slow consumers (4008, counted),
// and the per-user connection limit (429 at upgrade).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { metricsJson, promValue, publish, publishOk, rawUpgrade } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { UpgradeRejected, connect, openStream, tokenFor } from './support/ws.mjs';

// Opens a connection (handshaken unless handshake is false), lets `act` misbehave, and
// checks the close code and, when `errorFrame`, that an error frame with a code came first.
async function expectClose(server, { handshake = true, act, code, errorFrame }) {
  let client;
  if (handshake) ({ client } = await openStream(server, { org: unique('o'), services: ['finance'] }));
  else client = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
  act(client);
  const info = await client.waitClose();
  assert.equal(info.code, code, `close code (received ${JSON.stringify(client.received).slice(0, 300)})`);
  if (errorFrame) {
    const errors = client.received.filter((m) => m.type === 'error');
    assert.equal(errors.length, 1, `one error frame before the close, got ${JSON.stringify(client.received)}`);
    assert.equal(typeof errors[0].code, 'string');
    assert.ok(errors[0].code.length > 0);
  }
  if (!handshake) assert.equal(client.received.some((m) => m.type === 'ack'), false, 'no ack');
  return client;
}

describe('bad client input (--services finance,ops,hr,legal --max-services 3 --max-message-bytes 1024)', () => {
  let server;
  before(async () => {
    server = await startServer({
      flags: { services: 'finance,ops,hr,legal', 'max-services': 3, 'max-message-bytes': 1024 },
    });
  });
  after(async () => {
    await server?.stop();
  });

  const firstMessageCases = [
    ['malformed JSON as the handshake', '{"services":["finance"],', 1007],
    ['a JSON array as the handshake', '[1,2,3]', 1008],
    ['a JSON string as the handshake', '"hello"', 1008],
    ['an unknown service', { services: ['payroll'], version: 1 }, 1008],
    ['a service name with a space', { services: ['fin ance'], version: 1 }, 1008],
    ['services not an array', { services: 'finance', version: 1 }, 1008],
    ['no services field', { version: 1 }, 1008],
    ['version 2', { services: ['finance'], version: 2 }, 1008],
    ['version as a string', { services: ['finance'], version: '1' }, 1008],
    ['more services than --max-services', { services: ['finance', 'ops', 'hr', 'legal'], version: 1 }, 1008],
    ['an unknown type as the first message', { type: 'dance', services: ['finance'], version: 1 }, 1008],
    ['a ping instead of the handshake', { type: 'ping' }, 1008],
  ];
  for (const [title, message, code] of firstMessageCases) {
    test(`${title} → error frame + close ${code}`, async () => {
      await expectClose(server, { handshake: false, act: (c) => c.send(message), code, errorFrame: true });
    });
  }

  test('an error about one service names it in "service"; other errors carry no such field', async () => {
    const unknown = await expectClose(server, {
      handshake: false,
      act: (c) => c.send({ services: ['finance', 'payroll'], version: 1 }),
      code: 1008,
      errorFrame: true,
    });
    const err = unknown.received.find((m) => m.type === 'error');
    assert.deepEqual(err, { type: 'error', code: 'unknown_service', message: err.message, service: 'payroll' });
    const version = await expectClose(server, {
      handshake: false,
      act: (c) => c.send({ services: ['finance'], version: 2 }),
      code: 1008,
      errorFrame: true,
    });
    assert.deepEqual(Object.keys(version.received.find((m) => m.type === 'error')).sort(), ['code', 'message', 'type']);
  });

  const laterCases = [
    ['malformed JSON after the handshake', '{"type":"subscribe",', 1007],
    ['an unknown type', { type: 'dance' }, 1008],
    ['a subscribe to an unknown service', { type: 'subscribe', services: ['payroll'] }, 1008],
    ['a second handshake-shaped message without type', { services: ['ops'], version: 1 }, 1008],
  ];
  for (const [title, message, code] of laterCases) {
    test(`${title} → error frame + close ${code}`, async () => {
      await expectClose(server, { act: (c) => c.send(message), code, errorFrame: true });
    });
  }

  test('invalid UTF-8 in a text frame → close 1007', async () => {
    await expectClose(server, {
      act: (c) => c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false }),
      code: 1007,
    });
  });

  test('a binary frame before the handshake → close 1003', async () => {
    await expectClose(server, { handshake: false, act: (c) => c.ws.send(Buffer.from('{"services":["finance"],"version":1}')), code: 1003 });
  });

  test('a binary frame after the handshake → close 1003', async () => {
    await expectClose(server, { act: (c) => c.ws.send(Buffer.from([1, 2, 3])), code: 1003 });
  });

  test('a message of 1025 bytes (over --max-message-bytes 1024) → close 1009', async () => {
    const pad = 'x'.repeat(1025 - '{"type":"ping","pad":""}'.length);
    const msg = `{"type":"ping","pad":"${pad}"}`;
    assert.equal(Buffer.byteLength(msg), 1025);
    await expectClose(server, { act: (c) => c.send(msg), code: 1009 });
  });

  test('a 64 KiB handshake → close 1009', async () => {
    await expectClose(server, { handshake: false, act: (c) => c.send('x'.repeat(65536)), code: 1009 });
  });

  test('fragments that add up to more than the limit → close 1009', async () => {
    await expectClose(server, {
      act: (c) => {
        const part = 'y'.repeat(600);
        c.ws.send(part, { fin: false, binary: false });
        c.ws.send(part, { fin: false, binary: false });
        c.ws.send(part, { fin: true, binary: false });
      },
      code: 1009,
    });
  });

  test('a message within the limit on the same server is fine', async () => {
    const { client } = await openStream(server, { org: unique('o') });
    client.send({ type: 'ping' });
    assert.equal((await client.next((m) => m.type === 'pong' || m.type === 'error')).type, 'pong');
    await client.close();
  });
});

describe('timeouts (handshake, ping/pong)', () => {
  const handshakeMs = ms(500);
  const pingMs = ms(300);
  const pongMs = ms(400);
  let server;
  before(async () => {
    server = await startServer({
      flags: { 'handshake-timeout': handshakeMs, 'ping-interval': pingMs, 'pong-timeout': pongMs },
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('no handshake within --handshake-timeout → close 4002', async () => {
    const started = Date.now();
    const client = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
    const { code, at } = await client.waitClose(handshakeMs + ms(5000));
    assert.equal(code, 4002);
    assert.ok(at - started >= handshakeMs - 50, `closed after ${at - started} ms, timeout is ${handshakeMs} ms`);
  });

  test('a client that never answers pings → close 4003 after a ping', async () => {
    const { client } = await openStream(server, { org: unique('o'), autoPong: false });
    const { code } = await client.waitClose(pingMs + pongMs + ms(5000));
    assert.ok(client.pings >= 1, 'the server pinged first');
    assert.equal(code, 4003);
  });

  test('a client answering pings outlives several ping intervals and still gets events', async () => {
    const org = unique('o');
    const { client } = await openStream(server, { org });
    await client.waitPings(3, 3 * (pingMs + pongMs) + ms(5000));
    assert.equal(client.isOpen, true);
    const id = await publishOk(server, { orgId: org, service: 'finance', event: 'still.here', data: {} });
    assert.equal((await client.nextEvent()).id, id);
    await client.close();
  });
});

describe('slow consumer (--outbox-bytes 524288)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'outbox-bytes': 512 * 1024, 'max-publish-bytes': 1 << 20 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('a client that stops reading is cut off, counted, and others keep receiving', { timeout: ms(50000) }, async (t) => {
    const org = unique('slow');
    const slow = await openStream(server, { org, user: 'slow' });
    const healthy = await openStream(server, { org, user: 'healthy' });
    const base = await promValue(server, 'streamgate_slow_consumer_closes_total');
    slow.client.ws.pause();

    const pad = 'p'.repeat(32 * 1024);
    const ids = [];
    let moved = false;
    for (let batch = 0; batch < 500 && !moved; batch++) {
      const items = Array.from({ length: 4 }, (_, k) => ({
        orgId: org,
        service: 'finance',
        event: 'big',
        data: { i: batch * 4 + k, pad },
      }));
      const r = await publish(server, items);
      assert.equal(r.status, 200, r.text);
      ids.push(...r.json.ids);
      moved = (await promValue(server, 'streamgate_slow_consumer_closes_total')) > base;
    }
    assert.ok(moved, `streamgate_slow_consumer_closes_total did not move after ${ids.length} events of 32 KiB`);
    assert.equal(await promValue(server, 'streamgate_slow_consumer_closes_total'), base + 1);

    slow.client.ws.resume();
    const { code } = await slow.client.waitClose(ms(15000));
    assert.ok([4008, 1006].includes(code), `slow consumer close code ${code}`);
    t.diagnostic(`cut off after ${ids.length} events of 32 KiB; the client saw close ${code}`);

    const got = await healthy.client.collectEvents(ids.length, { timeout: ms(20000) });
    assert.deepEqual(
      got.map((e) => e.id),
      ids,
      'the healthy client got every event in order',
    );
    assert.equal(healthy.client.isOpen, true);
    await waitFor(async () => (await metricsJson(server)).activeConnections === 1, {
      what: 'activeConnections back to 1',
      describe: async () => JSON.stringify(await metricsJson(server)),
    });
    await healthy.client.close();
  });
});

describe('connections per user (--max-connections-per-user 2)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'max-connections-per-user': 2 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('the third connection of one (org, user) → 429 too_many_connections; others unaffected', async () => {
    const org = unique('o');
    const a = await openStream(server, { org, user: 'u' });
    const b = await openStream(server, { org, user: 'u' });
    const token = tokenFor(server, { org, user: 'u' });
    const r = await rawUpgrade(server, `/v2/realtime/stream?access_token=${encodeURIComponent(token)}`);
    assert.equal(r.upgraded, false);
    assert.equal(r.status, 429, r.body);
    assert.equal(r.json?.error, 'too_many_connections', r.body);

    await assert.rejects(connect(server, { token, via: 'header' }), (e) => {
      assert.ok(e instanceof UpgradeRejected, String(e));
      assert.equal(e.status, 429);
      return true;
    });

    // Another user of the org, and the same user id in another org, are separate budgets.
    const other = await openStream(server, { org, user: 'v' });
    const otherOrg = await openStream(server, { org: unique('o'), user: 'u' });

    // Closing one frees a slot.
    const before_ = (await metricsJson(server)).activeConnections;
    await a.client.close();
    await waitFor(async () => (await metricsJson(server)).activeConnections === before_ - 1, {
      what: 'the closed connection to be gone from metrics',
    });
    const c = await openStream(server, { org, user: 'u' });
    assert.equal(c.ack.type, 'ack');
    await Promise.all([b, other, otherOrg, c].map((x) => x.client.close()));
  });

  test('concurrent upgrades of one user (spread over workers): exactly the limit get through', async () => {
    const org = unique('o');
    const token = tokenFor(server, { org, user: 'racer' });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => connect(server, { token })));
    const opened = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    try {
      assert.equal(opened.length, 2, `opened ${opened.length} of 8 with a limit of 2`);
      for (const e of refused) {
        assert.ok(e instanceof UpgradeRejected, String(e));
        assert.equal(e.status, 429);
      }
    } finally {
      await Promise.all(opened.map((c) => c.close()));
    }
  });
});
