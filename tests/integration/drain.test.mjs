// Graceful drain (--drain-period): on SIGTERM the node keeps listening, /readyz answers 503
// {"status":"draining"}, new WebSocket upgrades (stream and upload) get 503 with Retry-After,
// publishes are still served, and the open WebSockets are closed with 1001 spread over the
// period, so their clients reconnect to another node at a steady pace and resume with nothing
// lost; then exit 0. A second signal ends the drain at once. A publish still waiting on Redis
// when the drain ends gets its answer before the node exits.

import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SANITIZED, inBatches, ms, unique, waitFor, withTimeout } from './support/env.mjs';
import { promValue, publish, publishOk, rawUpgrade } from './support/http.mjs';
import { startRedis } from './support/redis.mjs';
import { startServer } from './support/server.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const SERVICE = 'finance';
// 2,000 connections (the fd limit is 20,000 a process). Under ASan the server is ~3x slower and
// the machine is shared, so 1,000 keep the file inside its time budget.
const CONNECTIONS = SANITIZED ? 1000 : 2000;
const PERIOD_S = 6;
// The clients live in child processes of this file (client hosts), a share each, and so does the
// /readyz prober: on a loaded machine one test process doing all of it falls behind, and the
// close times and probe times it records would measure its own backlog, not the server.
const HOSTS = 4;

// The largest number of `times` (ms) that fall in any window of `width` ms.
function densest(times, width) {
  const sorted = [...times].sort((x, y) => x - y);
  let best = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j] - sorted[i] >= width) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

const eventIds = (client) => (client ? client.received.filter((m) => m.type === 'event').map((m) => m.id) : []);

// ---- in a client host (a fork of this file with SG_DRAIN_HOST set) ----

// Answers the parent's requests, one at a time: {cmd, ...} → {done: cmd, ...} or {error}.
function clientHost() {
  const subs = [];
  const node = (port, secret) => ({ port, secret, wsUrl: `ws://127.0.0.1:${port}/v2/realtime/stream` });
  const seen = (sub, id) => [sub.first, sub.second].some((c) => c?.received.some((m) => m.id === id));
  const commands = {
    // Opens `users` on node A; as each connection is closed, its client reconnects to node B and
    // resumes from the last event it saw, as docs/protocol.md tells a client to do on 1001.
    async open({ a, b, secret, org, users }) {
      const opened = await inBatches(users, 50, (user) => openStream(node(a, secret), { org, user, services: [SERVICE] }));
      opened.forEach(({ client }, i) => {
        const sub = { user: users[i], first: client };
        client.closed
          .then(async (info) => {
            sub.closeInfo = info;
            const ids = eventIds(client);
            const resume = { [SERVICE]: ids[ids.length - 1] };
            const again = await openStream(node(b, secret), { org, user: sub.user, services: [SERVICE], resume, timeout: ms(20000) });
            sub.second = again.client;
            sub.ack = again.ack;
          })
          .catch((e) => {
            sub.error = e.message;
          });
        subs.push(sub);
      });
      return {};
    },
    async seen({ id, timeout }) {
      await waitFor(() => subs.every((s) => seen(s, id) || s.error), { timeout, interval: 50, what: `every client to see ${id}` });
      return {};
    },
    // Per client: close code and time, resume answer, and whether its two connections together
    // got exactly `published`, in order.
    async report({ published }) {
      const want = JSON.stringify(published);
      return {
        subs: subs.map((s) => {
          const got = [...eventIds(s.first), ...eventIds(s.second)];
          return {
            user: s.user,
            close: s.closeInfo && { code: s.closeInfo.code, at: s.closeInfo.at },
            resume: s.ack?.resume,
            error: s.error,
            exact: JSON.stringify(got) === want,
            got: JSON.stringify(got) === want ? undefined : got,
          };
        }),
      };
    },
    // Probes /readyz every 100 ms until the listener refuses, or `timeout` passes.
    async probe({ url, timeout }) {
      const polls = [];
      const end = Date.now() + timeout;
      while (Date.now() < end) {
        const at = Date.now();
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
          polls.push({ at, status: r.status, body: await r.text() });
        } catch (e) {
          const error = String(e.cause?.code ?? e.name);
          polls.push({ at, error });
          if (error === 'ECONNREFUSED') break;
        }
        await delay(100); // paces the probes
      }
      return { polls };
    },
    async exit() {
      for (const s of subs) {
        s.first.terminate();
        s.second?.terminate();
      }
      setImmediate(() => process.exit(0));
      return {};
    },
  };
  process.on('message', (msg) => {
    commands[msg.cmd](msg).then(
      (r) => process.send({ done: msg.cmd, ...r }),
      (e) => process.send({ done: msg.cmd, error: e.message }),
    );
  });
}

// ---- in the test process ----

