// Upload helpers: a fresh --upload-dir per server, the upload WebSocket (/v2/realtime/upload)
// with start/resume, streaming bytes with client-side backpressure, and reading the progress
// API. Bytes come from generators, so a large upload is never held in memory by the test.

import crypto from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ms } from './env.mjs';
import { getAsUser } from './http.mjs';
import { startServer } from './server.mjs';
import { connect, tokenFor } from './ws.mjs';

export const UPLOAD_PATH = '/v2/realtime/upload';

// Starts a server with its own upload directory; `server.uploadDir` names it and
// `server.cleanup()` stops the server and removes the directory.
export async function startUploadServer({ flags = {}, env = {} } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-uploads-'));
  const server = await startServer({ flags: { 'upload-dir': dir, ...flags }, env });
  server.uploadDir = dir;
  server.cleanup = async () => {
    try {
      await server.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return server;
}

export function storedPath(server, id) {
  return path.join(server.uploadDir, id);
}

export function partialPath(server, id) {
  return path.join(server.uploadDir, '.partial', id);
}

export async function openUpload(server, { org = 456, user = 'user-1', token, via = 'query' } = {}) {
  const t = token ?? tokenFor(server, { org, user });
  return connect(server, { token: t, via, path: UPLOAD_PATH });
}

// Sends start (or resume) and resolves with the server's ready or error message.
export async function start(client, { filename = 'doc.bin', size, contentType = 'application/octet-stream', sha256 } = {}) {
  const msg = { type: 'start', filename, size, contentType };
  if (sha256 !== undefined) msg.sha256 = sha256;
  client.send(msg);
  return client.next((m) => m.type === 'ready' || m.type === 'error', { what: 'ready or error' });
}

export async function resume(client, uploadId) {
  client.send({ type: 'resume', uploadId });
  return client.next((m) => m.type === 'ready' || m.type === 'error', { what: 'ready or error' });
}

// Sends one binary message; resolves when `ws` has handed it to the socket.
export function sendChunk(client, buf) {
  return new Promise((resolve, reject) => {
    client.ws.send(buf, { binary: true }, (err) => (err ? reject(err) : resolve()));
  });
}

// Sends every chunk the (async) iterable yields, keeping at most `window` bytes queued in the
// client, so neither side buffers the whole upload. `onChunk(sentSoFar)` runs after each send
// and may return true to stop early.
export async function sendAll(client, chunks, { window = 4 << 20, onChunk } = {}) {
  let sent = 0;
  let last = Promise.resolve();
  for await (const chunk of chunks) {
    last = sendChunk(client, chunk);
    sent += chunk.length;
    if (client.ws.bufferedAmount > window) await last;
    if (onChunk && onChunk(sent)) break;
  }
  await last;
  return sent;
}

// Deterministic pseudo-random bytes, cheap enough for a GiB: `seed`-keyed AES-CTR keystream.
export function* pseudoRandom(total, { seed = 'seed', chunkSizes = () => 64 * 1024, from = 0 } = {}) {
  const key = crypto.createHash('sha256').update(String(seed)).digest();
  const block = 1 << 20;
  let pos = from;
  let buffer = Buffer.alloc(0);
  let bufferStart = from;
  const fill = (at) => {
    // Counter-mode keystream for the MiB-aligned block containing `at`.
    const start = Math.floor(at / block) * block;
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64BE(BigInt(start / 16), 8);
    const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
    buffer = cipher.update(Buffer.alloc(block));
    bufferStart = start;
  };
  while (pos < total) {
    const want = Math.min(chunkSizes(), total - pos);
    const out = Buffer.allocUnsafe(want);
    let filled = 0;
    while (filled < want) {
      if (pos + filled < bufferStart || pos + filled >= bufferStart + buffer.length) fill(pos + filled);
      const off = pos + filled - bufferStart;
      const n = Math.min(want - filled, buffer.length - off);
      buffer.copy(out, filled, off, off + n);
      filled += n;
    }
    pos += want;
    yield out;
  }
}

// SHA-256 hex of what pseudoRandom(total, {seed}) yields.
export function pseudoRandomSha256(total, seed) {
  const h = crypto.createHash('sha256');
  for (const c of pseudoRandom(total, { seed, chunkSizes: () => 1 << 20 })) h.update(c);
  return h.digest('hex');
}

export function fileSha256(file) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

// GET /v2/realtime/uploads/{id} with a token (Bearer by default).
export async function uploadStatus(server, id, { token, via = 'header' } = {}) {
  return getAsUser(server, `/v2/realtime/uploads/${id}`, { token, via });
}

// The server's resident set size in bytes, from /proc/<pid>/status.
export function rssBytesSync(server) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'));
  if (!m) throw new Error('no VmRSS in /proc status');
  return Number(m[1]) * 1024;
}

export const TIMEOUT = ms(60000);
