// Org quotas across two nodes sharing Redis: the connection quota counts the org's connections
// on every node (each node reads the others' metrics snapshots), and each node holds an equal
// share of the publish bucket. Convergence is waited on, never slept on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { promValue, publish, rawUpgrade } from './support/http.mjs';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const event = (org, n = 0) => ({ orgId: org, service: 'finance', event: 'e', data: { n } });

describe('org quotas on two nodes with Redis (--org-max-connections 3, --org-publish-rate 1, --org-publish-burst 4)', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, {
      'presence-ttl': 300,
      'org-max-connections': 3,
      'org-publish-rate': 1,
      'org-publish-burst': 4,
    });
    for (const node of cluster.nodes) {
      await waitFor(async () => (await promValue(node, 'streamgate_quota_cluster_nodes')) === 2, {
        what: 'each node to see the other',
        timeout: ms(10000),
      });
    }
  });
  after(async () => {
    await stopCluster(cluster ?? {});
  });

  const upgrade = (node, org, user) =>
    rawUpgrade(node, `/v2/realtime/stream?access_token=${encodeURIComponent(tokenFor(node, { org, user }))}`);

  test('maxConnections spans the nodes: 2 on A + 1 on B, then both refuse with 429', async () => {
    const [a, b] = cluster.nodes;
    const org = unique('o');
    const open = [
      await openStream(a, { org, user: 'u1' }),
      await openStream(a, { org, user: 'u2' }),
      await openStream(b, { org, user: 'u3' }),
    ];
    // Each node learns the other's count within a snapshot period plus its one-second poll; a
    // probe that still gets through is closed at once.
    for (const node of [a, b]) {
      const r = await waitFor(
        async () => {
          const got = await upgrade(node, org, 'probe');
          return got.upgraded ? undefined : got;
        },
        { what: 'the fourth connection to be refused', timeout: ms(10000), interval: 100 },
      );
      assert.equal(r.status, 429, r.body);
      assert.equal(r.json.error, 'quota_exceeded');
      assert.equal(r.json.quota, 'maxConnections');
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
    // Another org is not affected.
    const other = await openStream(b, { org: unique('o'), user: 'x' });
    // A connection closed on A frees a slot that B can use.
    await open[0].client.close();
    const c = await waitFor(
      async () => {
        try {
          return await openStream(b, { org, user: 'u4' });
        } catch {
          return undefined;
        }
      },
      { what: 'B to admit once A released one', timeout: ms(10000), interval: 100 },
    );
    await Promise.all([open[1], open[2], other, c].map((x) => x.client.close()));
  });

  test('publishRate is shared: each node takes half the burst, so the cluster accepts 4', async () => {
    const [a, b] = cluster.nodes;
    const org = unique('o');
    let accepted = 0;
    for (const node of [a, b]) {
      for (let i = 0; i < 3; i += 1) {
        const r = await publish(node, event(org, i));
        if (r.status === 200) accepted += 1;
        else {
          assert.equal(r.status, 429, r.text);
          assert.equal(r.json.quota, 'publishRate');
        }
      }
    }
    assert.equal(accepted, 4);
  });
});
