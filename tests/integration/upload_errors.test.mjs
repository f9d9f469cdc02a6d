// Bad input on the upload WebSocket against the real binary: each gets a clear error, the upload
// is marked failed with its partial data removed, and nothing else is disturbed. Also the disk
// refusing (a directory where the file must go; the partial directory replaced by a file: both
// fail for root too) and every upload limit flag.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ms } from './support/env.mjs';
import { promValue } from './support/http.mjs';
import {
  openUpload,
  partialPath,
  resume,
  sendAll,
  sendChunk,
  start,
  startUploadServer,
  storedPath,
  uploadStatus,
} from './support/upload.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// Waits for the error message and the close that follows it.
async function expectError(client, code, closeCode = 1008) {
  const err = await client.next((m) => m.type === 'error', { what: `error ${code}` });
  assert.equal(err.code, code, JSON.stringify(err));
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  const closed = await client.waitClose();
  assert.equal(closed.code, closeCode);
  return err;
}

describe('upload bad input', () => {
  let server;
  let bystander;
  before(async () => {
    server = await startUploadServer();
    // Another user's stream that must live through everything below.
    bystander = await openStream(server, { user: 'bystander', services: ['finance'] });
  });
  after(async () => {
    assert.ok(bystander.client.isOpen, 'a bad upload disturbed another connection');
    await bystander.client.close();
    await server.cleanup();
  });

  test('more bytes than declared: too_large, the upload fails and its partial data is removed', async () => {
    const token = tokenFor(server, { user: 'over' });
    const client = await openUpload(server, { token });
    const ready = await start(client, { size: 100 });
    await sendChunk(client, Buffer.alloc(60, 1));
    await sendChunk(client, Buffer.alloc(60, 2));
    await expectError(client, 'too_large');
    assert.equal(existsSync(partialPath(server, ready.uploadId)), false);
    assert.equal(existsSync(storedPath(server, ready.uploadId)), false);
    const status = await uploadStatus(server, ready.uploadId, { token });
    assert.equal(status.json.status, 'failed');
    assert.equal(status.json.error, 'too_large');
    const again = await openUpload(server, { token });
    const r = await resume(again, ready.uploadId);
    assert.equal(r.code, 'upload_failed');
    await again.waitClose();
  });

  test('a chunk after complete: already_complete, the stored file unchanged', async () => {
    const client = await openUpload(server);
    const ready = await start(client, { size: 4 });
    await sendChunk(client, Buffer.from('abcd'));
    const complete = await client.next((m) => m.type === 'complete');
    assert.equal(complete.sha256, sha256(Buffer.from('abcd')));
    await sendChunk(client, Buffer.from('e'));
    await expectError(client, 'already_complete');
    assert.equal((await import('node:fs')).readFileSync(storedPath(server, ready.uploadId), 'utf8'), 'abcd');
  });

  test('resuming a complete upload answers ready and complete', async () => {
    const client = await openUpload(server);
    const ready = await start(client, { size: 2 });
    await sendChunk(client, Buffer.from('ok'));
    await client.next((m) => m.type === 'complete');
    await client.close();
    const again = await openUpload(server);
    const r = await resume(again, ready.uploadId);
    assert.deepEqual(r, { type: 'ready', uploadId: ready.uploadId, offset: 2, size: 2 });
    const c = await again.next((m) => m.type === 'complete');
    assert.equal(c.sha256, sha256(Buffer.from('ok')));
    assert.ok((await promValue(server, 'streamgate_uploads_completed_total')) >= 1);
    assert.ok((await promValue(server, 'streamgate_upload_bytes_total')) >= 2);
    await again.close();
  });

  test('a wrong checksum: checksum_mismatch, nothing stored', async () => {
    const token = tokenFor(server, { user: 'checksum' });
    const client = await openUpload(server, { token });
    const ready = await start(client, { size: 5, sha256: sha256(Buffer.from('right')) });
    await sendChunk(client, Buffer.from('wrong'));
    await expectError(client, 'checksum_mismatch');
    assert.equal(existsSync(storedPath(server, ready.uploadId)), false);
    assert.equal(existsSync(partialPath(server, ready.uploadId)), false);
    const status = await uploadStatus(server, ready.uploadId, { token });
    assert.equal(status.json.status, 'failed');
    assert.equal(status.json.error, 'checksum_mismatch');
    assert.equal(await promValue(server, 'streamgate_uploads_failed_total', { reason: 'checksum_mismatch' }), 1);
  });

  test('an unknown upload id: not_found', async () => {
    const client = await openUpload(server);
    const r = await resume(client, crypto.randomBytes(16).toString('hex'));
    assert.equal(r.code, 'not_found');
    await client.waitClose();
  });

  test('bytes before start: not_started', async () => {
    const client = await openUpload(server);
    await sendChunk(client, Buffer.from('early'));
    await expectError(client, 'not_started');
  });

  for (const [what, msg, code, close] of [
    ['no size', { type: 'start', filename: 'x' }, 'bad_request', 1008],
    ['a negative size', { type: 'start', size: -1 }, 'bad_request', 1008],
    ['a fractional size', { type: 'start', size: 1.5 }, 'bad_request', 1008],
    ['a sha256 that is not 64 hex digits', { type: 'start', size: 1, sha256: 'abc' }, 'bad_request', 1008],
    ['a non-string filename', { type: 'start', size: 1, filename: 7 }, 'bad_request', 1008],
    ['an unknown type', { type: 'upload', size: 1 }, 'unknown_message', 1008],
    ['resume without an id', { type: 'resume' }, 'bad_request', 1008],
    ['not JSON', 'not json', 'malformed_json', 1007],
  ]) {
    test(`a start message with ${what}: ${code}`, async () => {
      const client = await openUpload(server);
      client.send(msg);
      await expectError(client, code, close);
    });
  }

  test('a binary message over --max-message-bytes closes with 1009', async () => {
    const client = await openUpload(server);
    await start(client, { size: 1 << 20 });
    await sendChunk(client, Buffer.alloc(64 * 1024 + 1));
    const closed = await client.waitClose();
    assert.equal(closed.code, 1009);
  });

  test('a client still sending a too-large message sees 1009, not a reset (1006)', async () => {
    // The server stops reading at the frame header; closing then with the rest of the message
    // unread would make the kernel send RST, which drops the close frame in the client's
    // receive buffer. The server lingers (write side shut, input discarded) instead.
    for (const size of [1 << 20, 10 << 20, 64 << 20, 1 << 20, 10 << 20, 64 << 20]) {
      const client = await openUpload(server, { user: 'linger' });
      await start(client, { size: 1 << 20 });
      client.ws.send(Buffer.alloc(size, 7), { binary: true }, () => {});
      const closed = await client.waitClose();
      assert.equal(closed.code, 1009, `a ${size}-byte message`);
    }
  });

  test('disk error at commit (a directory where the file goes): storage_error, upload failed, partial data removed', async () => {
    const token = tokenFor(server, { user: 'disk' });
    const client = await openUpload(server, { token });
    const ready = await start(client, { size: 8 });
    mkdirSync(path.join(storedPath(server, ready.uploadId), 'occupied'), { recursive: true });
    await sendChunk(client, Buffer.from('12345678'));
    const err = await expectError(client, 'storage_error', 1011);
    assert.match(err.message, /could not store/);
    assert.equal(existsSync(partialPath(server, ready.uploadId)), false);
    const status = await uploadStatus(server, ready.uploadId, { token });
    assert.equal(status.json.status, 'failed');
    assert.equal(status.json.error, 'storage_error');
    rmSync(storedPath(server, ready.uploadId), { recursive: true });
  });

  test('disk error at start (the partial directory is a file): storage_error; uploads work again once fixed', async () => {
    const partialDir = path.join(server.uploadDir, '.partial');
    renameSync(partialDir, `${partialDir}.moved`);
    writeFileSync(partialDir, 'not a directory');
    try {
      const client = await openUpload(server);
      client.send({ type: 'start', size: 10 });
      await expectError(client, 'storage_error', 1011);
    } finally {
      rmSync(partialDir);
      renameSync(`${partialDir}.moved`, partialDir);
    }
    const client = await openUpload(server);
    const ready = await start(client, { size: 3 });
    assert.equal(ready.type, 'ready');
    await sendChunk(client, Buffer.from('abc'));
    await client.next((m) => m.type === 'complete');
    await client.close();
  });
});

