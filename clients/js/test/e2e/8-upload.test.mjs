// Scenario 8: a page uploads a 2 MB file with client.upload(); a proxy cuts the upload socket once
// after 1 MiB. The client resumes from the server's offset, reports progress, and the server stores
// exactly the file: the SHA-256 it reports and the bytes on disk match. The same over tus, whose
// PATCH a second proxy cuts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Streamgate, WebServer, launchBrowser, waitFor } from './support/harness.mjs';
import { startCuttingProxy } from './support/proxy.mjs';

const SIZE = 2 * 1000 * 1000;

let server;
let web;
let browser;
let proxy;
let tusProxy;
let dir;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'sg-e2e-upload-'));
  [server, web, browser] = await Promise.all([
    Streamgate.start({ flags: { 'upload-dir': dir } }),
    WebServer.start(),
    launchBrowser(),
  ]);
  const afterOneMiB = (direction, chunk, state) => direction === 'up' && state.up > 1 << 20;
  [proxy, tusProxy] = await Promise.all([
    startCuttingProxy(server.port, afterOneMiB),
    startCuttingProxy(server.port, afterOneMiB),
  ]);
});

after(async () => {
  await browser?.close();
  await web?.close();
  await proxy?.close();
  await tusProxy?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const expected = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) expected[i] = (i * 31 + (i >> 11)) & 0xff;
const digest = createHash('sha256').update(expected).digest('hex');

async function uploadThrough(cutter, options) {
  const page = await browser.newTab(web.tabUrl({ ws: server.wsUrl, org: 108, services: 'finance', name: 's8' }));
  await waitFor(() => page.evaluate(() => window.sg.client.state === 'open'), { what: 'state open' });
  const result = await page.evaluate(
    async ({ size, options }) => {
      // Deterministic content, so the test can hash the same bytes.
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 11)) & 0xff;
      const file = new File([bytes], 'report.bin', { type: 'application/octet-stream' });
      const progress = [];
      const done = await window.sg.client.upload(file, { ...options, onProgress: (p) => progress.push(p) });
      return { done, progress };
    },
    { size: SIZE, options },
  );
  await page.close();

  assert.equal(cutter.cuts, 1, 'the proxy cut the upload once');
  assert.ok(cutter.connections >= 2, `${cutter.connections} connections: the client came back`);
  assert.equal(result.done.size, SIZE);
  assert.equal(result.done.sha256, digest, 'the server reports the file’s SHA-256');
  assert.match(result.done.uploadId, /^[0-9a-f]{32}$/);
  assert.ok(readFileSync(path.join(dir, result.done.uploadId)).equals(expected), 'the stored file is the file');

  const received = result.progress.map((p) => p.received);
  assert.ok(result.progress.length >= 3, `progress reported ${result.progress.length} times`);
  assert.ok(
    result.progress.every((p) => p.uploadId === result.done.uploadId && p.total === SIZE),
    'every report names the upload and its size',
  );
  assert.equal(received.at(-1), SIZE);
  assert.equal(result.progress.at(-1).percent, 100);
  for (let i = 1; i < received.length; i++) assert.ok(received[i] >= received[i - 1], 'progress never goes back');
}

test('a 2 MB upload survives a dropped connection, reports progress, and the server stores it intact', async () => {
  await uploadThrough(proxy, { url: `ws://127.0.0.1:${proxy.port}/v2/realtime/upload` });
});

test('the same over tus: a cut PATCH is resumed from HEAD’s offset', async () => {
  await uploadThrough(tusProxy, { protocol: 'tus', url: `http://127.0.0.1:${tusProxy.port}/v2/uploads/` });
});
