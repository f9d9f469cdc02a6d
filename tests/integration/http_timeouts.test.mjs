// --http-idle-timeout: an HTTP connection has that long to send a whole request, whatever the
// pace of its bytes, so neither an idle keep-alive connection nor a client that trickles its
// head or body (slowloris) holds a socket; a connection that keeps sending requests in time is
// left alone. Raw TCP sockets, so no client library reconnects or pads anything.

import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ms } from './support/env.mjs';
import { startServer } from './support/server.mjs';

const IDLE = ms(500);
const HEALTH = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

// A socket that records what it received and when the server ended it.
function open(server) {
  const socket = net.connect({ host: '127.0.0.1', port: server.port });
  const state = { socket, received: '', ended: false, error: undefined };
  socket.on('data', (d) => {
    state.received += d.toString('latin1');
  });
  state.closed = new Promise((resolve) => {
    socket.on('end', () => {
      state.ended = true;
      resolve();
    });
    socket.on('error', (e) => {
      state.error = e;
      resolve();
    });
    socket.on('close', resolve);
  });
  state.connected = new Promise((resolve) => socket.on('connect', resolve));
  return state;
}

function answers(text) {
  return (text.match(/HTTP\/1\.1 \d{3} /g) ?? []).length;
}

// Resolves true if the server ended the connection within `limit` ms, false otherwise.
async function endsWithin(state, limit) {
  return Promise.race([state.closed.then(() => true), delay(limit).then(() => false)]);
}

describe('HTTP connection deadline (--http-idle-timeout)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { 'http-idle-timeout': IDLE } });
  });
  after(async () => {
    await server?.stop();
  });

  test('a connection that never sends a request is closed', async () => {
    const c = open(server);
    await c.connected;
    assert.equal(await endsWithin(c, IDLE * 10), true, 'closed by the server');
    assert.equal(c.ended, true, `a clean close (error: ${c.error?.code})`);
    assert.equal(c.received, '');
  });

  test('a keep-alive connection idle after its answer is closed', async () => {
    const c = open(server);
    await c.connected;
    c.socket.write(HEALTH);
    assert.equal(await endsWithin(c, IDLE * 10), true, 'closed by the server');
    assert.equal(answers(c.received), 1, c.received);
    assert.match(c.received, /^HTTP\/1\.1 200 /);
    assert.equal(c.ended, true, `a clean close (error: ${c.error?.code})`);
  });

  test('a head trickled a byte at a time is cut off before it is complete (slowloris)', async () => {
    const c = open(server);
    await c.connected;
    // Each byte comes well inside the timeout; the whole head would take four times it.
    const step = Math.ceil((IDLE * 4) / HEALTH.length);
    let sent = 0;
    while (sent < HEALTH.length && !c.ended && !c.error) {
      c.socket.write(HEALTH[sent]);
      sent += 1;
      await delay(step);
    }
    assert.ok(sent < HEALTH.length, `cut off after ${sent} of ${HEALTH.length} bytes`);
    await endsWithin(c, IDLE * 10);
    assert.equal(answers(c.received), 0, c.received);
  });

  test('a body that stops short is cut off', async () => {
    const c = open(server);
    await c.connected;
    c.socket.write(
      `POST /v2/realtime/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.apiKey}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"orgId":1,',
    );
    assert.equal(await endsWithin(c, IDLE * 10), true, 'closed by the server');
    assert.equal(answers(c.received), 0, c.received);
  });

  test('requests that keep coming in time hold the connection past the timeout', async () => {
    const c = open(server);
    await c.connected;
    const rounds = 5;  // spaced at half the timeout: twice the timeout in all
    for (let i = 0; i < rounds; i += 1) {
      c.socket.write(HEALTH);
      await delay(IDLE / 2);
    }
    assert.equal(answers(c.received), rounds, c.received);
    assert.equal(c.ended, false, 'still open');
    assert.equal(c.error, undefined);
    c.socket.destroy();
  });
});

describe('lingering close under the default --http-idle-timeout', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  // The linger's 2 s is shorter than the 30 s the connection's deadline was at: it must take
  // over, or a refused client that keeps its socket open holds it for the whole idle timeout.
  // The client keeps its half open and sends a byte now and then, as a client still sending
  // its body would: the linger reads and drops them; once it is over, the next byte is reset.
  test('a client refused mid-body that keeps its half open is closed after the 2 s linger', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
    let received = '';
    let finAt;
    let goneAt;
    socket.on('data', (d) => {
      received += d.toString('latin1');
    });
    socket.on('end', () => {
      finAt = Date.now();
    });
    const gone = new Promise((resolve) => {
      const done = () => {
        goneAt ??= Date.now();
        resolve();
      };
      socket.on('error', done);
      socket.on('close', done);
    });
    await new Promise((resolve) => socket.on('connect', resolve));
    socket.write(
      `POST /v2/realtime/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.apiKey}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n{"orgId":1,`,
    );
    const limit = Date.now() + ms(15000);
    while (goneAt === undefined && Date.now() < limit) {
      await delay(100);
      if (goneAt === undefined && !socket.destroyed) socket.write('x');
    }
    await Promise.race([gone, delay(1000)]);
    socket.destroy();
    assert.match(received, /^HTTP\/1\.1 413 /);
    assert.ok(finAt !== undefined, 'the server sent FIN after its answer');
    assert.ok(goneAt !== undefined, 'the server closed within 15 s, not after the 30 s idle timeout');
    assert.ok(goneAt - finAt >= 1500, `it lingered first (${goneAt - finAt} ms)`);
  });
});
