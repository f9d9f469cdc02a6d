// The process around the streams: start-up log line and validation, health endpoints,
// SIGTERM (every client gets 1001, exit 0 within 5 s), and logs that never hold a secret.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, withTimeout } from './support/env.mjs';
import { get, publish, publishOk, rawUpgrade } from './support/http.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { DEFAULT_API_KEY, claims, mintHS256, nowSeconds } from './support/tokens.mjs';
import { connect, openStream, tokenFor } from './support/ws.mjs';

describe('health and start-up', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('the "listening" log line names the address and the real port', () => {
    const line = server.logs().find((l) => l.message === 'listening');
    assert.ok(line);
    assert.equal(line.address, '127.0.0.1');
    assert.ok(Number.isInteger(line.port) && line.port > 0 && line.port < 65536);
  });

  test('GET /healthz → 200 {"status":"ok"}', async () => {
    const r = await get(server, '/healthz');
    assert.equal(r.status, 200);
    assert.match(String(r.headers.get('content-type') ?? ''), /^application\/json/);
    assert.deepEqual(r.json, { status: 'ok' });
  });

  test('GET /readyz → 200 {"status":"ready"}', async () => {
    const r = await get(server, '/readyz');
    assert.equal(r.status, 200);
    assert.match(String(r.headers.get('content-type') ?? ''), /^application\/json/);
    assert.deepEqual(r.json, { status: 'ready' });
  });

  test('every stderr line is a JSON object', () => {
    const lines = server.stderrText.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length > 0);
    for (const line of lines) {
      let parsed;
      assert.doesNotThrow(() => {
        parsed = JSON.parse(line);
      }, `not JSON: ${line}`);
      assert.equal(typeof parsed, 'object');
      assert.notEqual(parsed, null);
    }
  });
});

describe('start-up validation', () => {
  test('a --jwt-secret shorter than 32 bytes is refused: non-zero exit, never listening', async () => {
    const r = await runToExit({
      listen: '127.0.0.1:0',
      'jwt-secret': 'too-short-secret',
      'api-key': DEFAULT_API_KEY,
    });
    assert.notEqual(r.code, 0, `exit code ${r.code}`);
    assert.equal(r.stderr.includes('"listening"'), false);
    assert.ok(r.stderr.length + r.stdout.length > 0, 'says why');
  });
});

describe('SIGTERM', () => {
  test('every connection gets close 1001 and the process exits 0 within 5 s', { timeout: ms(30000) }, async () => {
    const server = await startServer();
    try {
      const streams = [];
      for (let i = 0; i < 6; i++) {
        streams.push(
          await openStream(server, {
            org: i % 2 ? 456 : 'acme',
            user: `u${i}`,
            services: i % 3 ? ['finance'] : ['finance', 'ops'],
          }),
        );
      }
      // One upgraded connection that has not sent its handshake yet.
      const pending = await connect(server, { token: tokenFor(server, { org: 456, user: 'pending' }) });
      const clients = [...streams.map((s) => s.client), pending];

      const t0 = Date.now();
      server.signal('SIGTERM');
      const closes = await Promise.all(clients.map((c) => c.waitClose(ms(5000))));
      for (const c of closes) assert.equal(c.code, 1001, `close code ${c.code}`);
      const exit = await withTimeout(server.exited, ms(5000), "exit after SIGTERM");
      const took = Date.now() - t0;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(took <= ms(5000), `exited after ${took} ms`);
    } finally {
      await server.stop();
    }
  });
});

describe('SIGTERM under traffic', () => {
  test('clients receiving a stream of events all get 1001; exit 0 within 5 s', { timeout: ms(30000) }, async () => {
    const server = await startServer();
    let producing = true;
    let producer;
    try {
      const org = unique('o');
      const streams = await Promise.all(
        Array.from({ length: 20 }, (_, i) => openStream(server, { org, user: `t${i}`, services: ['finance', 'ops'] })),
      );
      let n = 0;
      producer = (async () => {
        while (producing) {
          const r = await publish(server, { orgId: org, service: n % 2 ? 'ops' : 'finance', event: 'tick', data: { n } }).catch(() => null);
          if (!r || r.status !== 200) return; // the server is going away
          n += 1;
        }
      })();
      await Promise.all(streams.map((s) => s.client.nextEvent()));
      const t0 = Date.now();
      server.signal('SIGTERM');
      const closes = await Promise.all(streams.map((s) => s.client.waitClose(ms(5000))));
      assert.deepEqual(
        closes.map((c) => c.code),
        closes.map(() => 1001),
      );
      const exit = await withTimeout(server.exited, ms(5000), 'exit after SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(Date.now() - t0 <= ms(5000));
      for (const s of streams) {
        const seqs = s.client.received.filter((m) => m.type === 'event').map((m) => m.seq);
        assert.deepEqual(
          seqs,
          seqs.map((_, i) => i + 1),
          'no event lost or repeated before the close',
        );
      }
    } finally {
      producing = false;
      await producer;
      await server.stop();
    }
  });
});

describe('logs never contain secrets (--log-level debug)', () => {
  test('no JWT, no API key, no JWT secret in stdout or stderr', { timeout: ms(30000) }, async () => {
    const server = await startServer({ flags: { 'log-level': 'debug' } });
    const tokens = [];
    try {
      const org = unique('o');
      // Accepted, query form.
      const a = await openStream(server, { org, user: 'q' });
      tokens.push(a.token);
      // Accepted, header form.
      const b = await openStream(server, { org, user: 'h', via: 'header' });
      tokens.push(b.token);
      // Refused: bad signature, expired, in the query string (the most tempting thing to log).
      const badSig = mintHS256(claims({ org, user: 'bad' }), 'not-the-secret-0123456789abcdefghijkl');
      const expired = mintHS256(claims({ org, user: 'old', exp: nowSeconds() - 3600 }), server.secret);
      tokens.push(badSig, expired);
      for (const t of [badSig, expired]) {
        assert.equal((await rawUpgrade(server, `/v2/realtime/stream?access_token=${t}`)).status, 401);
        assert.equal(
          (await rawUpgrade(server, '/v2/realtime/stream', { headers: { authorization: `Bearer ${t}` } })).status,
          401,
        );
      }
      // A connection closed for a protocol error, and one by the client.
      const c = await connect(server, { token: a.token });
      c.send('{not json');
      await c.waitClose();
      await publishOk(server, { orgId: org, service: 'finance', event: 'e', data: {} });
      await a.client.nextEvent();
      assert.equal((await publish(server, { orgId: org }, { apiKey: server.apiKey })).status, 400);
      assert.equal((await get(server, '/v2/realtime/metrics', { apiKey: server.apiKey })).status, 200);
      await a.client.close();
      await b.client.close();
    } finally {
      await server.stop();
    }
    const output = server.stderrText + server.stdoutText;
    assert.ok(server.logs().length > 0, 'there are log lines to check');
    const secrets = [
      ['API key', server.apiKey],
      ['JWT secret', server.secret],
    ];
    for (const t of tokens) {
      secrets.push(['a JWT', t]);
      secrets.push(['a JWT signature', t.split('.')[2]]);
    }
    for (const [what, value] of secrets) {
      const at = output.indexOf(value);
      assert.equal(at, -1, `${what} found in the logs: …${output.slice(Math.max(0, at - 120), at + 40)}…`);
    }
  });
});
