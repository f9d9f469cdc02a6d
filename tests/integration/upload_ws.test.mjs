// The upload WebSocket (/v2/realtime/upload) against the real binary: a 50 MiB upload in random
// chunk sizes, progress, resume after a dropped connection, the progress API, and progress events
// on the uploader's other connections (service "uploads").

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { publishOk } from './support/http.mjs';
import {
  fileSha256,
  openUpload,
  partialPath,
  pseudoRandom,
  pseudoRandomSha256,
  resume,
  sendAll,
  start,
  startUploadServer,
  storedPath,
  uploadStatus,
} from './support/upload.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const MiB = 1 << 20;
const randomChunk = () => 1 + crypto.randomInt(64 * 1024);

describe('upload over WebSocket', () => {
  let server;
  before(async () => {
    server = await startUploadServer();
  });
  after(async () => {
    await server.cleanup();
  });

  test('50 MiB in random chunk sizes arrives byte-identical with the right SHA-256; progress is monotonic and ends at 100%', async () => {
    const data = crypto.randomBytes(50 * MiB);
    const sha = crypto.createHash('sha256').update(data).digest('hex');
    const client = await openUpload(server);
    const ready = await start(client, { filename: 'scan.pdf', size: data.length, contentType: 'application/pdf' });
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    assert.match(ready.uploadId, /^[0-9a-f]{32}$/);
    assert.equal(ready.offset, 0);
    assert.equal(ready.size, data.length);
    async function* chunks() {
      let pos = 0;
      while (pos < data.length) {
        const n = Math.min(randomChunk(), data.length - pos);
        yield data.subarray(pos, pos + n);
        pos += n;
      }
    }
    await sendAll(client, chunks());
    const complete = await client.next((m) => m.type === 'complete' || m.type === 'error', {
      timeout: ms(60000),
      what: 'complete',
    });
    assert.deepEqual(complete, { type: 'complete', uploadId: ready.uploadId, size: data.length, sha256: sha });
    const progress = client.received.filter((m) => m.type === 'progress');
    assert.ok(progress.length >= 2, `progress messages: ${progress.length}`);
    for (let i = 0; i < progress.length; i++) {
      const p = progress[i];
      assert.equal(p.uploadId, ready.uploadId);
      assert.equal(p.total, data.length);
      if (i > 0) {
        assert.ok(p.received > progress[i - 1].received, `received not increasing at ${i}`);
        assert.ok(p.percent >= progress[i - 1].percent, `percent not monotonic at ${i}`);
      }
      assert.ok(p.received < data.length ? p.percent < 100 : p.percent === 100, JSON.stringify(p));
    }
    assert.equal(progress.at(-1).received, data.length);
    assert.equal(progress.at(-1).percent, 100);
    // At least one message per MiB (or per 250 ms): never a gap of more than 1 MiB without one
    // unless the bytes took longer than that, which the 1 MiB rule would then have caught.
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].received - progress[i - 1].received <= MiB + 64 * 1024, `gap at ${i}`);
    }
    const stored = readFileSync(storedPath(server, ready.uploadId));
    assert.ok(stored.equals(data), 'stored file differs from the bytes sent');
    assert.equal(existsSync(partialPath(server, ready.uploadId)), false);
    const status = await uploadStatus(server, ready.uploadId, { token: tokenFor(server) });
    assert.equal(status.status, 200, status.text);
    assert.equal(status.json.status, 'complete');
    assert.equal(status.json.received, data.length);
    assert.equal(status.json.total, data.length);
    assert.equal(status.json.percent, 100);
    assert.equal(status.json.sha256, sha);
    assert.equal(status.json.filename, 'scan.pdf');
    assert.equal(status.json.contentType, 'application/pdf');
    await client.close();
  });

  test('a connection dropped at 40% resumes from the server offset to a byte-identical file', async () => {
    const size = 20 * MiB;
    const seed = 'resume-40';
    const sha = pseudoRandomSha256(size, seed);
    const token = tokenFor(server, { user: 'resumer' });
    const first = await openUpload(server, { token });
    const ready = await start(first, { size, sha256: sha });
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    await sendAll(first, pseudoRandom(size, { seed, chunkSizes: randomChunk }), {
      onChunk: (sent) => sent >= 0.4 * size,
    });
    first.terminate();
    await first.waitClose();

    // The progress API sees the interrupted upload as unfinished, somewhere short of the end.
    const mid = await waitFor(
      async () => {
        const s = await uploadStatus(server, ready.uploadId, { token, via: 'query' });
        return s.status === 200 && s.json.received > 0 ? s : null;
      },
      { what: 'bytes received before the drop' },
    );
    assert.equal(mid.json.status, 'uploading');
    assert.ok(mid.json.received < size);
    assert.ok(mid.json.percent > 0 && mid.json.percent < 100, JSON.stringify(mid.json));

    const second = await openUpload(server, { token, via: 'header' });
    const again = await resume(second, ready.uploadId);
    assert.equal(again.type, 'ready', JSON.stringify(again));
    assert.equal(again.uploadId, ready.uploadId);
    assert.ok(again.offset > 0 && again.offset < size, `offset ${again.offset}`);
    await sendAll(second, pseudoRandom(size, { seed, from: again.offset, chunkSizes: randomChunk }));
    const complete = await second.next((m) => m.type === 'complete' || m.type === 'error', {
      timeout: ms(60000),
      what: 'complete',
    });
    assert.equal(complete.type, 'complete', JSON.stringify(complete));
    assert.equal(complete.sha256, sha);
    assert.equal(await fileSha256(storedPath(server, ready.uploadId)), sha);
    const progress = second.received.filter((m) => m.type === 'progress');
    assert.equal(progress.at(-1).percent, 100);
    assert.ok(progress[0].received > again.offset);
    await second.close();
  });

  test("another user's upload is 404 on the progress API and not_found on resume, same org or not", async () => {
    const owner = tokenFor(server, { org: 456, user: 'alice' });
    const client = await openUpload(server, { token: owner });
    const ready = await start(client, { size: 1000 });
    assert.equal(ready.type, 'ready');
    const mine = await uploadStatus(server, ready.uploadId, { token: owner });
    assert.equal(mine.status, 200);
    assert.equal(mine.json.status, 'uploading');
    assert.equal(mine.json.received, 0);
    assert.equal(mine.json.total, 1000);
    assert.equal(mine.json.percent, 0);
    assert.equal(mine.json.etaSeconds, null);

    const unknown = await uploadStatus(server, crypto.randomBytes(16).toString('hex'), { token: owner });
    for (const [org, user] of [
      [456, 'bob'],
      [789, 'alice'],
    ]) {
      const other = tokenFor(server, { org, user });
      const r = await uploadStatus(server, ready.uploadId, { token: other });
      assert.equal(r.status, 404, `${org}/${user}: ${r.text}`);
      // Indistinguishable from an id that doesn't exist.
      assert.deepEqual(r.json, unknown.json);
      const ws = await openUpload(server, { token: other });
      const answer = await resume(ws, ready.uploadId);
      assert.equal(answer.type, 'error');
      assert.equal(answer.code, 'not_found');
      const closed = await ws.waitClose();
      assert.equal(closed.code, 1008);
    }
    // The owner's upload is untouched by all that.
    assert.equal((await uploadStatus(server, ready.uploadId, { token: owner })).json.received, 0);
    await client.close();
  });

  test('the progress API checks who is asking', async () => {
    const none = await uploadStatus(server, 'abc');
    assert.equal(none.status, 401);
    assert.equal(none.json.error, 'missing_token');
    const forged = await uploadStatus(server, 'abc', { token: tokenFor({ secret: 'x'.repeat(40) }) });
    assert.equal(forged.status, 401);
    assert.equal(typeof forged.json.error, 'string');
    assert.equal(typeof forged.json.message, 'string');
  });

  test('the upload WebSocket refuses a missing token with a 401 JSON body', async () => {
    await assert.rejects(openUpload(server, { token: '' }), (e) => e.status === 401 && e.json?.error === 'missing_token');
  });

  test("progress events reach the uploader's other connection on the uploads service, and nobody else's", async () => {
    const user = 'tabs';
    const tab = await openStream(server, { user, services: ['uploads'] });
    const colleague = await openStream(server, { user: 'colleague', services: ['uploads', 'finance'] });
    const size = 3 * MiB;
    const seed = 'tabs';
    const sha = pseudoRandomSha256(size, seed);
    const client = await openUpload(server, { user });
    const ready = await start(client, { size, filename: 'contract.pdf' });
    assert.equal(ready.type, 'ready');
    await sendAll(client, pseudoRandom(size, { seed }));
    await client.next((m) => m.type === 'complete', { timeout: ms(30000), what: 'complete' });
    const events = await tab.client.eventsUntil((m) => m.event === 'upload.completed', { timeout: ms(10000) });
    const progress = events.filter((m) => m.event === 'upload.progress');
    assert.ok(progress.length >= 1, 'at least one upload.progress event');
    for (const e of events) {
      assert.equal(e.service, 'uploads');
      assert.equal(e.data.uploadId, ready.uploadId);
      assert.equal(e.data.filename, 'contract.pdf');
      assert.equal(e.data.total, size);
    }
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].data.received > progress[i - 1].data.received);
    const done = events.at(-1);
    assert.equal(done.data.status, 'complete');
    assert.equal(done.data.received, size);
    assert.equal(done.data.percent, 100);
    assert.equal(done.data.sha256, sha);
    // A sentinel for the whole org shows the colleague's stream is caught up: no upload events.
    // (On another service: producers can't publish to `uploads`.)
    await publishOk(server, { orgId: 456, service: 'finance', event: 'sentinel', data: {} });
    const seen = await colleague.client.eventsUntil((m) => m.event === 'sentinel');
    assert.deepEqual(
      seen.map((m) => m.event),
      ['sentinel'],
    );
    await Promise.all([tab.client.close(), colleague.client.close(), client.close()]);
  });
});

describe('uploads service with a restricted --services list', () => {
  let server;
  before(async () => {
    server = await startUploadServer({ flags: { services: 'finance' } });
  });
  after(async () => {
    await server.cleanup();
  });

  test('uploads is still an allowed service', async () => {
    const { ack, client } = await openStream(server, { services: ['finance', 'uploads'] });
    assert.deepEqual(ack.services, ['finance', 'uploads']);
    await client.close();
  });

  test('a token whose services claim leaves out uploads still gets its own upload progress', async () => {
    const { ack, client } = await openStream(server, {
      services: ['finance', 'uploads'],
      claimOpts: { services: ['finance'] },
    });
    assert.deepEqual(ack.services, ['finance', 'uploads']);
    await client.close();
  });
});
