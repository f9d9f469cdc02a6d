// What Prometheus users look for first on /metrics: build info, the standard process_* metrics,
// the publish latency histogram, HTTP answers by route and status class, and the broker's
// state — each checked against the real binary, with counts rather than timings.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { get, prometheus, publish, publishOk, rawUpgrade, sampleKey } from './support/http.mjs';
import { startRedis } from './support/redis.mjs';
import { BIN, startServer } from './support/server.mjs';
import { chatClient, join } from './support/chat.mjs';
import { create, request, tusHeaders } from './support/tus.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const ROUTES = new Set([
  'publish', 'stream', 'sse', 'metrics_api', 'presence', 'rooms', 'upload_socket', 'upload_status', 'tus',
  'disconnect', 'revoke', 'history', 'channels', 'connections', 'org_limits', 'usage',
  'metrics', 'healthz', 'readyz', 'admin', 'admin_stats', 'other',
]);

function httpCount(samples, route, code) {
  return samples.get(sampleKey('streamgate_http_requests_total', { code, route })) ?? 0;
}

// Every series of a histogram: its cumulative buckets by le, _count and _sum.
function histogram(samples, name) {
  const buckets = [];
  for (const [key, value] of samples) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (m) buckets.push({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), value });
  }
  buckets.sort((a, b) => a.le - b.le);
  return { buckets, count: samples.get(`${name}_count`), sum: samples.get(`${name}_sum`) };
}

