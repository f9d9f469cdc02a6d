// Replies count against --outbox-bytes like events. A client that floods WebSocket pings, JSON
// pings and chat history requests and never reads can't grow the server: once replies take its
// queue over the bound the server stops reading it, and closes it with 4008 when it stays over
// for --slow-consumer-grace. A client that does read within the grace loses nothing: every JSON
// ping the server read gets its pong. The clients here are raw sockets with hand-built masked
// frames, because a WebSocket library reads (and answers) on its own.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { SANITIZED, ms, waitFor, withTimeout } from './support/env.mjs';
import { promValue, publishOk } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { chatClient, join, say } from './support/chat.mjs';
import { openStream, tokenFor } from './support/ws.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const OUTBOX = 64 * KiB;
// What the server may grow by beyond the outbox: its read of the flood (64 KiB), one history page,
// and allocator slack. Without the bound the same flood takes it up by well over 100 MiB.
const SLACK = 8 * MiB;
const ROOM = 'flood';
const ORG = 456;

function rssBytes(server) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'));
  if (!m) throw new Error('no VmRSS in /proc status');
  return Number(m[1]) * 1024;
}

// A client frame (FIN set, masked, as RFC 6455 §5.3 requires of clients).
function frame(opcode, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  let header;
  if (body.length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | body.length]);
  } else if (body.length < 65536) {
    header = Buffer.from([0x80 | opcode, 0x80 | 126, body.length >> 8, body.length & 0xff]);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(body.length), 2);
  }
  const mask = crypto.randomBytes(4);
  const masked = Buffer.alloc(body.length);
  for (let i = 0; i < body.length; i += 1) masked[i] = body[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}
const text = (json) => frame(0x1, JSON.stringify(json));

// Server frames at the front of `buf`: [{opcode, payload}], and the bytes of a partial frame.
function parseFrames(buf) {
  const frames = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = buf[at] & 0x0f;
    let len = buf[at + 1] & 0x7f;
    let off = at + 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      off = at + 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      off = at + 10;
    }
    if (buf.length < off + len) break;
    frames.push({ opcode, payload: buf.subarray(off, off + len) });
    at = off + len;
  }
  return { frames, rest: buf.subarray(at) };
}

