// Request framing that RFC 9112 says to refuse (ambiguous Transfer-Encoding, Transfer-Encoding
// with Content-Length, missing or repeated Host, obs-fold) gets 400 and a closed connection,
// WebSocket upgrades included; and an answer sent before the request body was read (413, 400)
// reaches a client that is still sending, because the server lingers instead of resetting.
// Everything goes over raw TCP sockets, so no client library normalizes the bytes.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { loops, ms, withTimeout } from './support/env.mjs';
import { startServer } from './support/server.mjs';

const PUBLISH = '/v2/realtime/publish';

// Splits what came back into responses: [{status, headers (lower-case names), body, json}].
// Only Content-Length-framed bodies, which is all the server sends outside a WebSocket.
function parseResponses(buf) {
  const out = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (end + 4 + length > buf.length) break;
    const body = buf.subarray(end + 4, end + 4 + length).toString('utf8');
    let json;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    out.push({ status: Number(m[1]), headers, body, json });
    at = end + 4 + length;
  }
  return out;
}

// Connects, writes `bytes` in one go without waiting for anything, and collects what comes
// back until the server ends the connection (or `timeout`). Resolves {responses, ended, error}:
// `ended` is true when the server closed its side (FIN); `error` is a socket error (e.g. a reset)
// that came after or instead of it.
function exchange(server, bytes, { timeout = ms(5000) } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    const chunks = [];
    let ended = false;
    let error;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), raw: Buffer.concat(chunks), ended, error });
    };
    const timer = setTimeout(finish, timeout);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d) => chunks.push(d));
    socket.on('end', () => {
      ended = true;
      finish();
    });
    socket.on('error', (e) => {
      error = e;
      finish();
    });
  });
}

function request(lines, body = '') {
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body)]);
}

const event = JSON.stringify({ orgId: 456, service: 'finance', event: 'e', data: { n: 1 } });

