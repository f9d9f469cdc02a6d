// Publish latency on a private Redis Cluster (3 primaries + 3 replicas) with --redis-wait-replicas 0
// and 1: 600 sequential publishes (p50, p99, mean in ms) and 4000 publishes 16 at a time (per
// second). Run from the repository: STREAMGATE_BIN=build/streamgate node bench/redis-wait-replicas.mjs
import { startRedisCluster } from '../tests/integration/support/redis_cluster_setup.mjs';
import { startServer } from '../tests/integration/support/server.mjs';
import { publish } from '../tests/integration/support/http.mjs';
const c = await startRedisCluster();
const res = {};
for (const w of [0, 1]) {
  const n = await startServer({ flags: { broker: c.url, 'redis-wait-replicas': w } });
  await new Promise(r=>setTimeout(r,1500));
  for (let i=0;i<60;i++) await publish(n, { orgId: 'warm'+(i%30), service: 'finance', event: 'e', data: {}, eventId: 'w'+w+'-'+i });
  const lat=[];
  for (let i=0;i<600;i++) { const t=process.hrtime.bigint(); const r = await publish(n, { orgId: 'o'+(i%30), service: 'finance', event: 'e', data: {x:i} }); lat.push(Number(process.hrtime.bigint()-t)/1e6); if (r.status!==200) console.log('status', r.status); }
  lat.sort((a,b)=>a-b);
  // concurrency 16
  const t0=Date.now(); let k=0;
  await Promise.all(Array.from({length:16},async()=>{ while(k<4000){ k++; await publish(n,{orgId:'c'+(k%64),service:'finance',event:'e',data:{}}); } }));
  const rate = 4000/((Date.now()-t0)/1000);
  res[w] = { p50: lat[300].toFixed(2), p99: lat[594].toFixed(2), mean: (lat.reduce((a,b)=>a+b,0)/lat.length).toFixed(2), rate16: rate.toFixed(0) };
  await n.stop();
}
console.log(JSON.stringify(res));
await c.cleanup();
