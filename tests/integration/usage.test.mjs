// Usage metering against the real binary: a scripted workload (stream connections, publishes
// with a repeated eventId, their deliveries and bytes, chat messages, one tus upload) and the
// exact figures GET /v2/realtime/usage reports for it, on one node with the memory broker and on
// three nodes sharing Redis (summed over the cluster); a node killed with SIGKILL after a flush
// keeps its flushed counts; the API's errors. --usage-flush 1, and every wait is a poll on the
// answer, never a sleep. The export file's hour closing is covered by tests/unit/tenancy
// (usage_test.cpp): an hour can't be shortened without a test-only hook in the binary.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { publish, readResponse } from './support/http.mjs';
import { chatClient, join, say } from './support/chat.mjs';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { create as tusCreate, patch as tusPatch } from './support/tus.mjs';
import { startServer } from './support/server.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const FLUSH = { 'usage-flush': 1 };

async function usage(server, query, { apiKey, method = 'GET' } = {}) {
  const res = await fetch(`${server.httpUrl}/v2/realtime/usage?${new URLSearchParams(query)}`, {
    method,
    headers: { authorization: `Bearer ${apiKey ?? server.apiKey}` },
  });
  return readResponse(res);
}

// The hours around now, so a run that crosses an hour boundary still sees every count.
function window() {
  const now = Date.now();
  return { from: new Date(now - 3600_000).toISOString(), to: new Date(now + 3600_000).toISOString() };
}

// Sums the hours of an answer (peak: the largest hour's).
function totals(body) {
  const t = { peakConnections: 0, connectionMinutes: 0, eventsPublished: 0, deliveries: 0, bytesDelivered: 0, chatMessages: 0, uploadBytes: 0 };
  for (const h of body.hours) {
    for (const k of Object.keys(t)) {
      t[k] = k === 'peakConnections' ? Math.max(t[k], h[k]) : t[k] + h[k];
    }
  }
  return t;
}

// Every live stored event a client received: its body's bytes (the frame after the seq prefix,
// which is what the server meters per delivery).
function recordEvents(client) {
  const seen = [];
  client.ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString('utf8');
    if (!text.startsWith('{"type":"event"')) return;
    if (!JSON.parse(text).id) return; // a signal (typing, joined): not stored, not metered
    seen.push(Buffer.byteLength(text.slice(text.indexOf('"service":'))));
  });
  return seen;
}

// Polls /usage on `server` until `check(totals)` holds; returns the totals.
async function usageUntil(server, org, check, what) {
  let last;
  return waitFor(
    async () => {
      const r = await usage(server, { orgId: org, ...window() });
      assert.equal(r.status, 200, r.text);
      last = totals(r.json);
      return check(last) ? last : undefined;
    },
    { what, timeout: ms(10000), interval: 100, describe: () => JSON.stringify(last) },
  );
}

// The workload: `streams` (one per node, round robin) subscribed to finance, one chat client
// that joins a room and sends 2 messages, 4 publishes spread over the nodes plus a repeat of
// one eventId, and a 5-byte tus upload on the first node. Returns what the server must count.
async function workload(nodes, org, streams) {
  const clients = [];
  const received = [];
  for (let i = 0; i < streams; i += 1) {
    const { client } = await openStream(nodes[i % nodes.length], { org, user: `u${i}` });
    clients.push(client);
    received.push(recordEvents(client));
  }
  const chat = await chatClient(nodes[0], { org, user: 'talker' });
  clients.push(chat);
  received.push(recordEvents(chat));
  await join(chat, 'general');
  for (let i = 0; i < 4; i += 1) {
    const r = await publish(nodes[i % nodes.length], {
      orgId: org,
      service: 'finance',
      event: 'e',
      data: { n: i, pad: 'x'.repeat(i * 10) },
      eventId: `ev-${i}`,
    });
    assert.equal(r.status, 200, r.text);
  }
  // A repeat of an eventId stores nothing and is not metered.
  assert.equal((await publish(nodes[0], { orgId: org, service: 'finance', event: 'e', data: {}, eventId: 'ev-0' })).status, 200);
  await say(chat, 'general', 'hello', 'm1');
  await say(chat, 'general', 'again', 'm2');
  // Every stream got the 4 events, the chat client its 2 messages.
  await waitFor(() => received.slice(0, streams).every((r) => r.length === 4) && received[streams].length === 2, {
    what: 'every delivery',
  });
  const token = tokenFor(nodes[0], { org, user: 'uploader' });
  const url = await tusCreate(nodes[0], token, 5);
  const r = await tusPatch(nodes[0], token, url, 0, Buffer.from('hello'));
  assert.equal(r.status, 204, r.text);
  const all = received.flat();
  return {
    clients,
    expected: {
      peakConnections: streams + 1,
      eventsPublished: 4,
      deliveries: streams * 4 + 2,
      bytesDelivered: all.reduce((a, b) => a + b, 0),
      chatMessages: 2,
      uploadBytes: 5,
    },
  };
}

