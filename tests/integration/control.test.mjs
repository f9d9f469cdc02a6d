// The producer control API, on one node (memory broker) and on three nodes sharing a Redis:
// POST /v2/realtime/disconnect closes a user's (or one connection's, or an org's) sockets on
// every node with 4004; POST /v2/realtime/revoke refuses older tokens at connect on every node
// (also on a node started afterwards) and closes the sockets holding them with 4001; GET
// history, channels and connections answer for the cluster; bad requests get named 400s; every
// list and the revocation table are bounded.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, unique, waitFor } from './support/env.mjs';
import { publishOk, readResponse } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { openSseStream } from './support/sse.mjs';
import { mintHS256, nowSeconds, claims } from './support/tokens.mjs';
import { openUpload } from './support/upload.mjs';
import { closeAll, connect, openStream, UpgradeRejected } from './support/ws.mjs';

async function call(server, method, path, body, { apiKey } = {}) {
  const key = apiKey === undefined ? server.apiKey : apiKey;
  const headers = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return readResponse(res);
}

const post = (server, path, body, opts) => call(server, 'POST', `/v2/realtime/${path}`, body, opts);
const get = (server, path, opts) => call(server, 'GET', `/v2/realtime/${path}`, undefined, opts);

async function expectRejected(promise, status, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof UpgradeRejected, String(e));
    assert.equal(e.status, status);
    assert.equal(JSON.parse(e.body).error, code);
    return true;
  });
}

function tokenIssued(server, org, user, iat) {
  return mintHS256(claims({ org, user, iat }), server.secret);
}

// The user's other long-lived connections on `server`, an SSE stream and an upload socket,
// which a disconnect or revoke must close as well as the stream sockets.
async function openSideConnections(server, org, user, token) {
  const sse = await openSseStream(server, { org, user, token });
  const upload = await openUpload(server, { org, user, token });
  return { sse: sse.client, upload };
}

// Both side connections closed with `code` after an error naming `error`: the upload socket
// with that close code, the SSE response ended after an error event.
async function expectSideClosed({ sse, upload }, code, error) {
  const info = await upload.waitClose();
  assert.deepEqual([info.code, info.reason], [code, error]);
  assert.equal(upload.received.find((m) => m.type === 'error')?.code, error);
  await waitFor(() => sse.ended && sse.closed, { what: 'the SSE response to end' });
  const said = sse.messages.find((m) => m.event === 'error');
  assert.equal(JSON.parse(said?.data ?? '{}').code, error);
}

