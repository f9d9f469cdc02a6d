// Publish throughput over many channels: one redis-server against a private Redis Cluster of 3
// primaries (+ 3 replicas), the same streamgate node(s) and the same load on each. Channels are
// (org, "finance") for --channels orgs, so their slots spread over the primaries. Each run
// publishes every channel once (warm-up: scripts loaded, epochs made), then --publishes events
// round robin over the channels from --concurrency keep-alive HTTP connections, and reports
// publishes/s, request latency and how the publish scripts spread over the primaries
// (cmdstat_evalsha per primary). Starts everything privately on 127.0.0.1 and removes it after.
//
//   STREAMGATE_BIN=build/streamgate node bench/cluster-publish.mjs \
//     [--channels 1000] [--publishes 20000] [--concurrency 64] [--nodes 1] [--workers 2]
//
// Prints one JSON line per broker, then a markdown table.
import http from 'node:http';
import { startRedisCluster } from '../tests/integration/support/redis_cluster_setup.mjs';
import { redisCommand, startRedis } from '../tests/integration/support/redis.mjs';
import { startServer } from '../tests/integration/support/server.mjs';

const opts = { channels: 1000, publishes: 20000, concurrency: 64, nodes: 1, workers: 2 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opts) || process.argv[i + 1] === undefined) {
    console.error(`cluster-publish.mjs: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  opts[key] = Number(process.argv[i + 1]);
}

// One per measurement, so neither run reuses the other's connections.
let agent;

function post(node, body) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: node.port,
        path: '/v2/realtime/publish',
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
          authorization: `Bearer ${node.apiKey}`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(0));
    req.end(data);
  });
}

function event(i) {
  return { orgId: `bench${i % opts.channels}`, service: 'finance', event: 'tick', data: { i } };
}

// cmdstat_evalsha calls on each port (the publish script, after its first EVAL).
async function scriptCalls(ports) {
  const out = [];
  for (const port of ports) {
    const info = await redisCommand(port, ['INFO', 'commandstats']);
    const m = /cmdstat_evalsha:calls=(\d+)/.exec(info);
    out.push(m ? Number(m[1]) : 0);
  }
  return out;
}

async function measure(label, url, primaryPorts) {
  agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const nodes = [];
  for (let k = 0; k < opts.nodes; k++) {
    nodes.push(await startServer({ flags: { broker: url, workers: opts.workers } }));
  }
  try {
    for (let i = 0; i < opts.channels; i += opts.concurrency) {
      const batch = [];
      for (let j = i; j < Math.min(i + opts.concurrency, opts.channels); j++) {
        batch.push(post(nodes[j % nodes.length], event(j)));
      }
      await Promise.all(batch);
    }
    const before = await scriptCalls(primaryPorts);
    const latencies = [];
    let next = 0;
    let failed = 0;
    const start = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        for (;;) {
          const i = next++;
          if (i >= opts.publishes) return;
          const t = process.hrtime.bigint();
          const status = await post(nodes[i % nodes.length], event(i));
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          if (status !== 200) failed += 1;
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const after = await scriptCalls(primaryPorts);
    latencies.sort((a, b) => a - b);
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    return {
      bench: 'cluster-publish',
      broker: label,
      primaries: primaryPorts.length,
      nodes: opts.nodes,
      workers: opts.workers,
      channels: opts.channels,
      concurrency: opts.concurrency,
      publishes: opts.publishes,
      failed,
      seconds: Number(seconds.toFixed(2)),
      per_second: Math.round(opts.publishes / seconds),
      p50_ms: Number(at(0.5).toFixed(2)),
      p99_ms: Number(at(0.99).toFixed(2)),
      scripts_per_primary: after.map((n, k) => n - before[k]),
    };
  } finally {
    agent.destroy();
    for (const node of nodes) await node.stop();
  }
}

const results = [];
const load = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
{
  const redis = await startRedis();
  try {
    results.push(await measure('1 redis-server', redis.url, [redis.port]));
  } finally {
    await redis.cleanup();
  }
}
{
  const cluster = await startRedisCluster();
  try {
    const primaries = (await cluster.nodes()).filter((n) => n.flags.includes('master')).map((n) => n.port);
    results.push(await measure('cluster, 3 primaries + 3 replicas', cluster.url, primaries));
  } finally {
    await cluster.cleanup();
  }
}
for (const r of results) console.log(JSON.stringify({ ...r, load_start: load }));
console.log('\n| broker | publishes/s | p50 ms | p99 ms | failed | publish scripts per primary |');
console.log('| --- | ---: | ---: | ---: | ---: | --- |');
for (const r of results) {
  console.log(`| ${r.broker} | ${r.per_second} | ${r.p50_ms} | ${r.p99_ms} | ${r.failed} | ${r.scripts_per_primary.join(' / ')} |`);
}
