// Server-Sent Events across nodes sharing Redis: a stream resumes on another node from its
// Last-Event-ID with no gap and no duplicate; the `eventsource` npm package reconnects by itself
// after the server ends the stream (node restart) and misses nothing published meanwhile; and
// examples/nginx/streamgate.conf's SSE location streams unbuffered through nginx, where a killed
// node's streams come back on the other node. The nginx part is skipped when nginx is missing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, unique, waitFor } from './support/env.mjs';
import { metricsJson, publishOk } from './support/http.mjs';
import { NGINX, nginxMain, startNginx } from './support/nginx.mjs';
import { freePort } from './support/redis.mjs';
import { startServer } from './support/server.mjs';
import { openSseStream, SSE_PATH } from './support/sse.mjs';
import { tokenFor } from './support/ws.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(here, '../../examples/nginx/streamgate.conf');

async function publishN(server, org, service, n, event = 'tick') {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await publishOk(server, { orgId: org, service, event, data: { i } }));
  return ids;
}

// An EventSource (the npm package) recording what its page would see.
function listen(url) {
  const es = new EventSource(url);
  const seen = { events: [], acks: [], failed: [], opens: 0, es };
  es.addEventListener('open', () => seen.opens++);
  es.addEventListener('tick', (e) => seen.events.push({ id: JSON.parse(e.data).id, lastEventId: e.lastEventId }));
  es.addEventListener('ack', (e) => seen.acks.push(JSON.parse(e.data)));
  es.addEventListener('resume_failed', (e) => seen.failed.push(JSON.parse(e.data)));
  return seen;
}

function sseUrl(base, server, org, services) {
  const token = tokenFor(server, { org });
  return `${base}${SSE_PATH}?services=${services.join(',')}&access_token=${encodeURIComponent(token)}`;
}

const startNginxFor = (upstreams) => startNginx((dir, port) => nginxConfig(dir, port, upstreams));

describe('SSE with Redis: two nodes', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { 'sse-retry': 200 });
  });
  after(async () => {
    await stopCluster(cluster);
  });

  test('a stream resumes on the other node from its Last-Event-ID, every service, no gap, no duplicate', async () => {
    const [a, b] = cluster.nodes;
    const org = unique('o');
    const services = ['finance', 'ops'];
    const first = await openSseStream(a, { org, services });
    const seen = [...(await publishN(a, org, 'finance', 2)), ...(await publishN(b, org, 'ops', 1))];
    const got = await first.client.collectEvents(3);
    assert.deepEqual(got.map((e) => e.json.id).sort(), [...seen].sort());
    await first.client.close();

    const missed = [...(await publishN(a, org, 'ops', 2)), ...(await publishN(b, org, 'finance', 2))];
    const again = await openSseStream(b, { org, services, lastEventId: got[2].id });
    assert.deepEqual(again.ack.json.resume, { finance: { recovered: true }, ops: { recovered: true } });
    const replay = await again.client.collectEvents(missed.length);
    assert.deepEqual(replay.map((e) => e.json.id).sort(), [...missed].sort());
    const live = await publishOk(a, { orgId: org, service: 'finance', event: 'tick', data: {} });
    const all = await again.client.collectEvents(missed.length + 1);
    assert.equal(all.at(-1).json.id, live);
    assert.equal(again.client.events.length, missed.length + 1, 'no duplicate');
    await again.client.close();
  });

  test('the eventsource package reconnects after the server ends the stream and misses nothing', { timeout: ms(40000) }, async () => {
    const [a] = cluster.nodes;
    const org = unique('o');
    const port = await freePort();
    const flags = { broker: cluster.redis.url, 'sse-retry': 200, listen: `127.0.0.1:${port}` };
    let c = await startServer({ flags });
    try {
      const seen = listen(sseUrl(c.httpUrl, c, org, ['finance']));
      await waitFor(() => seen.acks.length === 1, { what: 'the ack' });
      const before = await publishN(c, org, 'finance', 3);
      await waitFor(() => seen.events.length === 3, { what: '3 events' });

      await c.stop(); // the server ends the stream: the last chunk, then FIN
      const during = await publishN(a, org, 'finance', 2);
      c = await startServer({ flags });
      await waitFor(() => seen.acks.length === 2, { what: 'the reconnect', timeout: ms(15000) });
      assert.deepEqual(seen.acks[1].resume, { finance: { recovered: true } });
      const afterIds = await publishN(c, org, 'finance', 1);
      const all = [...before, ...during, ...afterIds];
      await waitFor(() => seen.events.length >= all.length, {
        what: `${all.length} events`,
        describe: () => JSON.stringify(seen.events.map((e) => e.id)),
      });
      assert.deepEqual(
        seen.events.map((e) => e.id),
        all,
        'every event once, in order',
      );
      assert.deepEqual(seen.failed, []);
      assert.equal(seen.es.readyState, EventSource.OPEN);
      seen.es.close();
    } finally {
      await c.stop();
    }
  });
});

