// --admin-listen: a second plain HTTP listener for /metrics, the probes and the admin page. With
// it, /metrics and the admin page leave the public port; the API never reaches the admin port;
// a drain and a shutdown close it with the public listener.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './support/env.mjs';
import { get, parsePrometheus, publish, rawUpgrade, sampleKey } from './support/http.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { tokenFor } from './support/ws.mjs';

// The admin listener as a server-shaped object for the HTTP helpers.
function adminOf(server) {
  const line = server.logs().find((l) => l.message === 'admin listening');
  assert.ok(line, 'an "admin listening" log line before "listening"');
  return { port: line.port, httpUrl: `http://127.0.0.1:${line.port}`, apiKey: server.apiKey };
}

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('--admin-listen', () => {
  let server;
  let admin;
  before(async () => {
    server = await startServer({ flags: { 'admin-listen': '127.0.0.1:0' } });
    admin = adminOf(server);
  });
  after(async () => {
    await server?.stop();
  });

  test('the admin port serves /metrics, the probes and the admin page without a key', async () => {
    const m = await get(admin, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type'), /^text\/plain; version=0.0.4/);
    const { samples } = parsePrometheus(m.text);
    assert.equal(samples.get('streamgate_connections_active'), 0);
    assert.equal((await get(admin, '/healthz')).json.status, 'ok');
    assert.equal((await get(admin, '/readyz')).json.status, 'ready');
    const page = await get(admin, '/admin');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /^text\/html/);
    assert.match(page.text, /<title>streamgate admin<\/title>/);
    const stats = await get(admin, '/admin/stats');
    assert.equal(stats.status, 200);
    assert.equal(stats.json.connections, 0);
    assert.equal(stats.json.state, 'ready');
  });

  test('/metrics and the admin page leave the public port; the probes stay', async () => {
    for (const path of ['/metrics', '/admin', '/admin/stats']) {
      const r = await get(server, path, { apiKey: server.apiKey });
      assert.equal(r.status, 404, path);
      assert.equal(r.json.error, 'not_found');
    }
    assert.equal((await get(server, '/healthz')).status, 200);
    assert.equal((await get(server, '/readyz')).status, 200);
  });

  test('the admin port serves nothing of the API: publish, metrics JSON and the stream are 404 there', async () => {
    const body = { orgId: 456, service: 'finance', event: 'e', data: {} };
    assert.equal((await publish(admin, body)).status, 404);
    assert.equal((await get(admin, '/v2/realtime/metrics', { apiKey: server.apiKey })).status, 404);
    const up = await rawUpgrade(admin, `/v2/realtime/stream?access_token=${tokenFor(server)}`);
    assert.equal(up.upgraded, false);
    assert.equal(up.status, 404);
  });

  test('both ports count their answers in streamgate_http_requests_total', async () => {
    const key = (route, code) => sampleKey('streamgate_http_requests_total', { code, route });
    const s0 = parsePrometheus((await get(admin, '/metrics')).text).samples;
    await get(server, '/metrics');
    await get(admin, '/healthz');
    const s1 = parsePrometheus((await get(admin, '/metrics')).text).samples;
    assert.equal(s1.get(key('other', '4xx')) - s0.get(key('other', '4xx')), 1, 'the public /metrics 404');
    assert.equal(s1.get(key('healthz', '2xx')) - s0.get(key('healthz', '2xx')), 1);
    assert.equal(s1.get(key('metrics', '2xx')) - s0.get(key('metrics', '2xx')), 1);
  });
});

describe('--admin-listen from the environment, and the drain', () => {
  test('STREAMGATE_ADMIN_LISTEN opens it; a drain answers 503 there too and the shutdown closes it', async () => {
    const server = await startServer({ flags: { 'drain-period': null }, env: { STREAMGATE_ADMIN_LISTEN: '127.0.0.1:0', STREAMGATE_DRAIN_PERIOD: '60' } });
    try {
      const admin = adminOf(server);
      assert.equal((await get(admin, '/readyz')).status, 200);
      server.signal('SIGTERM');
      await waitFor(async () => (await get(admin, '/readyz')).status === 503, { what: '/readyz draining on the admin port' });
      assert.equal((await get(admin, '/readyz')).json.status, 'draining');
      assert.equal((await get(admin, '/metrics')).status, 200, 'still scraped during the drain');
      server.signal('SIGTERM');
      const exit = await server.waitExit();
      assert.equal(exit.code, 0);
      assert.ok(await refused(admin.port), 'the admin port is closed');
    } finally {
      await server.stop();
    }
  });

  test('a bad --admin-listen stops start-up with the flag named', async () => {
    const r = await runToExit({ 'jwt-secret': 'x'.repeat(32), 'api-key': 'k', 'admin-listen': 'nowhere' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--admin-listen must be host:port/);
  });
});