class Host {
  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, SG_DRAIN_HOST: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.child.on('exit', resolve));
  }

  ask(msg, timeout) {
    const answer = new Promise((resolve, reject) => {
      const on = (m) => {
        if (m.done !== msg.cmd) return;
        this.child.off('message', on);
        if (m.error) reject(new Error(`client host, ${msg.cmd}: ${m.error}`));
        else resolve(m);
      };
      this.child.on('message', on);
      this.child.send(msg);
    });
    return withTimeout(answer, timeout, `client host to answer ${msg.cmd}`);
  }

  async close() {
    await this.ask({ cmd: 'exit' }, ms(5000)).catch(() => {});
    await withTimeout(this.exited, ms(5000), 'client host to exit').catch(() => this.child.kill('SIGKILL'));
  }
}

if (process.env.SG_DRAIN_HOST) {
  clientHost();
} else {
  describe('graceful drain', () => {
    let redis;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.cleanup();
    });

    test(`SIGTERM with ${CONNECTIONS} connections: 1001s spread over the period, 503s meanwhile, publishes served, every client resumes on the other node with nothing lost`, { timeout: ms(120000) }, async () => {
      const flags = { broker: redis.url, history: 5000 };
      const a = await startServer({ flags: { ...flags, 'drain-period': PERIOD_S } });
      const b = await startServer({ flags });
      const org = unique('drain');
      const hosts = Array.from({ length: HOSTS }, () => new Host());
      const prober = new Host();
      const all = (msg, timeout) => Promise.all(hosts.map((h) => h.ask(msg, timeout)));
      let publishing = true;
      let publisher;
      try {
        const users = Array.from({ length: CONNECTIONS }, (_, i) => `u${i}`);
        await Promise.all(
          hosts.map((h, k) => h.ask({ cmd: 'open', a: a.port, b: b.port, secret: a.secret, org, users: users.filter((_, i) => i % HOSTS === k) }, ms(60000))),
        );
        // Every client has seen an event, so each can resume from a position.
        const published = [await publishOk(b, { orgId: org, service: SERVICE, event: 'tick', data: { n: 0 } })];
        await all({ cmd: 'seen', id: published[0], timeout: ms(30000) }, ms(35000));

        const probed = prober.ask({ cmd: 'probe', url: `${a.httpUrl}/readyz`, timeout: PERIOD_S * 1000 + ms(10000) }, PERIOD_S * 1000 + ms(15000));
        const t0 = Date.now();
        a.signal('SIGTERM');

        // Events keep coming through the drain, every other one published through the draining
        // node (well before its listener closes at the end of the period).
        const failures = [];
        let viaDraining = 0;
        publisher = (async () => {
          for (let n = 1; publishing; n++) {
            const toA = n % 2 === 1 && Date.now() - t0 < (PERIOD_S - 2) * 1000;
            const r = await publish(toA ? a : b, { orgId: org, service: SERVICE, event: 'tick', data: { n } }).catch((e) => ({ status: 0, text: e.message }));
            if (r.status === 200) {
              published.push(r.json.id);
              if (toA) viaDraining++;
            } else {
              failures.push({ toA, status: r.status, text: r.text.slice(0, 200) });
            }
            await delay(100); // paces the producer: ~10 events a second to every client
          }
        })();

        await waitFor(async () => (await fetch(`${a.httpUrl}/readyz`)).status === 503, { timeout: ms(5000), what: '/readyz to answer 503' });
        const token = tokenFor(a, { org, user: 'late' });
        for (const path of ['/v2/realtime/stream', '/v2/realtime/upload']) {
          const r = await rawUpgrade(a, `${path}?access_token=${encodeURIComponent(token)}`);
          assert.equal(r.upgraded, false, `${path} upgraded while draining`);
          assert.equal(r.status, 503, `${path}: ${r.body}`);
          assert.equal(r.json?.error, 'shutting_down', r.body);
          assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/, `${path} Retry-After`);
        }

        const exit = await withTimeout(a.exited, PERIOD_S * 1000 + ms(3000), 'exit within the period plus 3 s');
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr tail:\n${a.stderrText.slice(-2000)}`);
        assert.equal(a.sanitizerReport(), null);
        publishing = false;
        await publisher;
        assert.deepEqual(failures, [], 'every publish during the drain got 200');
        assert.ok(viaDraining >= 1, 'publishes through the draining node were served');

        // /readyz: 503 draining on every probe from the first 503 until the listener closed at
        // the end of the period; never 200 again.
        const { polls } = await probed;
        const firstDown = polls.findIndex((p) => p.status === 503);
        assert.ok(firstDown >= 0, `no 503 among ${JSON.stringify(polls.slice(0, 5))}`);
        const rest = polls.slice(firstDown);
        const lastAnswered = rest.findLastIndex((p) => p.status !== undefined);
        for (const p of rest.slice(0, lastAnswered + 1)) {
          assert.equal(p.status, 503, `/readyz while draining: ${JSON.stringify(p)}`);
          assert.deepEqual(JSON.parse(p.body), { status: 'draining' });
        }
        const answeredUntil = rest[lastAnswered].at - t0;
        assert.ok(answeredUntil >= 4000, `/readyz answered until ${answeredUntil} ms after SIGTERM; then ${JSON.stringify(rest.slice(lastAnswered + 1, lastAnswered + 4))}`);

        // Every client resumed on the other node and got every event exactly once, in order,
        // across its two connections.
        published.push(await publishOk(b, { orgId: org, service: SERVICE, event: 'last', data: {} }));
        await all({ cmd: 'seen', id: published[published.length - 1], timeout: ms(30000) }, ms(35000));
        const subs = (await all({ cmd: 'report', published }, ms(30000))).flatMap((r) => r.subs);
        assert.equal(subs.length, CONNECTIONS);
        const errors = subs.filter((s) => s.error).map((s) => `${s.user}: ${s.error}`);
        assert.deepEqual(errors.slice(0, 5), [], `${errors.length} clients could not resume`);

        // Closes: every one 1001, spread over most of the period, never a cliff.
        assert.deepEqual(
          subs.filter((s) => !s.close).map((s) => s.user),
          [],
          'every connection to the draining node was closed',
        );
        assert.deepEqual([...new Set(subs.map((s) => s.close.code))], [1001]);
        const times = subs.map((s) => s.close.at - t0);
        const spread = Math.max(...times) - Math.min(...times);
        assert.ok(spread >= 4000, `closes spread over ${spread} ms of the ${PERIOD_S} s period`);
        const peak = densest(times, 1000);
        assert.ok(peak <= subs.length / 2, `${peak} of ${subs.length} closes within one second`);

        for (const s of subs) {
          assert.deepEqual(s.resume, { [SERVICE]: { recovered: true } }, s.user);
          assert.ok(s.exact, `${s.user} got ${JSON.stringify(s.got)}, published ${JSON.stringify(published)}`);
        }
      } finally {
        publishing = false;
        await publisher?.catch(() => {});
        await Promise.all([...hosts, prober].map((h) => h.close()));
        await a.stop().catch(() => {});
        await b.stop();
      }
    });

    test('a second SIGTERM during the drain ends it at once: every client gets 1001, exit 0', { timeout: ms(30000) }, async () => {
      // The period from the environment, which every flag also reads.
      const server = await startServer({ flags: { 'drain-period': null }, env: { STREAMGATE_DRAIN_PERIOD: '60' } });
      const clients = [];
      try {
        const org = unique('twice');
        for (let i = 0; i < 20; i++) clients.push((await openStream(server, { org, user: `u${i}` })).client);
        server.signal('SIGTERM');
        await waitFor(async () => (await fetch(`${server.httpUrl}/readyz`)).status === 503, { what: '/readyz to answer 503' });
        // 20 connections over 60 s: one closes every 3 s, so nearly all are still open.
        assert.ok(clients.filter((c) => c.isOpen).length >= 15, 'the drain is under way, not over');
        const t1 = Date.now();
        server.signal('SIGTERM');
        const closes = await Promise.all(clients.map((c) => c.waitClose(ms(5000))));
        assert.deepEqual(
          closes.map((c) => c.code),
          closes.map(() => 1001),
        );
        const exit = await withTimeout(server.exited, ms(5000), 'exit after the second SIGTERM');
        assert.deepEqual(exit, { code: 0, signal: null });
        assert.ok(Date.now() - t1 <= ms(5000));
        assert.ok(
          server.logs().some((l) => l.message === 'signal received' && l.action === 'stop now'),
          'the second signal is logged as ending the drain',
        );
      } finally {
        for (const c of clients) c.terminate();
        await server.stop();
      }
    });

    test('a publish still waiting on Redis when the drain ends gets its answer before the node exits', { timeout: ms(30000) }, async () => {
      const server = await startServer({ flags: { broker: redis.url, 'drain-period': 1 } });
      let paused = false;
      try {
        const org = unique('owed');
        await publishOk(server, { orgId: org, service: SERVICE, event: 'warm', data: {} });
        const before = await promValue(server, 'streamgate_publish_requests_total');
        redis.pause();
        paused = true;
        const owed = publish(server, { orgId: org, service: SERVICE, event: 'owed', data: {} }).catch((e) => ({ error: e.message }));
        await waitFor(async () => (await promValue(server, 'streamgate_publish_requests_total')) > before, { what: 'the publish to reach the broker' });
        server.signal('SIGTERM');
        // The period is over and the listener closed: the node now waits for what it owes.
        await waitFor(() => server.logs().some((l) => l.message === 'shutting down'), { timeout: ms(5000), what: 'the end of the drain' });
        redis.resume();
        paused = false;
        const r = await owed;
        // 200 as a rule; 503 if the broker gave up on the paused Redis first (it drops a command
        // unanswered for 2 s). Either way an answer, not a dropped connection.
        assert.ok(r.status === 200 || r.status === 503, `the owed publish got ${JSON.stringify(r)}`);
        const exit = await withTimeout(server.exited, ms(10000), 'exit after the drain');
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr tail:\n${server.stderrText.slice(-2000)}`);
      } finally {
        if (paused) redis.resume();
        await server.stop();
      }
    });
  });
}
