// client.upload() against a scripted upload socket and a virtual clock: the start message with the
// file's SHA-256, chunks within the window, progress, resume from the server's offset after a
// dropped connection, the digest check, fatal errors and abort. Plus the streaming SHA-256.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { RealtimeClient, UploadError } from '../../dist/index.js';
import { Sha256 } from '../../dist/sha256.js';
import { FakeClock } from './fakes.mjs';

const URL_ = 'wss://rt.example.com/v2/realtime/stream?region=eu';

class UploadSocket {
  constructor(url, registry) {
    this.url = url;
    this.readyState = 0;
    this.text = [];
    this.bytes = [];
    this.closedWith = null;
    registry.push(this);
  }
  send(data) {
    if (this.readyState !== 1) throw new Error('not open');
    if (typeof data === 'string') this.text.push(JSON.parse(data));
    else this.bytes.push(Buffer.from(data));
  }
  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }
  get sentBytes() {
    return this.bytes.reduce((n, b) => n + b.length, 0);
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '', wasClean: false });
  }
}

function setup() {
  const clock = new FakeClock();
  const sockets = [];
  const tokens = [];
  const platform = {
    WebSocket: class extends UploadSocket {
      constructor(url) {
        super(url, sockets);
      }
    },
    BroadcastChannel: undefined,
    locks: undefined,
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (h) => clock.clearTimeout(h),
    now: () => clock.now(),
    random: () => 0.5,
    listen: () => () => {},
  };
  const client = new RealtimeClient({
    url: URL_,
    getToken: (request) => {
      tokens.push(request);
      return `tok-${tokens.length}`;
    },
    platform,
    autoStart: false,
  });
  return { clock, sockets, tokens, client };
}

/** Lets real async work (Blob reads, WebCrypto's digest on node's thread pool) finish; bounded. */
async function until(probe, what) {
  const deadline = Date.now() + 10000;
  while (!probe()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const sha = (buf) => createHash('sha256').update(buf).digest('hex');

test('streaming SHA-256 matches node:crypto for every length around the block boundaries', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 100000]) {
    const data = randomBytes(n);
    const hash = new Sha256();
    for (let i = 0; i < n; i += 37) hash.update(data.subarray(i, i + 37));
    assert.equal(hash.hex(), sha(data), `length ${n}`);
  }
});

test('uploads in chunks within the window, resumes from the server offset after a drop, checks the digest', async () => {
  const { clock, sockets, tokens, client } = setup();
  const data = randomBytes(6 << 20);
  const file = new File([data], 'report.pdf', { type: 'application/pdf' });
  const progress = [];
  const done = client.upload(file, { onProgress: (p) => progress.push(p) });
  await until(() => sockets.length === 1, 'the first socket');
  const first = sockets[0];
  assert.equal(first.url, 'wss://rt.example.com/v2/realtime/upload?region=eu&access_token=tok-1');
  first.open();
  assert.deepEqual(first.text, [
    { type: 'start', filename: 'report.pdf', size: data.length, contentType: 'application/pdf', sha256: sha(data) },
  ]);
  first.receive({ type: 'ready', uploadId: 'u1', offset: 0, size: data.length });
  await until(() => first.sentBytes === 4 << 20, 'a full window');
  await clock.advance(0);
  assert.equal(first.sentBytes, 4 << 20, 'never more than 4 MiB ahead of what the server stored');
  assert.ok(
    first.bytes.every((b) => b.length <= 65536),
    'chunks of at most 64 KiB',
  );
  first.receive({ type: 'progress', uploadId: 'u1', received: 1 << 20, total: data.length, percent: 16.66 });
  await until(() => first.sentBytes === 5 << 20, 'the window to move');
  // The network drops; the server kept 3 MiB, less than was sent.
  first.drop(1006);
  assert.equal(sockets.length, 1);
  await clock.advance(5000);
  await until(() => sockets.length === 2, 'a second socket');
  const second = sockets[1];
  assert.deepEqual(tokens.at(-1), { reason: 'reconnect', forceRefresh: false, attempt: 1 });
  second.open();
  assert.deepEqual(second.text, [{ type: 'resume', uploadId: 'u1' }]);
  second.receive({ type: 'ready', uploadId: 'u1', offset: 3 << 20, size: data.length });
  await until(() => second.sentBytes === 3 << 20, 'the rest');
  assert.ok(Buffer.concat(second.bytes).equals(data.subarray(3 << 20)), 'continues at the server offset');
  second.receive({ type: 'progress', uploadId: 'u1', received: data.length, total: data.length, percent: 100 });
  second.receive({ type: 'complete', uploadId: 'u1', size: data.length, sha256: sha(data) });
  assert.deepEqual(await done, { uploadId: 'u1', size: data.length, sha256: sha(data) });
  assert.equal(second.closedWith, 1000);
  assert.deepEqual(
    progress.map((p) => [p.uploadId, p.received, p.percent]),
    [
      ['u1', 0, 0],
      ['u1', 1 << 20, 16.66],
      ['u1', 3 << 20, 50],
      ['u1', data.length, 100],
    ],
  );
});

