// Who is online (GET /v2/realtime/presence) and the cluster view of the metrics
// (GET /v2/realtime/metrics?scope=cluster): on one node with the memory broker, and on three
// nodes sharing a private redis-server, where a user on two nodes counts once and a node killed
// with SIGKILL stops counting within --presence-ttl.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, unique, waitFor } from './support/env.mjs';
import { get } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { closeAll, openStream, tokenFor } from './support/ws.mjs';

async function presence(server, { token, apiKey, query = '' } = {}) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return get(server, `/v2/realtime/presence${query}`, { apiKey, headers });
}

async function presenceUntil(server, org, check, what) {
  let last;
  await waitFor(
    async () => {
      const r = await presence(server, { apiKey: server.apiKey, query: `?orgId=${encodeURIComponent(org)}` });
      // A 503 while the broker reconnects is an answer to wait past, not a failure.
      if (r.status !== 200) return false;
      last = r.json;
      return check(last);
    },
    { what, timeout: ms(10000), describe: async () => JSON.stringify(last) },
  );
  return last;
}

const summary = (body) => body.users.map((u) => `${u.userId}:${u.connections}`);

describe('presence and cluster metrics on one node', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('a user sees the online users of their own org, each once, with connections and since', async () => {
    const org = unique('p');
    const a1 = await openStream(server, { org, user: 'alice' });
    const a2 = await openStream(server, { org, user: 'alice' });
    const b = await openStream(server, { org, user: 'bob' });
    const other = await openStream(server, { org: `${org}x`, user: 'mallory' });
    try {
      const r = await presence(server, { token: tokenFor(server, { org, user: 'bob' }) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.orgId, org);
      assert.equal(r.json.online, 2);
      assert.deepEqual(summary(r.json), ['alice:2', 'bob:1']);
      for (const u of r.json.users) assert.ok(Math.abs(Date.parse(u.since) - Date.now()) < 60000, u.since);
      // The token decides the org: another org's query parameter is not a way in.
      const sneaky = await presence(server, { token: tokenFor(server, { org, user: 'bob' }), query: `?orgId=${org}x` });
      assert.deepEqual(summary(sneaky.json), ['alice:2', 'bob:1']);
    } finally {
      await closeAll([a1.client, a2.client, b.client, other.client]);
    }
    const after = await presenceUntil(server, org, (p) => p.online === 0, 'everyone to leave');
    assert.deepEqual(after.users, []);
  });

  test('an integer org id comes back as a number, as in the metrics', async () => {
    const org = 900000 + Math.floor(Math.random() * 99999);
    const s = await openStream(server, { org, user: 'u' });
    try {
      const r = await presence(server, { token: tokenFor(server, { org, user: 'u' }) });
      assert.equal(r.json.orgId, org);
    } finally {
      await closeAll([s.client]);
    }
  });

  test('no token, a bad token, or an API key without orgId is refused', async () => {
    const none = await presence(server);
    assert.equal(none.status, 401);
    assert.equal(none.json.error, 'missing_token');
    const bad = await presence(server, { token: 'not.a.jwt' });
    assert.equal(bad.status, 401);
    const noOrg = await presence(server, { apiKey: server.apiKey });
    assert.equal(noOrg.status, 400);
    assert.equal(noOrg.json.error, 'missing_org');
    // The org id rule of publish and the token applies here too.
    for (const org of ['a%01b', 'x'.repeat(129)]) {
      const badOrg = await presence(server, { apiKey: server.apiKey, query: `?orgId=${org}` });
      assert.equal(badOrg.status, 400, org);
      assert.equal(badOrg.json.error, 'bad_org', org);
    }
    const post = await fetch(`${server.httpUrl}/v2/realtime/presence`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  test('?scope=cluster on a single node is this node alone; an unknown scope is a 400', async () => {
    const org = unique('m');
    const s = await openStream(server, { org });
    try {
      const r = await get(server, '/v2/realtime/metrics?scope=cluster', { apiKey: server.apiKey });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.scope, 'cluster');
      assert.equal(r.json.nodes.length, 1);
      assert.equal(r.json.activeConnections, r.json.nodes[0].activeConnections);
      assert.ok(r.json.connectionPoolStats.connectionsByOrg.some((o) => o.orgId === org && o.connections === 1));
      const bad = await get(server, '/v2/realtime/metrics?scope=galaxy', { apiKey: server.apiKey });
      assert.equal(bad.status, 400);
      const anon = await get(server, '/v2/realtime/metrics?scope=cluster');
      assert.equal(anon.status, 401);
    } finally {
      await closeAll([s.client]);
    }
  });
});

describe('presence and cluster metrics on three nodes sharing redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(3, { 'presence-ttl': 1500 }));
  });
  after(() => stopCluster({ redis, nodes }));

  test('a user connected to two nodes counts once, seen from any node', async () => {
    const org = unique('c');
    const onA = await openStream(nodes[0], { org, user: 'alice' });
    const onB = await openStream(nodes[1], { org, user: 'alice' });
    const bob = await openStream(nodes[2], { org, user: 'bob' });
    try {
      for (const node of nodes) {
        const seen = await presenceUntil(node, org, (p) => p.online === 2 && p.users[0]?.connections === 2, 'both users');
        assert.deepEqual(summary(seen), ['alice:2', 'bob:1']);
      }
    } finally {
      await closeAll([onA.client, onB.client, bob.client]);
    }
    await presenceUntil(nodes[1], org, (p) => p.online === 0, 'everyone to leave');
  });

  test('?scope=cluster sums the nodes; each node still reports only itself by default', async () => {
    const org = unique('c');
    const streams = [];
    for (const [i, node] of nodes.entries()) {
      for (let k = 0; k <= i; k++) streams.push(await openStream(node, { org, user: `u${i}-${k}` }));
    }
    try {
      let last;
      await waitFor(
        async () => {
          last = (await get(nodes[0], '/v2/realtime/metrics?scope=cluster', { apiKey: nodes[0].apiKey })).json;
          const entry = last?.connectionPoolStats?.connectionsByOrg?.find((o) => o.orgId === org);
          return last?.nodes?.length === 3 && entry?.connections === 6;
        },
        { what: 'the cluster view', timeout: ms(10000), describe: async () => JSON.stringify(last) },
      );
      const names = new Set(last.nodes.map((n) => n.node));
      assert.equal(names.size, 3);
      const sum = last.nodes.reduce((s, n) => s + n.activeConnections, 0);
      assert.equal(last.activeConnections, sum);
      const own = (await get(nodes[2], '/v2/realtime/metrics', { apiKey: nodes[2].apiKey })).json;
      assert.equal(own.connectionPoolStats.connectionsByOrg.find((o) => o.orgId === org).connections, 3);
    } finally {
      await closeAll(streams.map((s) => s.client));
    }
  });

  test('a node killed with SIGKILL stops counting within --presence-ttl', async () => {
    const org = unique('k');
    const survivor = await openStream(nodes[0], { org, user: 'stays' });
    const doomed = await openStream(nodes[2], { org, user: 'goes' });
    try {
      await presenceUntil(nodes[0], org, (p) => p.online === 2, 'both users');
      nodes[2].signal('SIGKILL');
      await nodes[2].waitExit();
      const killedAt = Date.now();
      const seen = await presenceUntil(nodes[0], org, (p) => p.online === 1, 'the dead node to expire');
      assert.deepEqual(summary(seen), ['stays:1']);
      // TTL 1.5 s; generous for a loaded machine, but bounded.
      assert.ok(Date.now() - killedAt < ms(6000), `took ${Date.now() - killedAt} ms`);
      const cluster = (await get(nodes[0], '/v2/realtime/metrics?scope=cluster', { apiKey: nodes[0].apiKey })).json;
      assert.equal(cluster.nodes.length, 2);
    } finally {
      await closeAll([survivor.client]);
      doomed.client.terminate();
    }
  });

  test('presence answers 503 while redis is down and comes back with it', { timeout: ms(40000) }, async () => {
    const org = unique('r');
    const s = await openStream(nodes[0], { org, user: 'alice' });
    try {
      await presenceUntil(nodes[0], org, (p) => p.online === 1, 'alice');
      await redis.stop();
      let status;
      await waitFor(
        async () => {
          status = (await presence(nodes[0], { apiKey: nodes[0].apiKey, query: `?orgId=${org}` })).status;
          return status === 503;
        },
        { what: 'a 503 while redis is down', timeout: ms(10000) },
      );
      await redis.restart();
      const back = await presenceUntil(nodes[0], org, (p) => p.online === 1, 'presence after redis returns');
      assert.deepEqual(summary(back), ['alice:1']);
    } finally {
      await closeAll([s.client]);
    }
  });
});
