// rediss://: streamgate nodes talking to a TLS-only port of a private redis-server with
// certificates made for the test. Events flow over TLS; a certificate from another CA, one
// that names another host, or a Redis that wants a client certificate the node doesn't have,
// leaves the node unready (never a plain-text fallback); bad TLS files stop start-up.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { publish, publishOk } from './support/http.mjs';
import { freePort, startRedis } from './support/redis.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { makeTestCertificates } from './support/tls.mjs';
import { DEFAULT_API_KEY, DEFAULT_SECRET } from './support/tokens.mjs';
import { assertEventFrame, closeAll, openStream } from './support/ws.mjs';

async function readyStatus(server) {
  return (await fetch(`${server.httpUrl}/readyz`)).status;
}

async function waitReady(server, status, what) {
  let last;
  await waitFor(
    async () => {
      last = await readyStatus(server);
      return last === status;
    },
    { what, timeout: ms(10000), describe: async () => `last /readyz: ${last}` },
  );
}

// Stays unready for a while: a refused certificate must never turn into a connection.
async function assertStaysUnready(server) {
  for (let i = 0; i < 10; i++) {
    assert.equal(await readyStatus(server), 503);
    await new Promise((r) => setTimeout(r, 150));
  }
  const r = await publish(server, { orgId: 1, service: 'finance', event: 'e', data: {} });
  assert.equal(r.status, 503);
}

async function tlsRedis(certs, clientAuth) {
  const tlsPort = await freePort();
  const redis = await startRedis({
    extraArgs: [
      '--bind', '127.0.0.1', '127.0.0.2',
      '--tls-port', String(tlsPort),
      '--tls-cert-file', certs.serverCert,
      '--tls-key-file', certs.serverKey,
      '--tls-ca-cert-file', certs.ca,
      '--tls-auth-clients', clientAuth,
    ],
  });
  return { redis, tlsPort };
}

describe('redis over TLS (rediss://)', () => {
  let dir;
  let certs;
  let open;
  let strict;
  const servers = [];
  const start = async (flags) => {
    const s = await startServer({ flags });
    servers.push(s);
    return s;
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sg-itest-tls-'));
    certs = makeTestCertificates(dir);
    open = await tlsRedis(certs, 'no');
    strict = await tlsRedis(certs, 'yes');
  });
  after(async () => {
    try {
      for (const s of servers) if (!s.exitInfo) await s.stop();
    } finally {
      await open?.redis.cleanup();
      await strict?.redis.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('events published and delivered through a TLS-only Redis port', async () => {
    const url = `rediss://127.0.0.1:${open.tlsPort}`;
    const a = await start({ broker: url, 'redis-tls-ca': certs.ca });
    const b = await start({ broker: url, 'redis-tls-ca': certs.ca });
    await waitReady(a, 200, 'node A ready over TLS');
    await waitReady(b, 200, 'node B ready over TLS');
    const org = unique('tls');
    const s = await openStream(b, { org });
    try {
      const id = await publishOk(a, { orgId: org, service: 'finance', event: 'invoice.paid', data: { n: 1 } });
      assertEventFrame(await s.client.nextEvent(), { id, seq: 1, data: { n: 1 } });
    } finally {
      await closeAll([s.client]);
    }
    // The plain port is not how they got there: Redis lists their connections under TLS.
    const clients = await open.redis.command('CLIENT', 'LIST');
    assert.match(String(clients), /name=streamgate-cmd-/);
  });

  test('a certificate from another CA is refused: the node stays unready', async () => {
    const s = await start({ broker: `rediss://127.0.0.1:${open.tlsPort}`, 'redis-tls-ca': certs.otherCa });
    await assertStaysUnready(s);
    assert.match(s.stderrText, /tls handshake failed/);
  });

  test('a certificate that names another host is refused', async () => {
    // Same server, same CA, but dialled as 127.0.0.2, which its certificate doesn't name.
    const s = await start({ broker: `rediss://127.0.0.2:${open.tlsPort}`, 'redis-tls-ca': certs.ca });
    await assertStaysUnready(s);
  });

  test('a Redis that requires client certificates takes the node only with one', async () => {
    const url = `rediss://127.0.0.1:${strict.tlsPort}`;
    const without = await start({ broker: url, 'redis-tls-ca': certs.ca });
    await assertStaysUnready(without);
    const withCert = await start({
      broker: url,
      'redis-tls-ca': certs.ca,
      'redis-tls-cert': certs.clientCert,
      'redis-tls-key': certs.clientKey,
    });
    await waitReady(withCert, 200, 'the node with a client certificate');
    const org = unique('mtls');
    const s = await openStream(withCert, { org });
    try {
      const id = await publishOk(withCert, { orgId: org, service: 'finance', event: 'e', data: {} });
      assertEventFrame(await s.client.nextEvent(), { id });
    } finally {
      await closeAll([s.client]);
    }
  });

  test('unreadable TLS files stop start-up with a message naming the flags', async () => {
    const base = { 'jwt-secret': DEFAULT_SECRET, 'api-key': DEFAULT_API_KEY, broker: `rediss://127.0.0.1:${open.tlsPort}` };
    const missing = await runToExit({ ...base, 'redis-tls-ca': path.join(dir, 'nope.pem') });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /--redis-tls-ca/);
    const mismatched = await runToExit({
      ...base,
      'redis-tls-cert': certs.clientCert,
      'redis-tls-key': certs.serverKey,
    });
    assert.notEqual(mismatched.code, 0);
    assert.match(mismatched.stderr, /--redis-tls-key/);
  });
});
