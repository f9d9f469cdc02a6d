// SIGTERM with the Redis broker while its replies are still owed: history reads of resuming
// clients, publish completions, presence and cluster-metrics reads. The broker is quiesced
// before the server is torn down, so none of those callbacks lands in a freed worker, hub or
// context: the process exits 0 and, under ASan (STREAMGATE_SANITIZED=1), reports nothing.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loops, ms, unique, waitFor, withTimeout } from './support/env.mjs';
import { get, promValue, publish, publishOk } from './support/http.mjs';
import { startRedis } from './support/redis.mjs';
import { startServer } from './support/server.mjs';
import { connect, openStream, tokenFor } from './support/ws.mjs';

// Opens a stream and sends the handshake without waiting for the ack (which may never come).
async function handshake(server, { org, user, resume }) {
  const client = await connect(server, { token: tokenFor(server, { org, user }) });
  const hs = { services: ['finance'], version: 1 };
  if (resume) hs.resume = { finance: resume };
  client.send(hs);
  return client;
}

// The exit is what the test is about; stop() also fails on a sanitizer report or exit code.
async function expectCleanExit(server) {
  const exit = await withTimeout(server.exited, ms(10000), 'exit after SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr tail:\n${server.stderrText.slice(-2000)}`);
  assert.equal(server.sanitizerReport(), null);
  await server.stop();
}

describe('SIGTERM with redis replies still owed', () => {
  let redis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.cleanup();
  });

  test('replies that never come before the exit (redis paused): exit 0, no sanitizer report', { timeout: ms(60000) }, async () => {
    // No grace: the shutdown would otherwise wait for the owed publishes' answers (which come,
    // as 503s, once the broker gives up on the paused redis), and nothing would be owed anymore.
    const server = await startServer({ flags: { broker: redis.url, 'shutdown-grace': 0 } });
    let paused = false;
    try {
      const org = unique('q');
      // A live subscriber makes the (org, finance) subscription ready, so the resumes below
      // go straight to their history reads.
      const live = await openStream(server, { org, user: 'live' });
      const ids = [];
      for (let i = 0; i < 5; i += 1) ids.push(await publishOk(server, { orgId: org, service: 'finance', event: 'tick', data: { i } }));
      await live.client.next((m) => m.type === 'event' && m.id === ids[4], { what: 'the last event' });

      const publishedBefore = await promValue(server, 'streamgate_publish_requests_total');
      redis.pause();
      paused = true;
      for (let i = 0; i < 6; i += 1) await handshake(server, { org, user: `r${i}`, resume: ids[i % 3] });
      const owed = [];
      const kPublishes = 8;
      for (let i = 0; i < kPublishes; i += 1) {
        owed.push(publish(server, { orgId: org, service: 'finance', event: 'late', data: { i } }).catch(() => null));
      }
      const token = tokenFor(server, { org, user: 'live' });
      owed.push(get(server, '/v2/realtime/presence', { headers: { authorization: `Bearer ${token}` } }).catch(() => null));
      owed.push(get(server, '/v2/realtime/metrics?scope=cluster', { apiKey: server.apiKey }).catch(() => null));
      // Every publish reached the handler, so each has a command waiting on the paused redis.
      await waitFor(async () => (await promValue(server, 'streamgate_publish_requests_total')) >= publishedBefore + kPublishes, {
        what: 'the publishes to reach the broker',
      });
      // SIGTERM at once: the broker drops a connection whose command has waited 2 s (failing
      // what waits), and everything should still be owed when the server goes away. On a
      // machine slow enough to pass that, the test is weaker, never wrong.
      server.signal('SIGTERM');
      await expectCleanExit(server);
      await Promise.all(owed);
    } finally {
      if (paused) redis.resume();
      await server.stop().catch(() => {});
    }
  });

  test('publishing and resuming right through SIGTERM, a few times: exit 0, no sanitizer report', { timeout: ms(120000) }, async () => {
    for (let round = 0; round < loops(3, 2); round += 1) {
      const server = await startServer({ flags: { broker: redis.url } });
      let running = true;
      const tasks = [];
      try {
        const org = unique('t');
        const streams = await Promise.all(Array.from({ length: 4 }, (_, i) => openStream(server, { org, user: `u${i}` })));
        const first = await publishOk(server, { orgId: org, service: 'finance', event: 'tick', data: { n: 0 } });
        await Promise.all(streams.map((s) => s.client.next((m) => m.type === 'event', { what: 'the first event' })));
        // Producers: publish until the server stops answering.
        for (let p = 0; p < 2; p += 1) {
          tasks.push(
            (async () => {
              for (let n = 1; running; n += 1) {
                const r = await publish(server, { orgId: org, service: 'finance', event: 'tick', data: { p, n } }).catch(() => null);
                if (!r || r.status !== 200) return;
              }
            })(),
          );
        }
        // Resumers: reconnect from the first id over and over, so history reads are in flight.
        for (let k = 0; k < 2; k += 1) {
          tasks.push(
            (async () => {
              for (let n = 0; running; n += 1) {
                let client;
                try {
                  client = await handshake(server, { org, user: `r${k}-${n}`, resume: first });
                  await client.next((m) => m.type === 'ack', { what: 'the ack', timeout: ms(5000) });
                } catch {
                  return; // the server is going away
                } finally {
                  client?.terminate();
                }
              }
            })(),
          );
        }
        // Traffic is flowing: a resumed client or two and more events have gone through.
        await waitFor(async () => (await promValue(server, 'streamgate_publish_requests_total')) >= 20, { what: 'publishes under way' });
        server.signal('SIGTERM');
        await expectCleanExit(server);
      } finally {
        running = false;
        await Promise.all(tasks);
        await server.stop().catch(() => {});
      }
    }
  });
});