// The example's SSE location (and the rest of its server block) with the test's ports and paths.
function nginxConfig(dir, port, upstreams) {
  let example = readFileSync(EXAMPLE, 'utf8');
  example = example.replace(/^\s*server 10\.0\.0\.\d+:4000[^\n]*\n/gm, '');
  example = example.replace(
    /least_conn;\n/,
    `least_conn;\n${upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}\n`,
  );
  example = example.replace(/listen 443 ssl;/, `listen 127.0.0.1:${port};`);
  example = example.replace(/access_log \/var\/log\/nginx\/streamgate\.log/, `access_log ${dir}/access.log`);
  assert.match(example, /location = \/v2\/realtime\/sse/);
  return nginxMain(dir, `${example}
`);
}



describe('SSE through the nginx example', { skip: NGINX ? false : 'nginx is not installed' }, () => {
  let cluster;
  let nginx;
  before(async () => {
    cluster = await startCluster(2, { 'sse-retry': 200 });
    nginx = await startNginxFor(cluster.nodes.map((n) => n.port));
  });
  after(async () => {
    try {
      await nginx?.stop();
    } finally {
      await stopCluster(cluster);
    }
  });

  test("events pass unbuffered; a killed node's stream comes back on the other, missing nothing", { timeout: ms(40000) }, async () => {
    const org = unique('o');
    const front = `http://127.0.0.1:${nginx.port}`;
    const [a, b] = cluster.nodes;
    const seen = listen(sseUrl(front, a, org, ['finance']));
    await waitFor(() => seen.acks.length === 1, { what: 'the ack through nginx' });
    // One small event arrives on its own: nothing waits for a buffer to fill.
    const first = await publishOk(a, { orgId: org, service: 'finance', event: 'tick', data: {} });
    await waitFor(() => seen.events.length === 1, { what: 'the first event through nginx' });
    assert.equal(seen.events[0].id, first);

    const on = [];
    for (const n of cluster.nodes) on.push((await metricsJson(n)).connectionPoolStats.totalConnections);
    const victim = on[0] === 1 ? a : b;
    const survivor = victim === a ? b : a;
    victim.signal('SIGKILL');
    await victim.waitExit();
    const missed = await publishN(survivor, org, 'finance', 2);
    await waitFor(() => seen.acks.length === 2, { what: 'the reconnect through nginx', timeout: ms(15000) });
    assert.deepEqual(seen.acks[1].resume, { finance: { recovered: true } });
    const live = await publishOk(survivor, { orgId: org, service: 'finance', event: 'tick', data: {} });
    const all = [first, ...missed, live];
    await waitFor(() => seen.events.length >= all.length, {
      what: `${all.length} events`,
      describe: () => JSON.stringify(seen.events.map((e) => e.id)),
    });
    assert.deepEqual(
      seen.events.map((e) => e.id),
      all,
    );
    seen.es.close();

    const access = readFileSync(path.join(nginx.dir, 'access.log'), 'utf8');
    assert.match(access, /GET \/v2\/realtime\/sse" 200/);
    assert.doesNotMatch(access, /access_token|eyJ/, 'no token in the access log');
  });
});
