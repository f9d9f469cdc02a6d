// Org quota overrides shared through Redis: set or removed on one node, enforced on the others
// within 2 s (each node polls the overrides' version every second), read back from the store by
// any node, loaded by a node that starts later, and bounded by --org-max-overrides for the
// cluster as a whole. Convergence is waited on, never slept on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms, unique, waitFor } from './support/env.mjs';
import { orgLimits, rawUpgrade } from './support/http.mjs';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { startServer } from './support/server.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const upgrade = (node, org, user) =>
  rawUpgrade(node, `/v2/realtime/stream?access_token=${encodeURIComponent(tokenFor(node, { org, user }))}`);

// Polls an upgrade of org on `node` until it is refused (429) or admitted, as `refused` asks;
// an admitted probe is closed at once by rawUpgrade. The 2 s are the bound.
async function untilUpgrade(node, org, refused, what) {
  return waitFor(
    async () => {
      const r = await upgrade(node, org, unique('probe'));
      if (refused && !r.upgraded) return r;
      if (!refused && r.upgraded) return r;
      return undefined;
    },
    { what, timeout: ms(2000), interval: 50 },
  );
}

describe('org quota overrides on nodes sharing Redis (--org-max-overrides 1)', () => {
  let cluster;
  let late;
  before(async () => {
    cluster = await startCluster(2, { 'presence-ttl': 300, 'org-max-overrides': 1 });
  });
  after(async () => {
    await late?.stop();
    await stopCluster(cluster ?? {});
  });

  test('PUT on A: B enforces it within 2 s and reads it back; DELETE on A: B lifts it within 2 s', async () => {
    const [a, b] = cluster.nodes;
    const org = unique('o');
    // One connection on B already: an override of maxConnections 1 makes B refuse the next.
    const held = await openStream(b, { org, user: 'held' });
    assert.equal((await upgrade(b, org, 'before')).upgraded, true);

    const put = await orgLimits(a, 'PUT', org, { maxConnections: 1 });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual((await orgLimits(b, 'GET', org)).json, { maxConnections: 1 });
    const refused = await untilUpgrade(b, org, true, 'B to enforce the override set on A');
    assert.equal(refused.status, 429, refused.body);
    assert.equal(refused.json.quota, 'maxConnections');

    const del = await orgLimits(a, 'DELETE', org);
    assert.equal(del.status, 204, del.text);
    assert.deepEqual((await orgLimits(b, 'GET', org)).json, {});
    await untilUpgrade(b, org, false, 'B to lift the override deleted on A');
    await held.client.close();
  });

  test('a node started after the PUT enforces it; the bound counts every node\'s overrides', async () => {
    const [a, b] = cluster.nodes;
    const org = unique('o');
    assert.equal((await orgLimits(a, 'PUT', org, { maxConnections: 1 })).status, 200);
    // --org-max-overrides 1 holds for the cluster: B refuses a second org, A may replace its own.
    const second = await orgLimits(b, 'PUT', unique('o'), { maxConnections: 5 });
    assert.equal(second.status, 409, second.text);
    assert.equal(second.json.error, 'too_many_overrides');
    assert.equal((await orgLimits(b, 'PUT', org, { maxConnections: 1, maxChannels: 3 })).status, 200);

    late = await startServer({
      flags: { broker: cluster.redis.url, 'presence-ttl': 300, 'org-max-overrides': 1 },
    });
    assert.deepEqual((await orgLimits(late, 'GET', org)).json, { maxConnections: 1, maxChannels: 3 });
    const held = await openStream(late, { org, user: 'held' });
    const refused = await untilUpgrade(late, org, true, 'the new node to enforce the stored override');
    assert.equal(refused.status, 429, refused.body);
    await held.client.close();
    assert.equal((await orgLimits(late, 'DELETE', org)).status, 204);
    assert.equal((await orgLimits(a, 'PUT', unique('o'), { maxConnections: 5 })).status, 200);
  });
});
