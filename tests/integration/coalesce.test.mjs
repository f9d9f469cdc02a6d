// Coalescing: a worker that falls behind writes everything fanned out to a connection since its
// last write in one write, instead of one write per event. Producers publish one event per
// request, quickly, to many subscribers on one worker; every subscriber must still get every
// event exactly once, in offset order, with gapless seq, under both write paths (--io-uring auto
// and off). streamgate_write_frames counts frames per write: under the burst some writes carry
// more than one frame (a count, not a timing).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inBatches, loops, ms, parseEventId, unique, waitFor } from './support/env.mjs';
import { prometheus, publishOk, sampleKey } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

const SUBSCRIBERS = loops(400, 100);
const EVENTS = 120;
const PRODUCERS = 8;

function writeFrames(prom) {
  const count = prom.samples.get(sampleKey('streamgate_write_frames_count')) ?? 0;
  const single = prom.samples.get(sampleKey('streamgate_write_frames_bucket', { le: '1' })) ?? 0;
  const frames = prom.samples.get(sampleKey('streamgate_write_frames_sum')) ?? 0;
  return { count, single, frames };
}

for (const mode of ['auto', 'off']) {
  describe(`--io-uring ${mode}`, () => {
    let server;
    before(async () => {
      // One worker, so every subscriber's flush competes with the publish requests.
      server = await startServer({ flags: { 'io-uring': mode, workers: 1 } });
    });
    after(async () => {
      await server?.stop();
    });

    test(`${EVENTS} single-event requests from ${PRODUCERS} producers reach ${SUBSCRIBERS} subscribers once each, in order, gapless`, { timeout: ms(60000) }, async (t) => {
      const org = unique('coalesce');
      const opened = await inBatches(Array.from({ length: SUBSCRIBERS }, (_, k) => k), 50, (k) =>
        openStream(server, { org, user: `u${k}` }),
      );
      const clients = opened.map((o) => o.client);
      const before = writeFrames(await prometheus(server));

      // Each producer publishes its share back to back, one event per request, on its own
      // keep-alive connection; together they keep the worker busy.
      const ids = [];
      let nextIndex = 0;
      await Promise.all(
        Array.from({ length: PRODUCERS }, async () => {
          for (;;) {
            const i = nextIndex++;
            if (i >= EVENTS) return;
            ids.push(await publishOk(server, { orgId: org, service: 'finance', event: 'burst', data: { i } }));
          }
        }),
      );
      const expected = ids.map((id) => parseEventId(id).offset).sort((a, b) => a - b);
      assert.equal(new Set(expected).size, EVENTS, 'every publish got its own offset');

      const events = (c) => c.received.filter((m) => m.type === 'event');
      await waitFor(() => clients.every((c) => events(c).length >= EVENTS), {
        timeout: ms(40000),
        what: `${EVENTS} events at all ${SUBSCRIBERS} subscribers`,
        describe: () => `fewest: ${Math.min(...clients.map((c) => events(c).length))}`,
      });
      clients.forEach((c, k) => {
        const got = events(c);
        assert.equal(got.length, EVENTS, `subscriber ${k}: each event once`);
        got.forEach((m, n) => {
          assert.equal(m.seq, n + 1, `subscriber ${k}: seq gapless from 1`);
          assert.equal(parseEventId(m.id).offset, expected[n], `subscriber ${k}: event ${n} in offset order`);
        });
        assert.equal(c.received.filter((m) => m.type === 'error').length, 0, `subscriber ${k}: no error frame`);
      });

      // Writes finished outside a flush reach the histogram on the worker's next tick.
      let after = before;
      await waitFor(
        async () => {
          after = writeFrames(await prometheus(server));
          return after.frames - before.frames >= SUBSCRIBERS * EVENTS;
        },
        { what: 'every event frame counted in streamgate_write_frames' },
      );
      const writes = after.count - before.count;
      const multi = writes - (after.single - before.single);
      t.diagnostic(`${writes} writes carried ${after.frames - before.frames} frames; ${multi} of them more than one`);
      assert.ok(multi > 0, `some writes carried more than one frame (${writes} writes, ${after.frames - before.frames} frames)`);
      assert.ok(writes < SUBSCRIBERS * EVENTS, 'fewer writes than deliveries');
      await closeAll(clients);
    });
  });
}