function assertExact(got, expected, elapsedMinutes) {
  for (const [k, v] of Object.entries(expected)) assert.equal(got[k], v, `${k}: ${JSON.stringify(got)}`);
  assert.ok(got.connectionMinutes > 0, `connectionMinutes ${got.connectionMinutes}`);
  assert.ok(got.connectionMinutes <= expected.peakConnections * elapsedMinutes + 0.01, `connectionMinutes ${got.connectionMinutes}`);
}

const matches = (expected) => (t) => Object.entries(expected).every(([k, v]) => t[k] === v);

describe('usage metering on one node (memory broker)', () => {
  let server;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sg-usage-'));
    server = await startServer({ flags: { ...FLUSH, 'upload-dir': dir } });
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a scripted workload is counted exactly', async () => {
    const org = String(100000 + Math.floor(Math.random() * 1e6));
    const started = Date.now();
    const { clients, expected } = await workload([server], org, 3);
    const got = await usageUntil(server, org, matches(expected), 'the workload in /usage');
    assertExact(got, expected, (Date.now() - started) / 60000);
    const body = (await usage(server, { orgId: org, ...window() })).json;
    assert.equal(body.orgId, Number(org)); // an integer org id is a number, as in /metrics
    assert.match(body.hours[0].hour, /^\d{4}-\d{2}-\d{2}T\d{2}:00:00(\.000)?Z$/);
    await Promise.all(clients.map((c) => c.close()));
    // Another org saw nothing.
    assert.deepEqual((await usage(server, { orgId: unique('quiet'), ...window() })).json.hours, []);
  });

  test('errors: API key, missing and bad fields, the range', async () => {
    const w = window();
    let r = await usage(server, { orgId: '1', ...w }, { apiKey: 'wrong' });
    assert.equal(r.status, 401);
    assert.equal(r.json.error, 'invalid_api_key');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    const cases = [
      [{ from: w.from, to: w.to }, 'missing_field', 'orgId'],
      [{ orgId: '1', to: w.to }, 'missing_field', 'from'],
      [{ orgId: '1', from: w.from }, 'missing_field', 'to'],
      [{ orgId: 'a\u0001b', ...w }, 'bad_field', 'orgId'],
      [{ orgId: '1', from: 'yesterday', to: w.to }, 'bad_time', 'from'],
      [{ orgId: '1', from: w.from, to: '2026-02-30T00:00:00Z' }, 'bad_time', 'to'],
      [{ orgId: '1', from: w.to, to: w.from }, 'bad_range', 'to'],
      [{ orgId: '1', from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:01Z' }, 'range_too_large', 'to'],
    ];
    for (const [query, error, field] of cases) {
      r = await usage(server, query);
      assert.equal(r.status, 400, `${JSON.stringify(query)} → ${r.text}`);
      assert.equal(r.json.error, error, r.text);
      assert.equal(r.json.field, field, r.text);
      assert.equal(typeof r.json.message, 'string');
    }
    // 31 days exactly is allowed.
    r = await usage(server, { orgId: '1', from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00+00:00' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.from, '2026-01-01T00:00:00.000Z'.slice(0, r.json.from.length));
    r = await usage(server, { orgId: '1', ...w }, { method: 'POST' });
    assert.equal(r.status, 405);
  });
});

describe('usage metering on three nodes sharing Redis', () => {
  let cluster;
  let dirs = [];
  before(async () => {
    dirs = [0, 1, 2].map(() => mkdtempSync(path.join(os.tmpdir(), 'sg-usage-')));
    cluster = await startCluster(0);
    const nodes = [];
    for (const dir of dirs) {
      nodes.push(await startServer({ flags: { broker: cluster.redis.url, ...FLUSH, 'upload-dir': dir, 'presence-ttl': 300 } }));
    }
    cluster.nodes = nodes;
  });
  after(async () => {
    await stopCluster(cluster ?? {});
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('the workload spread over the nodes is summed exactly; a SIGKILLed node keeps what it flushed', async () => {
    const [a, b, c] = cluster.nodes;
    const org = unique('org');
    const started = Date.now();
    const { clients, expected } = await workload([a, b, c], org, 3);
    // Every node answers the cluster's sums.
    for (const node of [a, b, c]) {
      const got = await usageUntil(node, org, matches(expected), 'the cluster-wide workload in /usage');
      assertExact(got, expected, (Date.now() - started) / 60000);
    }
    // c's counts are in Redis once a flush took them: killed, they stay.
    c.signal('SIGKILL');
    await c.exited;
    const after = await usageUntil(a, org, matches(expected), 'the flushed counts after the SIGKILL');
    assertExact(after, expected, (Date.now() - started) / 60000);
    await Promise.all(clients.map((x) => x.close().catch(() => {})));
  });
});
