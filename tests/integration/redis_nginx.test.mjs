// The nginx configuration of docs/scaling.md, tested: Debian's nginx balances WebSockets and
// publishes over two streamgate nodes on one private redis-server; when a node is killed its
// clients reconnect through nginx, land on the other node and resume with nothing lost; the
// access log never holds a token. Skipped when nginx is not installed (it is not among the
// packages scripts/install-deps.sh installs).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { inBatches, ms, unique, waitFor } from './support/env.mjs';
import { metricsJson, publishOk } from './support/http.mjs';
import { NGINX, nginxMain, startNginx } from './support/nginx.mjs';
import { openStream } from './support/ws.mjs';


// docs/scaling.md's configuration, with the test's ports, no TLS, and every path in `dir`.
function nginxConfig(dir, port, upstreams) {
  return nginxMain(dir, `
    upstream streamgate {
        least_conn;
${upstreams.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}
    }

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    log_format streamgate '$remote_addr [$time_local] "$request_method $uri" $status $body_bytes_sent $request_time';

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/access.log streamgate;

        location = /v2/realtime/stream {
            proxy_pass http://streamgate;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_buffering off;
        }

        location / {
            proxy_pass http://streamgate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
`, { connections: 4096 });
}


const startNginxFor = (upstreams) => startNginx((dir, port) => nginxConfig(dir, port, upstreams));

describe('nginx in front of two nodes on one redis', { skip: NGINX ? false : 'nginx is not installed' }, () => {
  let redis;
  let nodes = [];
  let nginx;
  // Looks like a Server to the helpers: WebSockets and HTTP go to nginx.
  let front;
  before(async () => {
    ({ redis, nodes } = await startCluster(2, { history: 5000 }));
    nginx = await startNginxFor(nodes.map((n) => n.port));
    front = {
      port: nginx.port,
      wsUrl: `ws://127.0.0.1:${nginx.port}/v2/realtime/stream`,
      httpUrl: `http://127.0.0.1:${nginx.port}`,
      secret: nodes[0].secret,
      apiKey: nodes[0].apiKey,
    };
  });
  after(async () => {
    try {
      await nginx?.stop();
    } finally {
      await stopCluster({ redis, nodes });
    }
  });

  test('clients spread over both nodes, a publish through nginx reaches all; a killed node\'s clients resume on the other', { timeout: ms(50000) }, async () => {
    const org = unique('o');
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const streams = await inBatches(users, 10, (user) => openStream(front, { org, user }));
    const clients = streams.map((s) => s.client);
    const per = await Promise.all(nodes.map(async (n) => (await metricsJson(n)).connectionPoolStats.totalConnections));
    assert.equal(per[0] + per[1], users.length);
    assert.ok(per[0] > 0 && per[1] > 0, `least_conn spreads the connections: ${per}`);

    const ids = [];
    ids.push(await publishOk(front, { orgId: org, service: 'finance', event: 'first', data: {} }));
    for (const c of clients) assert.equal((await c.nextEvent()).id, ids[0]);

    // Which clients sit on node 0: the ones whose connection dies with it.
    nodes[0].signal('SIGKILL');
    await nodes[0].waitExit();
    const dropped = [];
    await waitFor(() => {
      dropped.length = 0;
      for (const [i, c] of clients.entries()) if (c.closeInfo) dropped.push(i);
      return dropped.length === per[0];
    }, { what: `the ${per[0]} connections of the killed node to close` });

    // Published while they are away; nginx sends the publish to the surviving node.
    ids.push(await publishOk(front, { orgId: org, service: 'finance', event: 'missed', data: {} }));
    const back = await Promise.all(
      dropped.map((i) => openStream(front, { org, user: users[i], resume: { finance: ids[0] } })),
    );
    for (const s of back) assert.deepEqual(s.ack.resume, { finance: { recovered: true } });
    ids.push(await publishOk(front, { orgId: org, service: 'finance', event: 'after', data: {} }));
    for (const s of back) {
      const events = await s.client.eventsUntil((m) => m.id === ids[2]);
      assert.deepEqual(
        events.map((e) => e.id),
        ids.slice(1),
      );
    }
    for (const [i, c] of clients.entries()) {
      if (dropped.includes(i)) continue;
      const events = await c.eventsUntil((m) => m.id === ids[2]);
      assert.deepEqual(
        events.map((e) => e.id),
        ids.slice(1),
      );
    }
    for (const c of clients.concat(back.map((s) => s.client))) c.terminate();

    const access = readFileSync(path.join(nginx.dir, 'access.log'), 'utf8');
    assert.match(access, /GET \/v2\/realtime\/stream" 101/);
    assert.doesNotMatch(access, /access_token|eyJ/, 'no token in the access log');
  });
});