// The tests that run the same on one node and on three: `nodes()` gives the nodes (one or
// three); a client of each test sits on every node.
function controlSuite(nodes, cluster) {
  test('disconnect by user closes that user everywhere with 4004, others stay', async () => {
    const org = unique('d');
    const mine = await Promise.all(nodes().map((n) => openStream(n, { org, user: 'u1' })));
    const theirs = await Promise.all(nodes().map((n) => openStream(n, { org, user: 'u2' })));
    const side = await openSideConnections(nodes()[0], org, 'u1');
    const r = await post(nodes()[0], 'disconnect', { orgId: org, userId: 'u1', reason: 'banned' });
    assert.equal(r.status, 200, r.text);
    // The stream socket, the SSE stream and the upload socket of this node.
    assert.deepEqual(r.json, { closed: 3, cluster });
    await expectSideClosed(side, 4004, 'disconnected');
    for (const { client } of mine) {
      const info = await client.waitClose();
      assert.equal(info.code, 4004);
      assert.equal(info.reason, 'disconnected');
      const error = client.received.find((m) => m.type === 'error');
      assert.equal(error.code, 'disconnected');
      assert.equal(error.message, 'banned');
    }
    // The other user is untouched: still receives events.
    const id = await publishOk(nodes()[0], { orgId: org, service: 'finance', event: 'e', data: {} });
    for (const { client } of theirs) assert.equal((await client.nextEvent()).id, id);
    await closeAll(theirs.map((s) => s.client));
  });

  test('disconnect by connectionId closes only that connection, and says reconnect when asked', async () => {
    const org = unique('c');
    const last = nodes().length - 1;
    const a = await openStream(nodes()[last], { org, user: 'u1' });
    const b = await openStream(nodes()[last], { org, user: 'u1' });
    assert.match(a.ack.connectionId, /^[0-9a-f]{16}$/);
    assert.notEqual(a.ack.connectionId, b.ack.connectionId);
    const r = await post(nodes()[0], 'disconnect', { orgId: org, connectionId: a.ack.connectionId, reconnect: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.cluster, cluster);
    const info = await a.client.waitClose();
    assert.deepEqual([info.code, info.reason], [4004, 'disconnected; reconnect']);
    const id = await publishOk(nodes()[0], { orgId: org, service: 'finance', event: 'e', data: {} });
    assert.equal((await b.client.nextEvent()).id, id);
    await closeAll([b.client]);
  });

  test('disconnect by org alone closes every user of that org, no other org', async () => {
    const org = unique('whole');
    const other = unique('other');
    const inOrg = await Promise.all(nodes().map((n, i) => openStream(n, { org, user: `u${i}` })));
    const outside = await openStream(nodes()[0], { org: other, user: 'u0' });
    const r = await post(nodes()[0], 'disconnect', { orgId: org });
    assert.equal(r.status, 200, r.text);
    for (const { client } of inOrg) assert.equal((await client.waitClose()).code, 4004);
    const id = await publishOk(nodes()[0], { orgId: other, service: 'finance', event: 'e', data: {} });
    assert.equal((await outside.client.nextEvent()).id, id);
    await closeAll([outside.client]);
  });

  test('revoke closes sockets holding older tokens with 4001 and refuses them at connect on every node', async () => {
    const org = unique('r');
    const now = nowSeconds();
    const old = await Promise.all(
      nodes().map((n) => openStream(n, { org, user: 'u1', token: tokenIssued(n, org, 'u1', now - 100) })),
    );
    const fresh = await openStream(nodes()[0], { org, user: 'u1', token: tokenIssued(nodes()[0], org, 'u1', now + 5) });
    const side = await openSideConnections(nodes()[0], org, 'u1', tokenIssued(nodes()[0], org, 'u1', now - 100));
    const r = await post(nodes()[0], 'revoke', { orgId: org, userId: 'u1', issuedBefore: now });
    assert.equal(r.status, 200, r.text);
    // The old token's stream socket, SSE stream and upload socket of this node.
    assert.equal(r.json.closed, 3);
    await expectSideClosed(side, 4001, 'token_revoked');
    assert.equal(r.json.cluster, cluster);
    for (const { client } of old) {
      const info = await client.waitClose();
      assert.deepEqual([info.code, info.reason], [4001, 'token_revoked']);
    }
    for (const n of nodes()) {
      // The other nodes learn through the control channel: wait until they refuse.
      await waitFor(async () => {
        try {
          const c = await connect(n, { token: tokenIssued(n, org, 'u1', now - 50) });
          await c.close();
          return false;
        } catch (e) {
          return e instanceof UpgradeRejected && e.status === 401 && JSON.parse(e.body).error === 'token_revoked';
        }
      }, { what: 'the revocation on every node' });
      // A token without iat can't show it is newer; one issued after is fine.
      const noIat = mintHS256(claims({ org, user: 'u1', iat: undefined }), n.secret);
      await expectRejected(connect(n, { token: noIat }), 401, 'token_revoked');
      const ok = await openStream(n, { org, user: 'u1', token: tokenIssued(n, org, 'u1', now) });
      await closeAll([ok.client]);
      // Another user of the org is not concerned.
      const other = await openStream(n, { org, user: 'u2', token: tokenIssued(n, org, 'u2', now - 100) });
      await closeAll([other.client]);
    }
    // The newer token's socket stayed.
    const id = await publishOk(nodes()[0], { orgId: org, service: 'finance', event: 'e', data: {} });
    assert.equal((await fresh.client.nextEvent()).id, id);
    await closeAll([fresh.client]);
  });

  test('history pages forward after an id with more, or gives the newest; limit is capped', async () => {
    const org = unique('h');
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push(await publishOk(nodes()[i % nodes().length], { orgId: org, service: 'finance', event: `e${i}`, data: { i } }));
    const newest = await get(nodes()[0], `history?orgId=${org}&service=finance&limit=3`);
    assert.equal(newest.status, 200, newest.text);
    assert.deepEqual(newest.json.events.map((e) => e.id), ids.slice(4));
    assert.deepEqual(Object.keys(newest.json.events[0]).sort(), ['data', 'event', 'id', 'service', 'timestamp']);
    assert.deepEqual(newest.json.events[2].data, { i: 6 });
    const page = await get(nodes().at(-1), `history?orgId=${org}&service=finance&after=${ids[1]}&limit=3`);
    assert.deepEqual(page.json.events.map((e) => e.id), ids.slice(2, 5));
    assert.equal(page.json.more, true);
    const rest = await get(nodes()[0], `history?orgId=${org}&service=finance&after=${ids[4]}&limit=100`);
    assert.deepEqual(rest.json.events.map((e) => e.id), ids.slice(5));
    assert.equal(rest.json.more, false);
    // --api-list-max 5 caps the limit.
    const capped = await get(nodes()[0], `history?orgId=${org}&service=finance&after=${ids[0]}&limit=1000`);
    assert.equal(capped.json.events.length, 5);
    assert.equal(capped.json.more, true);
  });

  test('channels and connections answer for the whole cluster, without tokens, bounded', async () => {
    const org = unique('q');
    const streams = [];
    for (const [i, n] of nodes().entries()) {
      streams.push(await openStream(n, { org, user: 'u1', services: ['finance', 'crm'] }));
      streams.push(await openStream(n, { org, user: `x${i}`, services: ['finance'] }));
    }
    const ch = await get(nodes()[0], `channels?orgId=${org}`);
    assert.equal(ch.status, 200, ch.text);
    assert.equal(ch.json.nodes, nodes().length);
    assert.deepEqual(ch.json.channels, [
      { service: 'crm', subscribers: nodes().length },
      { service: 'finance', subscribers: 2 * nodes().length },
    ]);
    assert.equal(ch.json.more, false);
    const conns = await get(nodes().at(-1), `connections?orgId=${org}&userId=u1`);
    assert.equal(conns.status, 200, conns.text);
    assert.equal(conns.json.nodes, nodes().length);
    assert.equal(conns.json.connections.length, nodes().length);
    const own = streams.filter((_, i) => i % 2 === 0).map((s) => s.ack.connectionId).sort();
    assert.deepEqual(conns.json.connections.map((c) => c.connectionId).sort(), own);
    assert.deepEqual(new Set(conns.json.connections.map((c) => c.node)).size, nodes().length);
    for (const c of conns.json.connections) {
      assert.deepEqual(Object.keys(c).sort(), ['connectionId', 'node', 'services', 'since']);
      assert.deepEqual(c.services, ['finance', 'crm']);
      assert.ok(Math.abs(Date.parse(c.since) - Date.now()) < ms(60000));
    }
    assert.ok(!conns.text.includes(streams[0].token), 'no token in the answer');
    await closeAll(streams.map((s) => s.client));
  });
}

describe('producer control API, one node', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'api-list-max': 5, 'max-revocations': 3 } });
  });
  after(() => server?.stop());
  controlSuite(() => [server], false);

  test('bad requests get named 400s, a missing API key 401, the wrong method 405', async () => {
    const cases = [
      ['disconnect', '{', 'malformed_json', undefined],
      ['disconnect', [], 'not_an_object', undefined],
      ['disconnect', {}, 'missing_field', 'orgId'],
      ['disconnect', { orgId: 1, user: 'x' }, 'unknown_field', 'user'],
      ['disconnect', { orgId: -1 }, 'bad_field', 'orgId'],
      ['disconnect', { orgId: 1, userId: '' }, 'bad_field', 'userId'],
      ['disconnect', { orgId: 1, reconnect: 'yes' }, 'bad_field', 'reconnect'],
      ['disconnect', { orgId: 1, reason: 'x'.repeat(300) }, 'bad_field', 'reason'],
      ['revoke', { orgId: 1, userId: 'u' }, 'missing_field', 'issuedBefore'],
      ['revoke', { orgId: 1, issuedBefore: 5 }, 'missing_field', 'userId'],
      ['revoke', { orgId: 1, userId: 'u', issuedBefore: 'now' }, 'bad_field', 'issuedBefore'],
      ['revoke', { orgId: 1, userId: 'u', issuedBefore: nowSeconds() + 10 * 86400 }, 'bad_field', 'issuedBefore'],
    ];
    for (const [path, body, code, field] of cases) {
      const r = await post(server, path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error, code, r.text);
      assert.equal(r.json.field, field, r.text);
    }
    for (const q of ['history?service=finance', 'history?orgId=1', 'history?orgId=1&service=finance&limit=0',
      'history?orgId=1&service=finance&after=nope', 'history?orgId=1&service=room:x', 'channels', 'connections?orgId=1']) {
      const r = await get(server, q);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
    }
    assert.equal((await post(server, 'disconnect', { orgId: 1 }, { apiKey: null })).status, 401);
    assert.equal((await get(server, 'channels?orgId=1', { apiKey: 'wrong' })).status, 401);
    assert.equal((await get(server, 'disconnect')).status, 405);
  });

  test('--max-revocations bounds the table: a third user is refused with 503, a repeat is not', async () => {
    const org = unique('full');
    const now = nowSeconds();
    for (const user of ['a', 'b']) {
      assert.equal((await post(server, 'revoke', { orgId: org, userId: user, issuedBefore: now })).status, 200);
    }
    const full = await post(server, 'revoke', { orgId: org, userId: 'c', issuedBefore: now });
    assert.equal(full.status, 503);
    assert.equal(full.json.error, 'revocations_full');
    // c was not revoked; a repeat for a is an update, not a new entry.
    const c = await openStream(server, { org, user: 'c', token: tokenIssued(server, org, 'c', now - 10) });
    await closeAll([c.client]);
    assert.equal((await post(server, 'revoke', { orgId: org, userId: 'a', issuedBefore: now + 1 })).status, 200);
  });

  test('channels lists at most --api-list-max services, with more', async () => {
    const org = unique('many');
    const services = Array.from({ length: 7 }, (_, i) => `s${i}`);
    const s = await openStream(server, { org, user: 'u', services });
    const r = await get(server, `channels?orgId=${org}`);
    assert.equal(r.json.channels.length, 5);
    assert.equal(r.json.more, true);
    await closeAll([s.client]);
  });
});

