// The two ways a worker writes (--io-uring auto: one io_uring submission per flush batch, a small
// send copied into one piece, a larger one gathered, a connection's whole queue in one entry;
// --io-uring off: sendmsg only) must put the same bytes on every socket: every event, in order,
// byte for byte, also when a client stops reading and its socket fills mid-write.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { publish } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream } from './support/ws.mjs';

// Deterministic text of `n` characters for event `i`, with multi-byte characters in it so a
// write cut inside one would show.
const ALPHABET = Array.from('abcdefghijklmnopqrstuvwxyzé€😀');
function padFor(i, n) {
  let s = '';
  for (let k = 0; k < n; k++) s += ALPHABET[(i * 7 + k) % ALPHABET.length];
  return s;
}

async function publishAll(server, org, batches) {
  for (const batch of batches) {
    const items = batch.map(({ i, size }) => ({
      orgId: org,
      service: 'finance',
      event: 'write.path',
      data: { i, pad: padFor(i, size) },
    }));
    const r = await publish(server, items.length === 1 ? items[0] : items);
    assert.equal(r.status, 200, r.text);
  }
}

function expectAll(client, sent, label) {
  const events = client.received.filter((m) => m.type === 'event');
  assert.equal(events.length, sent.length, `${label}: events received`);
  let seq = events[0]?.seq;
  events.forEach((m, k) => {
    assert.equal(m.seq, seq + k, `${label}: seq is consecutive`);
    assert.equal(m.data.i, sent[k].i, `${label}: event ${k} in publish order`);
    assert.equal(m.data.pad, padFor(sent[k].i, sent[k].size), `${label}: event ${k} byte for byte`);
  });
}

for (const mode of ['auto', 'off']) {
  describe(`--io-uring ${mode}`, () => {
    let server;
    before(async () => {
      server = await startServer({
        flags: { 'io-uring': mode, 'log-level': 'info', 'outbox-bytes': 16 << 20, 'max-publish-bytes': 4 << 20 },
      });
    });
    after(async () => {
      await server?.stop();
    });

    test('the node says how it writes', async (t) => {
      const lines = ['writing with io_uring', 'io_uring unavailable; writing with sendmsg'];
      const messages = () => server.logs().map((l) => l.message);
      // The worker thread logs it as it starts, which may come after "listening".
      if (mode === 'auto') {
        await waitFor(() => messages().some((m) => lines.includes(m)), { what: 'the write-path log line' });
      } else {
        const { client } = await openStream(server, { org: unique('off') });  // workers are running
        await closeAll([client]);
      }
      const uring = messages().includes(lines[0]);
      const unavailable = messages().includes(lines[1]);
      if (mode === 'off') {
        assert.equal(uring || unavailable, false, 'off never opens a ring');
      } else {
        assert.equal(uring !== unavailable, true, `exactly one of the two lines: ${messages().join(' | ')}`);
        if (unavailable) t.diagnostic('io_uring is unavailable on this kernel: auto wrote with sendmsg');
      }
    });

    test('40 clients get every event of every size and batch shape, in order, byte for byte', { timeout: ms(60000) }, async () => {
      const org = unique('paths');
      const opened = await Promise.all(
        Array.from({ length: 40 }, (_, k) => openStream(server, { org, user: `u${k}` })),
      );
      const clients = opened.map((o) => o.client);
      let i = 0;
      const next = (size) => ({ i: i++, size });
      const batches = [];
      // One frame per connection per turn: copied (small) or gathered (over 512 bytes).
      for (let k = 0; k < 60; k++) batches.push([next([1, 40, 300, 480, 700, 2000][k % 6])]);
      // Two to six frames per turn: one ring entry with several buffers.
      for (let k = 0; k < 20; k++) batches.push(Array.from({ length: 2 + (k % 5) }, () => next(50 + ((k * 97) % 900))));
      // Twenty frames per turn: forty buffers in one ring entry.
      for (let k = 0; k < 5; k++) batches.push(Array.from({ length: 20 }, () => next(120)));
      // Frames far larger than a socket's first write.
      for (let k = 0; k < 3; k++) batches.push([next(300 * 1024)]);
      await publishAll(server, org, batches);
      const sent = batches.flat();
      await waitFor(() => clients.every((c) => c.received.filter((m) => m.type === 'event').length >= sent.length), {
        timeout: ms(30000),
        what: `all ${sent.length} events at all 40 clients`,
      });
      clients.forEach((c, k) => expectAll(c, sent, `client ${k}`));
      await closeAll(clients);
    });

    test('a client that stops reading until its socket is full gets the rest, in order, when it reads again', { timeout: ms(60000) }, async () => {
      const org = unique('full');
      const stalled = await openStream(server, { org, user: 'stalled' });
      const reading = await openStream(server, { org, user: 'reading' });
      stalled.client.ws.pause();
      // 6 MiB: more than loopback socket buffers hold, under the 16 MiB outbox.
      const sent = [];
      for (let k = 0; k < 96; k++) sent.push({ i: k, size: 64 * 1024 - 100 });
      await publishAll(server, org, sent.map((e) => [e]));
      await waitFor(() => reading.client.received.filter((m) => m.type === 'event').length >= sent.length, {
        timeout: ms(30000),
        what: 'the reading client has everything',
      });
      stalled.client.ws.resume();
      await waitFor(() => stalled.client.received.filter((m) => m.type === 'event').length >= sent.length, {
        timeout: ms(30000),
        what: 'the stalled client has everything after reading again',
      });
      expectAll(reading.client, sent, 'reading');
      expectAll(stalled.client, sent, 'stalled');
      await closeAll([stalled.client, reading.client]);
    });
  });
}
