// Uploads survive a restart: the real binary is SIGKILLed mid-upload and started again on the
// same --upload-dir. HEAD then answers the offset of the last acknowledged PATCH (bytes of the
// PATCH cut by the kill were on disk but never acknowledged, so they are not claimed), and both
// tus and the upload WebSocket resume from there to a byte-identical file with the right
// SHA-256. Also: idle unfinished uploads hold no file descriptor, and orphaned files in
// .partial are swept while the server runs, not only at start.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ms, waitFor, withTimeout } from './support/env.mjs';
import { startServer } from './support/server.mjs';
import { claims, mintHS256 } from './support/tokens.mjs';
import { create, offsetOf, openPatch, patch, request, tusHeaders } from './support/tus.mjs';
import { openUpload, resume, sendChunk, start, uploadStatus } from './support/upload.mjs';

const KiB = 1024;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

const dirs = [];
const servers = [];
after(async () => {
  for (const s of servers) if (!s.exitInfo) s.signal('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function freshDir() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'sg-restart-'));
  dirs.push(d);
  return d;
}

async function launch(dir, flags = {}) {
  const s = await startServer({ flags: { 'upload-dir': dir, ...flags } });
  servers.push(s);
  return s;
}

async function kill(server) {
  server.signal('SIGKILL');
  await server.waitExit();
}

function tokenFor(server, user) {
  return mintHS256(claims({ org: 456, user }), server.secret);
}

const idOf = (url) => url.split('/').pop();

function fdCount(server) {
  return readdirSync(`/proc/${server.child.pid}/fd`).length;
}

describe('uploads survive a restart', () => {
  test('tus: SIGKILL mid-PATCH, HEAD gives the last acknowledged offset, resume completes byte-identical', async () => {
    const dir = freshDir();
    let server = await launch(dir);
    const token = tokenFor(server, 'tus-restart');
    const data = crypto.randomBytes(1536 * KiB);
    const url = await create(server, token, data.length);
    const id = idOf(url);
    const acked = 1024 * KiB;
    for (const [from, to] of [[0, 512 * KiB], [512 * KiB, acked]]) {
      const r = await patch(server, token, url, from, data.subarray(from, to));
      assert.equal(r.status, 204, r.text);
      assert.equal(Number(r.headers['upload-offset']), to);
    }
    // A third PATCH announces the rest but sends only part of it; the kill cuts it off after
    // the server has stored those bytes, before any answer.
    const cut = openPatch(server, token, url, acked, data.length - acked);
    cut.on('error', () => {});
    cut.on('response', () => assert.fail('no answer expected for a PATCH cut by the kill'));
    cut.write(data.subarray(acked, acked + 300 * KiB));
    const partial = path.join(dir, '.partial', id);
    await waitFor(() => statSync(partial).size > acked, { what: 'bytes of the cut PATCH on disk' });
    await kill(server);
    assert.ok(statSync(partial).size > acked, 'unacknowledged bytes were on disk');

    server = await launch(dir);
    assert.equal(await offsetOf(server, token, url), acked, 'HEAD = the last acknowledged PATCH');
    assert.equal(statSync(partial).size, acked, 'the data is cut back to it');
    // Another user still can't see it: the owner survived the restart too.
    const other = tokenFor(server, 'someone-else');
    assert.equal((await request(server, 'HEAD', url, { headers: tusHeaders(other) })).status, 404);
    const r = await patch(server, token, url, acked, data.subarray(acked));
    assert.equal(r.status, 204, r.text);
    assert.equal(Number(r.headers['upload-offset']), data.length);
    assert.equal(sha256(readFileSync(path.join(dir, id))), sha256(data));
    const status = await uploadStatus(server, id, { token });
    assert.equal(status.json.status, 'complete');
    assert.equal(status.json.sha256, sha256(data), 'the running SHA-256 covers the bytes from before the restart');

    // A complete upload is known after a restart too, and terminating it frees the file.
    await kill(server);
    server = await launch(dir);
    assert.equal(await offsetOf(server, token, url), data.length);
    assert.equal((await request(server, 'DELETE', url, { headers: tusHeaders(token) })).status, 204);
    assert.equal(existsSync(path.join(dir, id)), false);
    await server.stop();
  });

  test('WebSocket: SIGKILL mid-upload, resume from ready.offset to a byte-identical file with the declared SHA-256', async () => {
    const dir = freshDir();
    let server = await launch(dir);
    const data = crypto.randomBytes(2048 * KiB);
    const chunk = 64 * KiB;
    let client = await openUpload(server, { user: 'ws-restart' });
    const ready = await start(client, { size: data.length, sha256: sha256(data) });
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    const id = ready.uploadId;
    let sent = 0;
    while (sent < 1024 * KiB) {
      await sendChunk(client, data.subarray(sent, sent + chunk));
      sent += chunk;
    }
    // Progress acknowledges bytes; wait until everything sent so far is acknowledged.
    await client.next((m) => m.type === 'progress' && m.received === sent, { what: 'progress for every byte sent' });
    const acknowledged = sent;
    // More bytes, unacknowledged when the kill comes (some may be checkpointed meanwhile).
    for (let i = 0; i < 4; i += 1) {
      await sendChunk(client, data.subarray(sent, sent + chunk));
      sent += chunk;
    }
    await kill(server);
    await client.waitClose();

    server = await launch(dir);
    client = await openUpload(server, { user: 'ws-restart' });
    const again = await resume(client, id);
    assert.equal(again.type, 'ready', JSON.stringify(again));
    assert.ok(again.offset >= acknowledged, `ready.offset ${again.offset} < acknowledged ${acknowledged}`);
    assert.ok(again.offset <= sent, `ready.offset ${again.offset} > sent ${sent}`);
    assert.equal(statSync(path.join(dir, '.partial', id)).size, again.offset, 'data cut back to the offset');
    for (let pos = again.offset; pos < data.length; pos += chunk) {
      await sendChunk(client, data.subarray(pos, Math.min(pos + chunk, data.length)));
    }
    const done = await client.next((m) => m.type === 'complete' || m.type === 'error', { what: 'complete' });
    assert.deepEqual(done, { type: 'complete', uploadId: id, size: data.length, sha256: sha256(data) });
    assert.equal(sha256(readFileSync(path.join(dir, id))), sha256(data));
    await client.close();
    await server.stop();
  });

  test('300 idle unfinished uploads hold no file descriptors', async () => {
    const dir = freshDir();
    const server = await launch(dir, { 'upload-max-per-user': 0 });
    const token = tokenFor(server, 'many');
    // One upload first, so lazily opened descriptors (log, disk) are in the baseline.
    const first = await create(server, token, 100);
    assert.equal((await patch(server, token, first, 0, Buffer.alloc(10, 1))).status, 204);
    const baseline = fdCount(server);
    for (let i = 0; i < 300; i += 1) {
      const url = await create(server, token, 100);
      const r = await patch(server, token, url, 0, Buffer.alloc(10, 2));
      assert.equal(r.status, 204, r.text);
    }
    const now = fdCount(server);
    assert.ok(now <= baseline + 10, `fd count ${now} vs baseline ${baseline} with 300 idle uploads`);
    await server.stop();
  });

  test('orphaned files in .partial are swept while the server runs', async () => {
    const dir = freshDir();
    // --upload-expiry 4 makes the sweep run every second.
    const server = await launch(dir, { 'upload-expiry': 4 });
    const token = tokenFor(server, 'orphans');
    const url = await create(server, token, 100);
    const orphan = path.join(dir, '.partial', 'a'.repeat(32));
    writeFileSync(orphan, 'left behind by a crash');
    writeFileSync(`${orphan}.info.tmp`, 'half a record');
    await waitFor(() => !existsSync(orphan) && !existsSync(`${orphan}.info.tmp`), {
      timeout: ms(5000),
      what: 'the orphan to be swept',
    });
    assert.ok(existsSync(path.join(dir, '.partial', idOf(url))), 'a live upload is no orphan');
    await server.stop();
  });
});