function chunked(text) {
  return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`;
}

describe('strict request framing (RFC 9112)', () => {
  let server;
  let auth;
  before(async () => {
    server = await startServer({ flags: { services: 'finance' } });
    auth = `Authorization: Bearer ${server.apiKey}`;
  });
  after(async () => {
    await server?.stop();
  });

  // The server's answer to a request it must refuse: exactly one 400 with the JSON error, and
  // then the end of the connection (no second response to the smuggled part, no keep-alive).
  async function expectRefused(bytes, code) {
    const r = await exchange(server, bytes);
    assert.equal(r.responses.length, 1, `one response, got ${JSON.stringify(r.raw.toString('latin1'))}`);
    const [res] = r.responses;
    assert.equal(res.status, 400, res.body);
    assert.equal(res.json?.error, code, res.body);
    assert.equal(typeof res.json?.message, 'string');
    assert.equal(res.headers.connection, 'close');
    assert.equal(r.ended, true, `the server closes the connection (error: ${r.error?.code})`);
  }

  const smuggledBody = `${chunked(event)}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`;

  test('Transfer-Encoding "chunked, identity" with Content-Length → 400, closed', async () => {
    await expectRefused(
      request(
        [
          `POST ${PUBLISH} HTTP/1.1`,
          'Host: 127.0.0.1',
          auth,
          'Content-Type: application/json',
          'Transfer-Encoding: chunked, identity',
          `Content-Length: ${Buffer.byteLength(event)}`,
        ],
        event,
      ),
      'content_length_with_transfer_encoding',
    );
  });

  test('Transfer-Encoding "gzip, chunked" → 400, closed', async () => {
    await expectRefused(
      request(
        [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Transfer-Encoding: gzip, chunked'],
        smuggledBody,
      ),
      'unsupported_transfer_coding',
    );
  });

  test('Transfer-Encoding "gzip" and "chunked" on two lines → 400, closed', async () => {
    await expectRefused(
      request(
        [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'],
        smuggledBody,
      ),
      'unsupported_transfer_coding',
    );
  });

  test('Transfer-Encoding "chunked, identity" (chunked not last) → 400, closed', async () => {
    await expectRefused(
      request(
        [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Transfer-Encoding: chunked, identity'],
        smuggledBody,
      ),
      'chunked_not_last',
    );
  });

  test('HTTP/1.1 without Host → 400, closed', async () => {
    await expectRefused(request(['GET /healthz HTTP/1.1']), 'missing_host');
  });

  test('two Host lines → 400, closed', async () => {
    await expectRefused(request(['GET /healthz HTTP/1.1', 'Host: 127.0.0.1', 'Host: evil.example']), 'duplicate_host');
  });

  test('obs-fold (a header line starting with a space) → 400, closed', async () => {
    await expectRefused(
      request([
        `POST ${PUBLISH} HTTP/1.1`,
        'Host: 127.0.0.1',
        auth,
        'X-Folded: first',
        ' Transfer-Encoding: chunked',
        `Content-Length: ${Buffer.byteLength(event)}`,
      ], event),
      'obs_fold',
    );
  });

  test('obs-fold with a tab → 400, closed', async () => {
    await expectRefused(request(['GET /healthz HTTP/1.1', 'Host: 127.0.0.1', 'X-Folded: first', '\tsecond']), 'obs_fold');
  });

  test('a WebSocket upgrade goes through the same checks (obs-fold, missing Host) → 400, not 101', async () => {
    const upgrade = [
      'GET /v2/realtime/stream?access_token=x HTTP/1.1',
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
    ];
    await expectRefused(request([...upgrade, 'Host: 127.0.0.1', 'X-Folded: a', ' b']), 'obs_fold');
    await expectRefused(request(upgrade), 'missing_host');
  });

  test('a valid chunked request and a valid Content-Length request, pipelined on one connection, both succeed', async () => {
    const bytes = Buffer.concat([
      request(
        [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked'],
        chunked(event),
      ),
      request(
        [
          `POST ${PUBLISH} HTTP/1.1`,
          'Host: 127.0.0.1',
          auth,
          'Content-Type: application/json',
          `Content-Length: ${Buffer.byteLength(event)}`,
          'Connection: close',
        ],
        event,
      ),
    ]);
    const r = await exchange(server, bytes);
    assert.equal(r.responses.length, 2, r.raw.toString('latin1'));
    for (const res of r.responses) {
      assert.equal(res.status, 200, res.body);
      assert.equal(typeof res.json?.id, 'string', res.body);
    }
    assert.notEqual(r.responses[0].json.id, r.responses[1].json.id);
    assert.equal(r.ended, true);
  });

  test('HTTP/1.0 with Connection: keep-alive is answered with it and kept; without it, closed', async () => {
    const c = await conversation(server);
    const ask = ['GET /healthz HTTP/1.0', 'Connection: keep-alive'];
    c.socket.write(request(ask));
    const [first] = await c.waitFor(1);
    assert.equal(first.status, 200, first.body);
    // An HTTP/1.0 client (ApacheBench -k) that does not see it waits for the server to close.
    assert.equal(first.headers.connection, 'keep-alive');
    c.socket.write(request([`POST ${PUBLISH} HTTP/1.0`, auth, `Content-Length: ${Buffer.byteLength(event)}`, 'Connection: keep-alive'], event));
    const [, second] = await c.waitFor(2);
    assert.equal(second.status, 200, second.body);
    assert.equal(second.headers.connection, 'keep-alive');
    c.socket.destroy();
    const r = await exchange(server, request(['GET /healthz HTTP/1.0']));
    assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
    assert.equal(r.responses[0].headers.connection, 'close');
    assert.equal(r.ended, true);
  });

  test('HTTP/1.0 without Host is still served', async () => {
    const r = await exchange(server, request(['GET /healthz HTTP/1.0']));
    assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
    assert.equal(r.responses[0].status, 200, r.responses[0].body);
  });
});

// A socket that is written step by step: waitFor(n) resolves once n responses have arrived.
async function conversation(server) {
  const socket = net.connect({ host: '127.0.0.1', port: server.port });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const chunks = [];
  let wake = () => {};
  socket.on('data', (d) => {
    chunks.push(d);
    wake();
  });
  const responses = () => parseResponses(Buffer.concat(chunks));
  return {
    socket,
    responses,
    waitFor: (n) =>
      withTimeout(
        new Promise((resolve) => {
          const check = () => (responses().length >= n ? resolve(responses()) : (wake = check));
          check();
        }),
        ms(5000),
        `${n} responses`,
      ),
  };
}

describe('Expect: 100-continue (RFC 9110 10.1.1)', () => {
  let server;
  let auth;
  before(async () => {
    server = await startServer({ flags: { services: 'finance', 'max-publish-bytes': 65536 } });
    auth = `Authorization: Bearer ${server.apiKey}`;
  });
  after(async () => {
    await server?.stop();
  });

  test('a publish whose client waits for 100 Continue gets it before it sends the body, then 200', async () => {
    const c = await conversation(server);
    const head = [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Content-Type: application/json'];
    c.socket.write(request([...head, `Content-Length: ${Buffer.byteLength(event)}`, 'Expect: 100-continue']));
    const [interim] = await c.waitFor(1); // nothing of the body has been sent yet
    assert.equal(interim.status, 100);
    c.socket.write(event);
    const [, final] = await c.waitFor(2);
    assert.equal(final.status, 200, final.body);
    assert.equal(typeof final.json?.id, 'string', final.body);
    // The connection carries the next request as usual; a body sent with its head gets no 100.
    c.socket.write(request([...head, `Content-Length: ${Buffer.byteLength(event)}`, 'Expect: 100-continue'], event));
    const third = (await c.waitFor(3))[2];
    assert.equal(third.status, 200, third.body);
    c.socket.destroy();
  });

  test('a body over --max-publish-bytes announced with Expect gets 413 at once, no 100', async () => {
    const c = await conversation(server);
    c.socket.write(
      request([`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', auth, 'Content-Length: 1000000', 'Expect: 100-continue']),
    );
    const [res] = await c.waitFor(1);
    assert.equal(res.status, 413, res.body);
    assert.equal(res.json?.error, 'payload_too_large');
    c.socket.destroy();
  });
});