describe('producer control API, three nodes on redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(3, { 'api-list-max': 5 }));
    // Every node's heartbeat is in, so questions wait for three answers.
    await waitFor(async () => {
      const r = await get(nodes[0], `channels?orgId=warmup`);
      return r.status === 200 && r.json.nodes === 3;
    }, { what: 'three nodes answering', timeout: ms(15000) });
  });
  after(() => stopCluster({ redis, nodes }));
  controlSuite(() => nodes, true);

  test('a node started after a revoke loads it and refuses the revoked token', async () => {
    const org = unique('late');
    const now = nowSeconds();
    assert.equal((await post(nodes[1], 'revoke', { orgId: org, userId: 'u1', issuedBefore: now })).status, 200);
    const late = await startServer({ flags: { broker: redis.url } });
    try {
      await waitFor(async () => {
        try {
          const c = await connect(late, { token: tokenIssued(late, org, 'u1', now - 5) });
          await c.close();
          return false;
        } catch (e) {
          return e instanceof UpgradeRejected && JSON.parse(e.body).error === 'token_revoked';
        }
      }, { what: 'the late node to load the revocation' });
      const ttl = await redis.command('PTTL', 'sg:revocations');
      assert.ok(ttl > 0 && ttl <= 86400 * 1000, `revocations TTL ${ttl}`);
    } finally {
      await late.stop();
    }
  });
});
