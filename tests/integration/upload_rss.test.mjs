// Memory bound of the upload path: a 1 GiB upload, streamed by the test from a generator (never
// held in memory here either), raises the server's resident set (VmRSS from /proc) by less than
// 32 MiB, and arrives with the right SHA-256. Under the sanitizers the upload is 256 MiB and
// ASan's quarantine of freed blocks is kept small, or it alone would hold 256 MiB of freed chunks.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SANITIZED, ms } from './support/env.mjs';
import {
  fileSha256,
  openUpload,
  pseudoRandom,
  pseudoRandomSha256,
  rssBytesSync,
  sendAll,
  start,
  startUploadServer,
  storedPath,
} from './support/upload.mjs';

const MiB = 1 << 20;
const SIZE = (SANITIZED ? 256 : 1024) * MiB;
const BOUND = 32 * MiB;

describe('upload memory bound', () => {
  let server;
  before(async () => {
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1', 'thread_local_quarantine_size_kb=64']
      .filter(Boolean)
      .join(':');
    server = await startUploadServer({ env: { ASAN_OPTIONS: asan } });
  });
  after(async () => {
    await server.cleanup();
  });

  test(`a ${SIZE / MiB} MiB upload raises VmRSS by less than 32 MiB`, { timeout: ms(180000) }, async (t) => {
    // Warm up: one small upload, so the manager's thread, buffers and the first allocations
    // exist before the baseline.
    const warm = await openUpload(server, { user: 'rss' });
    await start(warm, { size: 4 * MiB });
    await sendAll(warm, pseudoRandom(4 * MiB, { seed: 'warm' }));
    await warm.next((m) => m.type === 'complete', { timeout: ms(30000) });
    await warm.close();

    const baseline = rssBytesSync(server);
    const seed = 'rss';
    const client = await openUpload(server, { user: 'rss' });
    const ready = await start(client, { size: SIZE, filename: 'big.bin' });
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    // Sampled from the sending loop every 8 MiB, so the count doesn't depend on timing.
    let peak = baseline;
    let samples = 0;
    let nextSample = 0;
    const sample = () => {
      peak = Math.max(peak, rssBytesSync(server));
      samples += 1;
    };
    await sendAll(client, pseudoRandom(SIZE, { seed }), {
      window: 2 * MiB,
      onChunk: (sent) => {
        if (sent >= nextSample) {
          sample();
          nextSample += 8 * MiB;
        }
        return false;
      },
    });
    await client.next((m) => m.type === 'complete' || m.type === 'error', {
      timeout: ms(120000),
      what: 'complete',
    });
    sample();
    const complete = client.received.find((m) => m.type === 'complete');
    assert.ok(complete, `no complete: ${JSON.stringify(client.received.at(-1))}`);
    assert.ok(samples >= SIZE / (8 * MiB), `only ${samples} RSS samples`);
    const growth = peak - baseline;
    t.diagnostic(`VmRSS baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, ${samples} samples`);
    assert.ok(growth < BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
    const sha = pseudoRandomSha256(SIZE, seed);
    assert.equal(complete.sha256, sha);
    assert.equal(await fileSha256(storedPath(server, ready.uploadId)), sha);
    await client.close();
  });
});