describe('an early answer survives a client that is still sending (lingering close)', () => {
  let server;
  before(async () => {
    server = await startServer({ flags: { services: 'finance' } });
  });
  after(async () => {
    await server?.stop();
  });

  const BODY_BYTES = 8 * 1024 * 1024;
  const body = Buffer.alloc(BODY_BYTES, 'x');

  // The client writes the whole request at once and never waits; the answer comes while most
  // of the body is still on its way. Without the lingering close the server closed with that
  // body unread, the kernel answered with a reset, and the reset destroyed the answer.
  async function expectAnswerEveryTime(head, status, code) {
    const tries = loops(20, 5);
    for (let i = 0; i < tries; i++) {
      const r = await withTimeout(exchange(server, Buffer.concat([request(head), body]), { timeout: ms(10000) }), ms(15000), `try ${i}`);
      assert.equal(
        r.responses.length,
        1,
        `try ${i}: the ${status} answer was lost (got ${r.raw.length} bytes, error ${r.error?.code})`,
      );
      assert.equal(r.responses[0].status, status, r.responses[0].body);
      assert.equal(r.responses[0].json?.error, code, r.responses[0].body);
    }
  }

  test('8 MiB POST over --max-publish-bytes → 413 received every time', async () => {
    await expectAnswerEveryTime(
      [
        `POST ${PUBLISH} HTTP/1.1`,
        'Host: 127.0.0.1',
        `Authorization: Bearer ${server.apiKey}`,
        'Content-Type: application/json',
        `Content-Length: ${BODY_BYTES}`,
      ],
      413,
      'payload_too_large',
    );
  });

  test('8 MiB body after a refused head (gzip, chunked) → 400 received every time', async () => {
    await expectAnswerEveryTime(
      [`POST ${PUBLISH} HTTP/1.1`, 'Host: 127.0.0.1', 'Transfer-Encoding: gzip, chunked'],
      400,
      'unsupported_transfer_coding',
    );
  });
});
