// Publish throughput over many channels: one redis-server against a private Redis Cluster of 3
// primaries (+ 3 replicas), the same streamgate node(s) and the same load on each. Channels are
// (org, "finance") for --channels orgs, so their slots spread over the primaries. Each run
// publishes every channel once (warm-up: scripts loaded, epochs made, connections open), then
// --publishes events round robin over the channels from --concurrency keep-alive HTTP
// connections, spread over --clients worker threads, and reports publishes/s, request latency, how the publish scripts
// spread over the primaries (cmdstat_evalsha per primary) and what each process burnt (CPU
// cores from /proc/<pid>/stat over the measured window). Starts everything privately on
// 127.0.0.1 and removes it after.
//
//   STREAMGATE_BIN=build/streamgate node bench/cluster-publish.mjs \
//     [--channels 1000] [--publishes 20000] [--concurrency 256] [--nodes 1] [--workers 2] \
//     [--clients 2] [--redis-cpu 0.1] [--nice 15]
//
// --redis-cpu CORES caps every redis-server (each primary and replica) at that CPU share through
// a cgroup of its own, so each models a machine of its own: on a shared 2-core machine all the
// Redis processes, the nodes and this generator otherwise compete for the same cores and a
// cluster cannot outrun one Redis. cgroup v2 (cpu.max) when /sys/fs/cgroup/cgroup.controllers
// exists and is writable, else v1 (cpu/<name>/cpu.cfs_quota_us); neither: said, and uncapped.
// 0: uncapped. The cgroups are removed on exit, SIGINT and SIGTERM included. --nice N runs every
// process of the bench at nice -N (0: not changed), so other work on the machine takes CPU
// neither from the capped Redis processes nor from the node and the generator.
//
// --concurrency is high enough that each of three capped primaries always has requests queued:
// with a few dozen, the requests in flight pile up on whichever primary is held back by its cap
// at the moment while the other two idle.
//
// Prints one JSON line per broker, then a markdown table.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// ---- a load-generating worker thread: its share of the publishes, as fast as answered ----

// One keep-alive HTTP/1.1 connection, one request at a time: the request written in one piece,
// the answer read only as far as its status line and Content-Length (streamgate always sends
// one, never chunked). node:http's client costs several times the CPU per request, and on a
// 2-core machine the generator must not take the CPU the node and Redis need. A connection
// lost is counted as a failed request (status 0) and dialled again for the next one.
class Connection {
  constructor(target) {
    this.target = target;
    this.socket = null;
    this.buffer = null;
    this.answer = null; // resolves the request in flight with its status
  }

  open() {
    return new Promise((resolve) => {
      const socket = net.connect(this.target.port, '127.0.0.1');
      socket.setNoDelay(true);
      socket.once('connect', () => resolve(true));
      socket.on('data', (d) => this.onData(d));
      socket.on('error', () => {});
      socket.on('close', () => {
        if (this.socket === socket) this.socket = null;
        resolve(false);
        this.settle(0);
      });
      this.socket = socket;
      this.buffer = null;
    });
  }

  async post(body) {
    if (!this.socket && !(await this.open())) return 0;
    const data = Buffer.from(JSON.stringify(body));
    return new Promise((resolve) => {
      this.answer = resolve;
      this.socket.write(Buffer.concat([
        Buffer.from(`POST /v2/realtime/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${this.target.apiKey}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${data.length}\r\n\r\n`),
        data,
      ]));
    });
  }

  onData(chunk) {
    this.buffer = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buffer.toString('latin1', 0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buffer.length < end + 4 + length) return;
    this.buffer = this.buffer.length > end + 4 + length ? this.buffer.subarray(end + 4 + length) : null;
    this.settle(Number(head.slice(9, 12)) || 0);
  }

  settle(status) {
    const answer = this.answer;
    this.answer = null;
    answer?.(status);
  }

  close() {
    this.socket?.destroy();
  }
}

function event(i, channels) {
  return { orgId: `bench${i % channels}`, service: 'finance', event: 'tick', data: { i } };
}