describe('observability metrics', () => {
  let server;
  let dir; // its own upload directory: the default one is shared with other servers
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sg-obs-'));
    server = await startServer({ flags: { 'upload-dir': dir } });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('streamgate_build_info{version,commit} is one series of value 1 naming what --version prints', async () => {
    const p = await prometheus(server);
    assert.equal(p.types.get('streamgate_build_info'), 'gauge');
    const series = [...p.samples.entries()].filter(([k]) => k.startsWith('streamgate_build_info'));
    assert.equal(series.length, 1, JSON.stringify(series));
    const [key, value] = series[0];
    assert.equal(value, 1);
    const version = /version="([^"]+)"/.exec(key)[1];
    const commit = /commit="([^"]+)"/.exec(key)[1];
    const printed = execFileSync(BIN, ['--version'], { encoding: 'utf8' });
    assert.ok(printed.startsWith(`streamgate ${version}`), `${printed} vs ${key}`);
    if (commit !== 'unknown') assert.ok(printed.includes(commit), `${printed} names ${commit}`);
  });

  test('process_* metrics are the process\'s own, read from /proc', async () => {
    const pid = server.child.pid;
    const p = await prometheus(server);
    assert.equal(p.types.get('process_cpu_seconds_total'), 'counter');
    for (const g of ['process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'process_start_time_seconds']) {
      assert.equal(p.types.get(g), 'gauge', g);
    }
    assert.ok(p.samples.get('process_cpu_seconds_total') >= 0);
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const soft = Number(/Max open files\s+(\d+)/.exec(limits)[1]);
    assert.equal(p.samples.get('process_max_fds'), soft);
    const rssPages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    const rss = p.samples.get('process_resident_memory_bytes');
    assert.ok(rss > 1 << 20, `rss ${rss}`);
    assert.ok(rss < rssPages * 4096 * 4 && rss * 4 > rssPages * 4096, `rss ${rss} vs statm ${rssPages} pages`);
    const start = p.samples.get('process_start_time_seconds');
    const now = Date.now() / 1000;
    assert.ok(start <= now + 1 && start > now - 600, `start ${start}, now ${now}`);

    // Five more sockets are five more descriptors in the next scrape.
    const before_ = p.samples.get('process_open_fds');
    const streams = [];
    for (let i = 0; i < 5; i++) streams.push(await openStream(server, { org: 456, user: `fd-${i}` }));
    const during = (await prometheus(server)).samples.get('process_open_fds');
    assert.ok(during >= before_ + 5, `open fds ${before_} → ${during}`);
    await Promise.all(streams.map((s) => s.client.close()));
    await waitFor(async () => (await prometheus(server)).samples.get('process_open_fds') < during, {
      what: 'descriptors released',
    });
  });

  test('publish latency: one observation per accepted request, batches included; refusals are not observed', async () => {
    const name = 'streamgate_publish_latency_seconds';
    const p0 = await prometheus(server);
    assert.equal(p0.types.get(name), 'histogram');
    const h0 = histogram(p0.samples, name);
    for (let i = 0; i < 3; i++) await publishOk(server, { orgId: 456, service: 'finance', event: 'e', data: { i } });
    const batch = await publish(server, [
      { orgId: 456, service: 'finance', event: 'b', data: {} },
      { orgId: 457, service: 'finance', event: 'b', data: {} },
    ]);
    assert.equal(batch.status, 200, batch.text);
    assert.equal((await publish(server, { orgId: 456, service: 'finance' })).status, 400);
    assert.equal((await publish(server, { orgId: 456, service: 'finance', event: 'e', data: {} }, { apiKey: 'nope' })).status, 401);

    const h = histogram((await prometheus(server)).samples, name);
    assert.equal(h.count, h0.count + 4, 'three single publishes and one batch');
    assert.ok(h.buckets.length >= 10, 'Prometheus buckets');
    assert.equal(h.buckets.at(-1).le, Infinity);
    assert.equal(h.buckets.at(-1).value, h.count, '+Inf bucket equals _count');
    for (let i = 1; i < h.buckets.length; i++) assert.ok(h.buckets[i].value >= h.buckets[i - 1].value, 'cumulative');
    assert.ok(h.sum > h0.sum && h.sum < 60, `sum ${h0.sum} → ${h.sum}`);
  });

  test('HTTP answers are counted by route and status class; unknown paths count as "other"', async () => {
    const s0 = (await prometheus(server)).samples;
    assert.equal((await get(server, '/healthz')).status, 200);
    assert.equal((await get(server, '/healthz')).status, 200);
    assert.equal((await get(server, '/readyz')).status, 200);
    assert.equal((await get(server, '/no/such/path')).status, 404);
    assert.equal((await get(server, `/org/456/user/${Date.now()}`)).status, 404);
    assert.equal((await get(server, '/v2/realtime/metrics')).status, 401);
    assert.equal((await get(server, '/v2/realtime/metrics', { apiKey: server.apiKey })).status, 200);
    assert.equal((await publish(server, { orgId: 456, service: 'finance', event: 'e', data: {} }, { apiKey: 'x' })).status, 401);
    assert.equal((await publish(server, { orgId: 456, service: 'finance', event: 'e', data: {} })).status, 200);
    assert.equal((await get(server, '/v2/realtime/publish')).status, 405);
    assert.equal((await rawUpgrade(server, '/v2/realtime/stream?access_token=bad')).status, 401);

    const p = await prometheus(server);
    const s = p.samples;
    assert.equal(p.types.get('streamgate_http_requests_total'), 'counter');
    const delta = (route, code) => httpCount(s, route, code) - httpCount(s0, route, code);
    assert.equal(delta('healthz', '2xx'), 2);
    assert.equal(delta('readyz', '2xx'), 1);
    assert.equal(delta('other', '4xx'), 2);
    assert.equal(delta('metrics_api', '4xx'), 1);
    assert.equal(delta('metrics_api', '2xx'), 1);
    assert.equal(delta('publish', '4xx'), 2, '401 and 405');
    assert.equal(delta('publish', '2xx'), 1);
    assert.equal(delta('stream', '4xx'), 1);
    assert.equal(delta('metrics', '2xx'), 1, 'the scrape before this one');

    // Bounded label values, and no org or user label on any metric.
    for (const key of s.keys()) {
      if (key.startsWith('streamgate_http_requests_total{')) {
        const route = /route="([^"]+)"/.exec(key)[1];
        const code = /code="([^"]+)"/.exec(key)[1];
        assert.ok(ROUTES.has(route), `route label ${route}`);
        assert.match(code, /^[2-5]xx$/);
      }
      assert.doesNotMatch(key, /[{,](org|orgId|org_id|user|userId|user_id)=/, key);
    }
  });

  test('streamgate_uploads_in_progress and streamgate_chat_rooms follow uploads and rooms (and /admin/stats says the same)', async () => {
    const value = async (name) => (await prometheus(server)).samples.get(name);
    const stats = async () => (await get(server, '/admin/stats', { apiKey: server.apiKey })).json;
    assert.equal(await value('streamgate_uploads_in_progress'), 0);
    assert.equal(await value('streamgate_chat_rooms'), 0);

    const token = tokenFor(server, { org: 456, user: 'up' });
    const urls = [await create(server, token, 100), await create(server, token, 200)];
    assert.equal(await value('streamgate_uploads_in_progress'), 2);
    assert.equal((await stats()).uploadsInProgress, 2);
    for (const url of urls) assert.equal((await request(server, 'DELETE', url, { headers: tusHeaders(token) })).status, 204);
    await waitFor(async () => (await value('streamgate_uploads_in_progress')) === 0, { what: 'uploads removed' });

    const alice = await chatClient(server, { org: 456, user: 'alice' });
    const bob = await chatClient(server, { org: 456, user: 'bob' });
    await join(alice, 'lobby');
    await join(bob, 'lobby');
    await join(bob, 'ops');
    assert.equal(await value('streamgate_chat_rooms'), 2, 'two rooms, whatever their members');
    assert.equal((await stats()).rooms, 2);
    await bob.close();
    await waitFor(async () => (await value('streamgate_chat_rooms')) === 1, { what: 'ops empty' });
    await alice.close();
    await waitFor(async () => (await value('streamgate_chat_rooms')) === 0, { what: 'no rooms' });
  });

  test('streamgate_broker_up is 1 with the memory broker', async () => {
    const p = await prometheus(server);
    assert.equal(p.types.get('streamgate_broker_up'), 'gauge');
    assert.equal(p.samples.get('streamgate_broker_up'), 1);
  });
});

describe('broker state with redis', () => {
  let redis;
  let server;
  before(async () => {
    redis = await startRedis();
    server = await startServer({ flags: { broker: redis.url } });
  });
  after(async () => {
    await server?.stop();
    await redis?.cleanup();
  });

  test('streamgate_broker_up follows Redis going away and coming back', async () => {
    const up = async () => (await prometheus(server)).samples.get('streamgate_broker_up');
    await waitFor(async () => (await up()) === 1, { what: 'broker up' });
    await redis.stop();
    await waitFor(async () => (await up()) === 0, { what: 'broker down', timeout: ms(15000) });
    assert.equal((await get(server, '/readyz')).status, 503);
    await redis.launch();
    await waitFor(async () => (await up()) === 1, { what: 'broker up again', timeout: ms(15000) });
  });
});