test('a fatal error rejects with its code; a digest that differs rejects too', async () => {
  const { sockets, client } = setup();
  const file = new Blob([randomBytes(1000)]);
  const failing = client.upload(file);
  await until(() => sockets.length === 1, 'a socket');
  sockets[0].open();
  sockets[0].receive({ type: 'error', code: 'too_many_uploads', message: 'limit' });
  sockets[0].drop(1008);
  await assert.rejects(failing, (e) => e instanceof UploadError && e.code === 'too_many_uploads');

  const wrong = client.upload(file, { filename: 'x.bin' });
  await until(() => sockets.length === 2, 'a socket');
  sockets[1].open();
  assert.equal(sockets[1].text[0].filename, 'x.bin');
  sockets[1].receive({ type: 'ready', uploadId: 'u2', offset: 0, size: 1000 });
  await until(() => sockets[1].sentBytes === 1000, 'the bytes');
  sockets[1].receive({ type: 'complete', uploadId: 'u2', size: 1000, sha256: '0'.repeat(64) });
  await assert.rejects(wrong, (e) => e instanceof UploadError && e.code === 'checksum_mismatch');
});

test('a 4001 close gets a fresh token; connections that store nothing give up after maxRetries', async () => {
  const { clock, sockets, tokens, client } = setup();
  const file = new Blob([randomBytes(100)]);
  const done = client.upload(file, { maxRetries: 2, sha256: false });
  await until(() => sockets.length === 1, 'a socket');
  sockets[0].open();
  assert.equal(sockets[0].text[0].sha256, undefined);
  sockets[0].drop(4001);
  await clock.advance(5000);
  await until(() => sockets.length === 2, 'a second socket');
  assert.deepEqual(tokens.at(-1), { reason: 'expired', forceRefresh: true, attempt: 1 });
  sockets[1].drop(1006); // never opened: maybe a 401
  await clock.advance(5000);
  await until(() => tokens.length === 3, 'a third token');
  assert.equal(tokens.at(-1).reason, 'rejected');
  await until(() => sockets.length === 3, 'a third socket');
  sockets[2].drop(1006);
  await assert.rejects(done, (e) => e instanceof UploadError && e.code === 'connection_lost');
});

test('abort closes the socket and rejects with the reason', async () => {
  const { sockets, client } = setup();
  const controller = new AbortController();
  const done = client.upload(new Blob([randomBytes(200000)]), { signal: controller.signal });
  await until(() => sockets.length === 1, 'a socket');
  sockets[0].open();
  sockets[0].receive({ type: 'ready', uploadId: 'u3', offset: 0, size: 200000 });
  controller.abort(new Error('user cancelled'));
  await assert.rejects(done, /user cancelled/);
  assert.equal(sockets[0].closedWith, 1000);
});

test('tus: creates, PATCHes 1 MiB pieces with their SHA-256, resumes from HEAD after a network failure', async (t) => {
  const { clock, tokens, client } = setup();
  const data = randomBytes((2 << 20) + 5);
  const requests = [];
  let offset = 0;
  let failNext = true;
  t.mock.method(globalThis, 'fetch', async (url, init) => {
    const h = init.headers;
    requests.push([init.method, url, h['upload-offset'], h['upload-checksum'], h.authorization]);
    if (init.method === 'POST') return new Response(null, { status: 201, headers: { location: '/v2/uploads/abc' } });
    if (init.method === 'HEAD')
      return new Response(null, { status: 200, headers: { 'upload-offset': String(offset) } });
    if (offset === 1 << 20 && failNext) {
      failNext = false;
      throw new TypeError('network error');
    }
    offset += init.body.byteLength;
    return new Response(null, { status: 204, headers: { 'upload-offset': String(offset) } });
  });
  const progress = [];
  const done = client.upload(new Blob([data]), { protocol: 'tus', onProgress: (p) => progress.push(p.received) });
  await until(() => requests.length === 3, 'the failed PATCH');
  await clock.advance(5000);
  const result = await done;
  assert.deepEqual(result, { uploadId: 'abc', size: data.length, sha256: sha(data) });
  const piece = (from, to) => `sha256 ${createHash('sha256').update(data.subarray(from, to)).digest('base64')}`;
  assert.deepEqual(
    requests.map(([method, url, at, checksum]) => [method, url, at, checksum]),
    [
      ['POST', 'https://rt.example.com/v2/uploads/', undefined, undefined],
      ['PATCH', 'https://rt.example.com/v2/uploads/abc', '0', piece(0, 1 << 20)],
      ['PATCH', 'https://rt.example.com/v2/uploads/abc', String(1 << 20), piece(1 << 20, 2 << 20)],
      ['HEAD', 'https://rt.example.com/v2/uploads/abc', undefined, undefined],
      ['PATCH', 'https://rt.example.com/v2/uploads/abc', String(1 << 20), piece(1 << 20, 2 << 20)],
      ['PATCH', 'https://rt.example.com/v2/uploads/abc', String(2 << 20), piece(2 << 20, data.length)],
    ],
  );
  assert.ok(requests.every(([, , , , auth]) => auth.startsWith('Bearer tok-')));
  assert.deepEqual(progress, [0, 1 << 20, 1 << 20, 2 << 20, data.length]);
  assert.equal(tokens.length, 2);
});