async function generate() {
  // Warm-up: channels first, first + stride, … once each (scripts loaded, epochs made, every
  // keep-alive connection open and the HTTP code compiled), then 'ready'; on 'go', publishes
  // i = first, first + stride, … below total with `concurrency` requests in flight.
  const { targets, first, stride, total, concurrency, channels } = workerData;
  // One connection per request in flight, to each node in turn.
  const connections = Array.from({ length: concurrency }, (_, k) => new Connection(targets[k % targets.length]));
  const run = async (from, below, record) => {
    let next = from;
    await Promise.all(
      connections.map(async (connection) => {
        for (;;) {
          const i = next;
          if (i >= below) return;
          next += stride;
          const t = process.hrtime.bigint();
          const status = await connection.post(event(i, channels));
          record(Number(process.hrtime.bigint() - t) / 1e6, status);
        }
      }),
    );
  };
  let refused = 0;
  await run(first, Math.max(channels, concurrency * stride), (_, status) => {
    if (status !== 200) refused += 1;
  });
  const go = new Promise((resolve) => parentPort.once('message', resolve));
  parentPort.postMessage({ ready: true, refused });
  await go;
  const latencies = [];
  let failed = 0;
  await run(first, total, (ms, status) => {
    latencies.push(ms);
    if (status !== 200) failed += 1;
  });
  for (const connection of connections) connection.close();
  parentPort.postMessage({ latencies, failed });
}

// ---- CPU caps: one cgroup per redis-server ----