describe('upload limits', () => {
  let server;
  before(async () => {
    server = await startUploadServer({
      flags: { 'upload-max-bytes': 1000, 'upload-max-per-user': 2, 'upload-max-org-bytes': 1500 },
    });
  });
  after(async () => {
    await server.cleanup();
  });

  test('--upload-max-bytes: a larger declared size is too_large', async () => {
    const client = await openUpload(server, { user: 'big' });
    const r = await start(client, { size: 1001 });
    assert.equal(r.code, 'too_large');
    assert.match(r.message, /--upload-max-bytes \(1000\)/);
    await client.waitClose();
    const ok = await openUpload(server, { user: 'big' });
    assert.equal((await start(ok, { size: 1000 })).type, 'ready');
    await ok.close();
  });

  test('--upload-max-per-user: a third unfinished upload is too_many_uploads; another user is unaffected', async () => {
    const org = 900;
    const a = await openUpload(server, { org, user: 'u' });
    const b = await openUpload(server, { org, user: 'u' });
    const ra = await start(a, { size: 10 });
    assert.equal((await start(b, { size: 10 })).type, 'ready');
    const c = await openUpload(server, { org, user: 'u' });
    const rc = await start(c, { size: 10 });
    assert.equal(rc.code, 'too_many_uploads');
    await c.waitClose();
    const other = await openUpload(server, { org, user: 'v' });
    assert.equal((await start(other, { size: 10 })).type, 'ready');
    // Finishing one frees a slot.
    await sendChunk(a, Buffer.alloc(10));
    await a.next((m) => m.type === 'complete');
    const d = await openUpload(server, { org, user: 'u' });
    assert.equal((await start(d, { size: 10 })).type, 'ready', `after ${ra.uploadId} completed`);
    await Promise.all([a.close(), b.close(), d.close(), other.close()]);
  });

  test('--upload-max-org-bytes: declared bytes in flight per org; another org is unaffected', async () => {
    const a = await openUpload(server, { org: 901, user: 'x' });
    assert.equal((await start(a, { size: 1000 })).type, 'ready');
    const b = await openUpload(server, { org: 901, user: 'y' });
    const rb = await start(b, { size: 501 });
    assert.equal(rb.code, 'org_quota_exceeded');
    await b.waitClose();
    const c = await openUpload(server, { org: 902, user: 'y' });
    assert.equal((await start(c, { size: 1000 })).type, 'ready');
    const d = await openUpload(server, { org: 901, user: 'y' });
    assert.equal((await start(d, { size: 500 })).type, 'ready');
    await Promise.all([a.close(), c.close(), d.close()]);
  });

  test('a dropped connection keeps the upload (and its slot) until it completes', async () => {
    const token = tokenFor(server, { org: 903, user: 'w' });
    const a = await openUpload(server, { token });
    const ready = await start(a, { size: 20 });
    await sendAll(a, [Buffer.alloc(10, 7)]);
    a.terminate();
    const b = await openUpload(server, { token });
    const r = await resume(b, ready.uploadId);
    assert.equal(r.type, 'ready');
    await sendChunk(b, Buffer.alloc(20 - r.offset, 7));
    const done = await b.next((m) => m.type === 'complete', { timeout: ms(5000) });
    assert.equal(done.sha256, sha256(Buffer.alloc(20, 7)));
    await b.close();
  });
});

describe('upload and SIGTERM', () => {
  test('an upload in progress is told shutting_down and closed with 1001; the server exits 0', async () => {
    const server = await startUploadServer();
    try {
      const client = await openUpload(server);
      const ready = await start(client, { size: 1000 });
      assert.equal(ready.type, 'ready');
      await sendChunk(client, Buffer.alloc(100));
      await client.next((m) => m.type === 'progress' || m.type === 'error', { timeout: ms(5000) });
      server.signal('SIGTERM');
      const err = await client.next((m) => m.type === 'error', { what: 'shutting_down' });
      assert.equal(err.code, 'shutting_down');
      const closed = await client.waitClose();
      assert.equal(closed.code, 1001);
    } finally {
      await server.cleanup();
    }
  });
});
