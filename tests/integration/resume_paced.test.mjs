// A resume whose backlog is far larger than --outbox-bytes: the replay is read and sent page by
// page as the client drains, so the client gets every missed event once, in order, with `seq`
// unbroken, then the live events published during and after the replay — and no 4008, which
// used to close such a resume before its ack arrived, every time it was retried. With the
// default outbox (4 MiB) and a 64 KiB one, on the memory broker and on Redis.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SANITIZED, ms, unique, waitFor } from './support/env.mjs';
import { promValue, publish, publishOk } from './support/http.mjs';
import { startRedis } from './support/redis.mjs';
import { startServer } from './support/server.mjs';
import { connect, tokenFor } from './support/ws.mjs';

const PAD = 'x'.repeat(1000); // ~1 KiB an event
const BATCH = 500; // ~0.5 MiB a publish request, under --max-publish-bytes
// 20 MiB; 8 MiB (still twice the default outbox) under the sanitizers, to keep the file quick.
const BACKLOG = SANITIZED ? 8192 : 20480;

// Publishes `n` events in batches; returns their ids in order.
async function publishBacklog(server, org, n, { pad = PAD } = {}) {
  const ids = [];
  for (let start = 0; start < n; start += BATCH) {
    const items = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      items.push({ orgId: org, service: 'finance', event: 'missed', data: { i, pad } });
    }
    const r = await publish(server, items);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    ids.push(...r.json.ids);
  }
  return ids;
}

async function resumeThroughBacklog(server, backlogEvents) {
  const org = unique('o');
  const from = await publishOk(server, { orgId: org, service: 'finance', event: 'seen', data: {} });
  const missed = await publishBacklog(server, org, backlogEvents);

  const client = await connect(server, { token: tokenFor(server, { org }) });
  client.send({ services: ['finance'], version: 1, resume: { finance: from } });
  // Published while the replay is under way: they must follow the backlog, once each.
  const during = [];
  for (let i = 0; i < 5; i++) {
    during.push(await publishOk(server, { orgId: org, service: 'finance', event: 'during', data: { i } }));
  }
  const events = () => client.received.filter((m) => m.type === 'event');
  const replayed = missed.length + during.length;
  await waitFor(() => client.closeInfo || events().length >= replayed, {
    timeout: ms(40000),
    what: `${replayed} events`,
    describe: () => `${events().length} events`,
  });
  assert.equal(client.closeInfo, undefined, `closed: ${JSON.stringify(client.closeInfo)}`);

  const live = [];
  for (let i = 0; i < 3; i++) {
    live.push(await publishOk(server, { orgId: org, service: 'finance', event: 'live', data: { i } }));
  }
  const want = [...missed, ...during, ...live];
  await waitFor(() => client.closeInfo || events().length >= want.length, {
    timeout: ms(10000),
    what: 'the live events',
    describe: () => `${events().length} of ${want.length} events`,
  });
  assert.equal(client.closeInfo, undefined, `closed: ${JSON.stringify(client.closeInfo)}`);

  const [ack, ...rest] = client.received;
  assert.equal(ack.type, 'ack');
  assert.deepEqual(ack.resume, { finance: { recovered: true } });
  assert.ok(
    rest.every((m) => m.type === 'event'),
    `only events after the ack: ${JSON.stringify(rest.find((m) => m.type !== 'event'))?.slice(0, 200)}`,
  );
  const got = events();
  assert.equal(got.length, want.length, 'every event once, nothing more');
  for (let i = 0; i < want.length; i++) {
    if (got[i].id !== want[i] || got[i].seq !== i + 1) {
      assert.fail(`event ${i}: got id ${got[i].id} seq ${got[i].seq}, want id ${want[i]} seq ${i + 1}`);
    }
  }
  assert.equal(got[0].data.i, 0);
  assert.equal(got[missed.length - 1].data.i, missed.length - 1);
  await client.close();
}

for (const outbox of [undefined, 65536]) {
  describe(`paced resume, memory broker, outbox ${outbox ?? 'default (4 MiB)'}`, () => {
    let server;
    before(async () => {
      const flags = { history: 25000 };
      if (outbox) flags['outbox-bytes'] = outbox;
      server = await startServer({ flags });
    });
    after(async () => {
      await server?.stop();
    });

    test(`a ${BACKLOG / 1024} MiB backlog arrives whole, in order, then live events, with no close`, { timeout: ms(60000) }, async () => {
      await resumeThroughBacklog(server, BACKLOG);
    });

    if (outbox) {
      // Catching up is not a licence to stop reading: live events of the service wait for the
      // replay, and past 10,000 of them the connection is a slow consumer again.
      test('a client that stops reading mid-replay is closed 4008 once 10,000 live events wait', { timeout: ms(60000) }, async () => {
        const org = unique('o');
        const from = await publishOk(server, { orgId: org, service: 'finance', event: 'seen', data: {} });
        await publishBacklog(server, org, 8192); // more than the socket buffers take
        const slowBefore = await promValue(server, 'streamgate_slow_consumer_closes_total');
        const client = await connect(server, { token: tokenFor(server, { org }) });
        client.send({ services: ['finance'], version: 1, resume: { finance: from } });
        client.ws.pause();
        // Live events are held only once the server has attached the resume, which may come after
        // the first of these requests: publish until the close, well past 10,000 (bounded).
        let live = 0;
        await waitFor(
          async () => {
            if ((await promValue(server, 'streamgate_slow_consumer_closes_total')) > slowBefore) return true;
            if (live < 30000) {
              await publishBacklog(server, org, BATCH, { pad: '' });
              live += BATCH;
            }
            return false;
          },
          { timeout: ms(20000), what: 'a slow-consumer close', describe: () => `${live} live events published` },
        );
        client.ws.resume();
        assert.equal((await client.waitClose(ms(20000))).code, 4008);
      });
    }
  });
}

describe('paced resume, redis broker, outbox 64 KiB', () => {
  let redis;
  let server;
  before(async () => {
    redis = await startRedis();
    server = await startServer({ flags: { broker: redis.url, history: 5000, 'outbox-bytes': 65536 } });
  });
  after(async () => {
    await server?.stop();
    await redis?.cleanup();
  });

  test('a 4 MiB backlog (64 times the outbox) arrives whole, in order, then live events', { timeout: ms(60000) }, async () => {
    await resumeThroughBacklog(server, 4096);
  });
});