// Each cap(pid) makes a cgroup limited to `cores` and moves the process into it; release()
// moves what is still alive back out and removes the cgroups (synchronous, so it can run in an
// 'exit' handler).
class CpuCaps {
  constructor(cores) {
    this.cores = cores;
    this.groups = []; // { dir, pid }
    this.kind = 'none';
    this.why = '';
    if (!(cores > 0)) {
      this.why = '--redis-cpu 0';
      return;
    }
    const v2 = '/sys/fs/cgroup';
    const v1 = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find((d) =>
      existsSync(path.join(d, 'cpu.cfs_quota_us')));
    if (existsSync(path.join(v2, 'cgroup.controllers')) && writable(v2)) {
      try {
        // Children of the root get the cpu controller only if the root hands it down.
        if (!readFileSync(path.join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) {
          writeFileSync(path.join(v2, 'cgroup.subtree_control'), '+cpu');
        }
        this.kind = 'v2';
        this.root = v2;
      } catch (e) {
        this.why = `cgroup v2 without the cpu controller (${e.code ?? e.message})`;
      }
    } else if (v1 && writable(v1)) {
      this.kind = 'v1';
      this.root = v1;
    } else {
      this.why = 'no writable cgroup (v2 /sys/fs/cgroup or v1 /sys/fs/cgroup/cpu)';
    }
    // main() turns SIGINT and SIGTERM into exit().
    if (this.kind !== 'none') process.on('exit', () => this.release());
  }

  get active() {
    return this.kind !== 'none';
  }

  describe() {
    if (!this.active) return `uncapped: ${this.why}`;
    return `each redis-server capped at ${this.cores} core (cgroup ${this.kind})`;
  }

  cap(pid) {
    if (!this.active) return;
    const dir = path.join(this.root, `sg-bench-redis-${process.pid}-${this.groups.length}`);
    mkdirSync(dir);
    this.groups.push({ dir, pid });
    // A 10 ms period, not the default 100 ms: a Redis that spends its quota early in a long
    // period stalls for the rest of it, and every request in flight to it waits that out;
    // the quota itself may not go below 1 ms.
    const period = Math.max(10000, Math.ceil(1000 / this.cores));
    const quota = Math.round(this.cores * period);
    // A high weight too: the cap, not other work on the machine, is to bound each Redis (a
    // cgroup competes with the root's tasks as one task of its weight).
    if (this.kind === 'v2') {
      writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${period}`);
      writeFileSync(path.join(dir, 'cpu.weight'), '1000');
    } else {
      writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(period));
      writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quota));
      writeFileSync(path.join(dir, 'cpu.shares'), '10240');
    }
    // cgroup.procs moves every thread of the process (Redis has background threads).
    writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  }

  // Periods the cap held a process back, by pid (v1 nr_throttled / nr_periods; v2 the same
  // from cpu.stat), as a fraction: near 1 means that Redis was bounded by its cap.
  throttled() {
    const out = new Map();
    for (const g of this.groups) {
      try {
        const stat = readFileSync(path.join(g.dir, 'cpu.stat'), 'utf8');
        const periods = Number(/nr_periods (\d+)/.exec(stat)?.[1] ?? 0);
        const throttled = Number(/nr_throttled (\d+)/.exec(stat)?.[1] ?? 0);
        out.set(g.pid, { periods, throttled });
      } catch {
        // removed already
      }
    }
    return out;
  }

  release() {
    for (const g of this.groups.splice(0)) {
      try {
        writeFileSync(path.join(this.root, 'cgroup.procs'), String(g.pid));
      } catch {
        // exited already
      }
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(g.dir);
          break;
        } catch (e) {
          if (e.code === 'ENOENT') break;
          // A process just killed may take a moment to leave; bounded busy wait (exit handler).
          const until = Date.now() + 20;
          while (Date.now() < until);
        }
      }
    }
  }
}

function writable(dir) {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// ---- CPU accounting from /proc ----

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// utime + stime of a process (all its threads), in seconds; NaN once it is gone.
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS; // fields 14 and 15
  } catch {
    return NaN;
  }
}

// The busiest thread of a process, by CPU seconds, with its name: a streamgate node whose
// broker thread (one per node, it talks to Redis) is near a full core is the bound, not Redis.
function threadSeconds(pid) {
  const out = new Map();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, s: (Number(f[11]) + Number(f[12])) / TICKS });
    }
  } catch {
    // gone
  }
  return out;
}

// Every thread of `pid` at nice `value` (Linux's nice value is per thread; threads made later
// inherit their creator's). Refused (not root): false, and the run goes on at the default.
function renice(pid, value) {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) os.setPriority(Number(tid), value);
    return true;
  } catch {
    return false;
  }
}

const cores = (seconds, window) => Number((seconds / window).toFixed(2));

// ---- the measurement ----

async function main() {
  const { startRedisCluster } = await import('../tests/integration/support/redis_cluster_setup.mjs');
  const { redisCommand, startRedis } = await import('../tests/integration/support/redis.mjs');
  const { startServer } = await import('../tests/integration/support/server.mjs');

  const opts = {
    channels: 1000, publishes: 20000, concurrency: 256, nodes: 1, workers: 2, clients: 2, 'redis-cpu': 0.1, nice: 15,
  };
  for (let i = 2; i < process.argv.length; i += 2) {
    const key = process.argv[i].replace(/^--/, '');
    const value = Number(process.argv[i + 1]);
    if (!(key in opts) || process.argv[i + 1] === undefined || !Number.isFinite(value) || value < 0) {
      console.error(`cluster-publish.mjs: unknown or incomplete option ${process.argv[i]}`);
      process.exit(2);
    }
    opts[key] = value;
  }
  opts.clients = Math.max(1, Math.min(opts.clients, opts.concurrency));

  // So that the 'exit' handlers (cgroups removed, the autogroup's nice put back, the children
  // killed) run on ^C too.
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
  const caps = new CpuCaps(opts['redis-cpu']);
  console.error(`cluster-publish.mjs: ${caps.describe()}`);
  // Other work on the machine (builds) must take CPU neither from the capped Redis processes
  // nor from the node and this generator, which must outrun them: every process of the bench
  // runs at --nice (as bench/run.sh runs its processes under chrt or nice -15).
  const nice = -Math.abs(opts.nice);
  // With the kernel's autogroups (sched_autogroup_enabled), nice only ranks threads within
  // one session; against another session's builds it is the autogroup's own nice that counts.
  // The children (redis-server, streamgate) stay in this session's autogroup, which is also the
  // shell's that started this: its nice is put back on exit.
  if (nice !== 0 && existsSync('/proc/self/autogroup')) {
    try {
      const was = /nice (-?\d+)/.exec(readFileSync('/proc/self/autogroup', 'utf8'))?.[1] ?? '0';
      writeFileSync('/proc/self/autogroup', String(nice));
      process.on('exit', () => {
        try {
          writeFileSync('/proc/self/autogroup', was);
        } catch {
          // nothing to restore
        }
      });
    } catch {
      // not allowed: the per-thread nice below still ranks the bench within its session
    }
  }
  const reniced = nice === 0 || renice(process.pid, nice);
  if (!reniced) console.error(`cluster-publish.mjs: nice ${nice} refused; at the default priority`);
  const prioritise = (pid) => {
    if (nice !== 0 && reniced) renice(pid, nice);
  };

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

  // `redis`: [{ port, pid, role }] of every redis-server of the broker.
  async function measure(label, url, redis) {
    const primaryPorts = redis.filter((r) => r.role === 'primary').map((r) => r.port);
    const nodes = [];
    for (let k = 0; k < opts.nodes; k++) {
      nodes.push(await startServer({ flags: { broker: url, workers: opts.workers } }));
    }
    for (const n of nodes) prioritise(n.child.pid);
    for (const r of redis) prioritise(r.pid);
    const targets = nodes.map((n) => ({ port: n.port, apiKey: n.apiKey }));
    const workers = [];
    try {
      // Each worker warms up, says ready, and waits for 'go'.
      const ready = [];
      const results = [];
      for (let w = 0; w < opts.clients; w++) {
        const worker = new Worker(fileURLToPath(import.meta.url), {
          workerData: {
            targets,
            first: w,
            stride: opts.clients,
            total: opts.publishes,
            concurrency: Math.floor(opts.concurrency / opts.clients) + (w < opts.concurrency % opts.clients ? 1 : 0),
            channels: opts.channels,
          },
        });
        workers.push(worker);
        const messages = [];
        const waiters = [];
        const exited = new Promise((_, reject) => {
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`worker exited ${code} early`)));
        });
        worker.on('message', (m) => (waiters.length ? waiters.shift()(m) : messages.push(m)));
        const nextMessage = () => Promise.race([
          new Promise((resolve) => (messages.length ? resolve(messages.shift()) : waiters.push(resolve))),
          exited,
        ]);
        ready.push(nextMessage());
        results.push(nextMessage);
      }
      for (const r of await Promise.all(ready)) {
        if (r.refused > 0) throw new Error(`${r.refused} warm-up publishes refused`);
      }
      const before = await scriptCalls(primaryPorts);
      const pids = [...redis.map((r) => r.pid), ...nodes.map((n) => n.child.pid), process.pid];
      const cpu0 = new Map(pids.map((p) => [p, cpuSeconds(p)]));
      const threads0 = nodes.map((n) => threadSeconds(n.child.pid));
      const throttled0 = caps.throttled();
      const start = process.hrtime.bigint();
      const done = results.map((next) => next());
      for (const worker of workers) worker.postMessage('go');
      const parts = await Promise.all(done);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const used = (pid) => cores(cpuSeconds(pid) - cpu0.get(pid), seconds);
      const throttled1 = caps.throttled();
      const after = await scriptCalls(primaryPorts);
      const latencies = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
      const failed = parts.reduce((n, p) => n + p.failed, 0);
      const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
      const share = (pid) => {
        const a = throttled0.get(pid);
        const b = throttled1.get(pid);
        if (!a || !b || b.periods === a.periods) return null;
        return Number(((b.throttled - a.throttled) / (b.periods - a.periods)).toFixed(2));
      };
      const busiest = nodes.map((n, k) => {
        let best = { name: '?', s: 0 };
        for (const [tid, t] of threadSeconds(n.child.pid)) {
          const s = t.s - (threads0[k].get(tid)?.s ?? 0);
          if (s > best.s) best = { name: t.name, s };
        }
        return `${best.name} ${cores(best.s, seconds)}`;
      });
      return {
        bench: 'cluster-publish',
        broker: label,
        primaries: primaryPorts.length,
        nodes: opts.nodes,
        workers: opts.workers,
        channels: opts.channels,
        concurrency: opts.concurrency,
        clients: opts.clients,
        redis_cpu_cap: caps.active ? opts['redis-cpu'] : null,
        nice: reniced ? nice : 0,
        publishes: opts.publishes,
        failed,
        seconds: Number(seconds.toFixed(2)),
        per_second: Math.round(opts.publishes / seconds),
        p50_ms: Number(at(0.5).toFixed(2)),
        p99_ms: Number(at(0.99).toFixed(2)),
        scripts_per_primary: after.map((n, k) => n - before[k]),
        // A primary's CPU time (all of it: the script, the I/O, feeding its replica) per publish
        // script it ran. Not INFO's usec_per_call: that is wall time, and a capped Redis held
        // back mid-script counts the wait.
        primary_cpu_us_per_publish: redis.filter((r) => r.role === 'primary').map((r, k) =>
          Math.round(((cpuSeconds(r.pid) - cpu0.get(r.pid)) * 1e6) / Math.max(1, after[k] - before[k]))),
        // CPU cores each process used over the window; throttled: share of the cgroup's
        // periods in which the cap held it back.
        redis_cpu: redis.map((r) => ({ role: r.role, port: r.port, cores: used(r.pid), throttled: share(r.pid) })),
        node_cpu: nodes.map((n) => used(n.child.pid)),
        node_busiest_thread: busiest,
        generator_cpu: used(process.pid),
      };
    } finally {
      for (const worker of workers) await worker.terminate();
      for (const node of nodes) await node.stop();
    }
  }

  const results = [];
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  {
    // No append-only file, as the cluster's nodes: the same work per publish on both.
    const redis = await startRedis({ extraArgs: ['--appendonly', 'no'] });
    try {
      caps.cap(redis.child.pid);
      results.push(await measure('1 redis-server', redis.url, [{ port: redis.port, pid: redis.child.pid, role: 'primary' }]));
    } finally {
      await redis.cleanup();
      caps.release();
    }
  }
  {
    const cluster = await startRedisCluster();
    try {
      const nodes = await cluster.nodes();
      const redis = cluster.servers.map((s) => ({
        port: s.port,
        pid: s.child.pid,
        role: nodes.find((n) => n.port === s.port)?.flags.includes('master') ? 'primary' : 'replica',
      }));
      for (const r of redis) caps.cap(r.pid);
      results.push(await measure('cluster, 3 primaries + 3 replicas', cluster.url, redis));
    } finally {
      await cluster.cleanup();
      caps.release();
    }
  }
  for (const r of results) console.log(JSON.stringify({ ...r, load_start: load }));
  const cpuOf = (r, role) => r.redis_cpu.filter((x) => x.role === role)
    .map((x) => `${x.cores}${x.throttled === null ? '' : ` (${Math.round(x.throttled * 100)} %)`}`).join(' / ');
  console.log(`\n${caps.describe()}; load average at the start ${load}\n`);
  console.log('| broker | publishes/s | p50 ms | p99 ms | failed | publish scripts per primary | primary CPU µs per publish | primary CPU (throttled) | replica CPU | node CPU (busiest thread) | generator CPU |');
  console.log('| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: |');
  for (const r of results) {
    console.log(`| ${r.broker} | ${r.per_second} | ${r.p50_ms} | ${r.p99_ms} | ${r.failed} | ${r.scripts_per_primary.join(' / ')} | ${r.primary_cpu_us_per_publish.join(' / ')} | ` +
      `${cpuOf(r, 'primary')} | ${cpuOf(r, 'replica') || '–'} | ${r.node_cpu.join(' / ')} (${r.node_busiest_thread.join(' / ')}) | ${r.generator_cpu} |`);
  }
}

if (isMainThread) await main();
else await generate();