// A stream connection on a raw socket, read only between read() and stopReading(). Frames
// read are counted by opcode, text frames parsed and counted by "type", the close code kept.
class RawClient {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.frames = 0;
    this.opcodes = new Map();
    this.types = new Map();
    this.messages = []; // the first few hundred text frames, parsed
    this.close = undefined;
    this.ended = false;
    this.waiters = new Set();
    socket.on('data', (d) => {
      const { frames, rest } = parseFrames(Buffer.concat([this.buf, d]));
      this.buf = Buffer.from(rest);
      for (const f of frames) this.take(f);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async open(server, token, path = '/v2/realtime/stream') {
    const socket = net.connect(server.port, '127.0.0.1');
    socket.setNoDelay(true);
    await withTimeout(new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }), ms(5000), 'tcp connect');
    const key = crypto.randomBytes(16).toString('base64');
    socket.write(
      `GET ${path}?access_token=${encodeURIComponent(token)} HTTP/1.1\r\n` +
        `Host: 127.0.0.1:${server.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const leftover = await withTimeout(new Promise((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        const status = head.subarray(0, end).toString('latin1').split('\r\n')[0];
        if (!status.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade answered ${status}`));
        resolve(head.subarray(end + 4));
      };
      socket.on('data', onData);
      socket.once('error', reject);
    }), ms(5000), 'the 101 response');
    const client = new RawClient(socket);
    if (leftover.length) socket.emit('data', leftover);
    return client;
  }

  take(f) {
    this.frames += 1;
    this.opcodes.set(f.opcode, (this.opcodes.get(f.opcode) ?? 0) + 1);
    if (f.opcode === 0x1) {
      const m = JSON.parse(f.payload.toString('utf8'));
      this.types.set(m.type, (this.types.get(m.type) ?? 0) + 1);
      if (this.messages.length < 500 || m.type === 'ack') this.messages.push(m);
    } else if (f.opcode === 0x8 && this.close === undefined) {
      this.close = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
    }
  }

  count(type) {
    return this.types.get(type) ?? 0;
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  // Resolves when `pred()` holds (checked on every read), rejects on timeout.
  until(pred, what, timeout = ms(10000)) {
    return withTimeout(new Promise((resolve) => {
      const check = () => {
        if (pred()) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
      check();
    }), timeout, what);
  }

  read() {
    this.socket.resume();
  }

  stopReading() {
    this.socket.pause();
  }

  destroy() {
    this.socket.destroy();
  }
}

describe('replies are bounded by --outbox-bytes', () => {
  let server;
  const grace = ms(2000);
  before(async () => {
    // ASan keeps freed blocks in a quarantine that would show as RSS growth; keep it small.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1', 'thread_local_quarantine_size_kb=64']
      .filter(Boolean)
      .join(':');
    server = await startServer({
      flags: {
        workers: 1, // the flooder and the bystander share the worker
        'outbox-bytes': OUTBOX,
        'slow-consumer-grace': grace,
        'log-level': 'debug',
      },
      env: { ASAN_OPTIONS: asan },
    });
    // Ten 4 KB messages, so that every history page the flood asks for is ~8 KiB.
    const writer = await chatClient(server, { org: ORG, user: 'writer' });
    await join(writer, ROOM);
    for (let i = 0; i < 10; i += 1) await say(writer, ROOM, 'w'.repeat(4000), `seed-${i}`);
    await writer.close();
  });
  after(async () => {
    await server.stop();
  });

  test('a client that floods pings, JSON pings and history requests without reading: bounded RSS, 4008, bystander unharmed', { timeout: ms(60000) }, async (t) => {
    const bystander = (await openStream(server, { org: ORG, user: 'bystander', services: ['finance'] })).client;

    // Warm up the paths the flood takes (history reads, pongs), so first-use allocations are in
    // the baseline.
    const warm = await RawClient.open(server, tokenFor(server, { org: ORG, user: 'warm' }));
    warm.read();
    warm.socket.write(Buffer.concat([
      text({ services: [], version: 1 }),
      text({ type: 'join', room: ROOM, history: 0 }),
      text({ type: 'history', room: ROOM, limit: 2 }),
      text({ type: 'ping' }),
      frame(0x9, Buffer.alloc(125, 1)),
    ]));
    await warm.until(() => warm.count('history') > 0 && warm.count('pong') > 0 && warm.opcodes.has(0xa), 'warm-up replies');
    warm.destroy();

    const flooder = await RawClient.open(server, tokenFor(server, { org: ORG, user: 'flooder' }));
    flooder.stopReading();
    flooder.socket.write(Buffer.concat([text({ services: [], version: 1 }), text({ type: 'join', room: ROOM, history: 0 })]));
    const base = await promValue(server, 'streamgate_slow_consumer_closes_total');
    const baseline = rssBytes(server);

    // 20,000 x (a WebSocket ping with 125 bytes, a JSON ping, a history request for two
    // messages): ~4 MiB sent, ~170 MiB of replies if each got one.
    const triplet = () => Buffer.concat([
      frame(0x9, crypto.randomBytes(125)),
      text({ type: 'ping' }),
      text({ type: 'history', room: ROOM, limit: 2 }),
    ]);
    const parts = [];
    for (let i = 0; i < 20000; i += 1) parts.push(triplet());
    flooder.socket.write(Buffer.concat(parts));

    // Events for the bystander while the flood is held, until the flooder is closed.
    const published = [];
    let peak = baseline;
    let samples = 0;
    await waitFor(async () => {
      peak = Math.max(peak, rssBytes(server));
      samples += 1;
      const id = await publishOk(server, { orgId: ORG, service: 'finance', event: 'tick', data: { n: published.length } });
      published.push(id);
      return (await promValue(server, 'streamgate_slow_consumer_closes_total')) > base;
    }, { timeout: grace + ms(10000), interval: 50, what: 'the slow-consumer close of the flooder' });
    peak = Math.max(peak, rssBytes(server));

    // Reading at last: what the kernel held of the early replies, then the close frame.
    flooder.read();
    await flooder.until(() => flooder.close !== undefined || flooder.ended, 'the close frame');
    flooder.destroy();
    t.diagnostic(`VmRSS baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB (${samples} samples); ` +
      `flooder read ${flooder.opcodes.get(0xa)} pongs, ${flooder.count('pong')} JSON pongs, ${flooder.count('history')} history pages ` +
      `before the close; bystander got ${published.length} events`);
    assert.equal(flooder.close, 4008);
    assert.ok(flooder.opcodes.get(0xa) > 0, 'some WebSocket pong');
    assert.ok(flooder.count('pong') > 0, 'some JSON pong');
    assert.ok(flooder.messages.some((m) => m.type === 'history' && m.events.length === 2), 'some history page');
    assert.equal(await promValue(server, 'streamgate_slow_consumer_closes_total'), base + 1);

    const growth = peak - baseline;
    assert.ok(growth < OUTBOX + SLACK,
      `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB), bound ${((OUTBOX + SLACK) / MiB).toFixed(1)} MiB`);

    // The bystander on the same worker got every event, in order, once.
    const events = await bystander.collectEvents(published.length, { timeout: ms(10000) });
    assert.deepEqual(events.map((e) => e.id), published);
    assert.ok(bystander.isOpen);
    await bystander.close();
  });

  // The upload socket is the same WebSocket connection underneath (net::WsConnection): its
  // replies are bounded the same way.
  test('an upload socket flooded with JSON pings without reading: bounded RSS, 4008', { timeout: ms(60000) }, async () => {
    const flooder = await RawClient.open(server, tokenFor(server, { org: ORG, user: 'uploader' }), '/v2/realtime/upload');
    flooder.stopReading();
    const base = await promValue(server, 'streamgate_slow_consumer_closes_total');
    const baseline = rssBytes(server);
    // ~100 bytes of pong each: far more than the outbox and the socket buffers hold.
    const pings = SANITIZED ? 150000 : 200000;
    flooder.socket.write(Buffer.concat(new Array(pings).fill(text({ type: 'ping' }))));
    let peak = baseline;
    await waitFor(async () => {
      peak = Math.max(peak, rssBytes(server));
      return (await promValue(server, 'streamgate_slow_consumer_closes_total')) > base;
    }, { timeout: grace + ms(10000), interval: 50, what: 'the slow-consumer close of the upload socket' });
    peak = Math.max(peak, rssBytes(server));
    flooder.read();
    await flooder.until(() => flooder.close !== undefined || flooder.ended, 'the close frame');
    assert.equal(flooder.close, 4008);
    assert.ok(flooder.count('pong') < pings, 'not every ping was answered');
    assert.equal(await promValue(server, 'streamgate_slow_consumer_closes_total'), base + 1);
    const growth = peak - baseline;
    assert.ok(growth < OUTBOX + SLACK,
      `RSS grew by ${(growth / MiB).toFixed(1)} MiB, bound ${((OUTBOX + SLACK) / MiB).toFixed(1)} MiB`);
    flooder.destroy();
  });

  test('a client that stops reading is paused, not closed, and gets a pong for every JSON ping once it reads', { timeout: ms(60000) }, async () => {
    const client = await RawClient.open(server, tokenFor(server, { org: ORG, user: 'pauser' }));
    client.read();
    client.socket.write(text({ services: [], version: 1 }));
    await client.until(() => client.count('ack') > 0, 'the ack');
    const conn = client.messages.find((m) => m.type === 'ack').connectionId;
    client.stopReading();

    // More pongs (~60 bytes each) than the kernel's socket buffers and the outbox hold together.
    const pings = SANITIZED ? 150000 : 200000;
    const one = text({ type: 'ping' });
    client.socket.write(Buffer.concat(new Array(pings).fill(one)));
    await waitFor(() => server.logs().some((l) => l.message === 'reading paused: replies over the outbox limit' && l.conn === conn), {
      timeout: ms(20000),
      what: 'the server to stop reading the connection',
    });

    client.read();
    await client.until(() => client.count('pong') >= pings || client.close !== undefined || client.ended, `${pings} pongs`, ms(30000));
    assert.equal(client.close, undefined, 'no close');
    assert.equal(client.count('pong'), pings);
    assert.ok(server.logs().some((l) => l.message === 'reading resumed' && l.conn === conn));
    client.destroy();
  });
});
