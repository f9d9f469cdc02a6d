// The close frame survives a client that is still sending: after closing a connection for a
// protocol error the server sends FIN and reads and drops what the client still sends (for up to
// 2 s and 16 MiB) instead of closing with unread input, whose RST would destroy the close frame in
// the client's receive buffer. A `ws` client sending a message far over --max-message-bytes must
// see 1009, never 1006, however big the message.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ms } from './support/env.mjs';
import { startServer } from './support/server.mjs';
import { Client, WebSocket, connect, tokenFor } from './support/ws.mjs';

const MiB = 1 << 20;

// One try: a fresh connection sends `payload` as one text message and reports its close code.
// The all-zero masking key is as valid as any (RFC 6455 §5.3) and spares `ws` masking 64 MiB in
// JavaScript (over a second per message), which would dominate the file's run time.
async function closeCodeFor(server, payload, first) {
  const url = `${server.wsUrl}?access_token=${encodeURIComponent(tokenFor(server, { user: 'linger' }))}`;
  const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: (mask) => mask.fill(0) });
  const client = new Client(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  if (first !== undefined) ws.send(first);
  ws.send(payload, { binary: false });
  const { code } = await client.waitClose(ms(15000));
  return code;
}

describe('lingering close after a protocol error', () => {
  let server;
  let bigServer;
  before(async () => {
    server = await startServer({ flags: { 'max-message-bytes': 65536, workers: 1 } });
    bigServer = await startServer({ flags: { 'max-message-bytes': 16 * MiB, workers: 1 } });
  });
  after(async () => {
    await server.stop();
    await bigServer.stop();
  });

  // 1 MiB and 10 MiB end cleanly: the server reads the rest of the message and the client's
  // close frame, then EOF. 64 MiB passes the server's 16 MiB reading bound, so each try waits
  // out the 2 s linger before the close; its 20 tries run 5 at a time to keep the file fast.
  for (const [size, tries, width] of [
    [1 * MiB, 20, 1],
    [10 * MiB, 20, 1],
    [64 * MiB, 20, 5],
  ]) {
    test(`a ${size / MiB} MiB message over a 64 KiB limit → 1009, ${tries} of ${tries} times`, { timeout: ms(60000) }, async () => {
      const payload = Buffer.alloc(size, 0x61);
      const codes = [];
      for (let i = 0; i < tries; i += width) {
        const round = Array.from({ length: Math.min(width, tries - i) }, () => closeCodeFor(server, payload));
        codes.push(...(await Promise.all(round)));
      }
      assert.deepEqual(codes, new Array(tries).fill(1009));
    });
  }

  test('a 10 MiB message whose first bytes are invalid UTF-8 → 1007, 20 of 20 times', { timeout: ms(60000) }, async () => {
    // The limit is raised past the message for this one: the decoder stops at the bad byte.
    const payload = Buffer.alloc(10 * MiB, 0x61);
    payload[0] = 0xff;
    const codes = [];
    for (let i = 0; i < 20; i += 1) codes.push(await closeCodeFor(bigServer, payload));
    assert.deepEqual(codes, new Array(20).fill(1007));
  });

  test('a message the server refuses (1008) followed by a 10 MiB one → 1008, 20 of 20 times', { timeout: ms(60000) }, async () => {
    // The server answers the first message with an error frame and close 1008, then waits for
    // the client's close frame; the oversized message that follows breaks the protocol there.
    const payload = Buffer.alloc(10 * MiB, 0x61);
    const codes = [];
    for (let i = 0; i < 20; i += 1) codes.push(await closeCodeFor(server, payload, '{"type":"nonsense"}'));
    assert.deepEqual(codes, new Array(20).fill(1008));
  });

  test('the server is still fine afterwards', async () => {
    const client = await connect(server, { token: tokenFor(server, { user: 'after' }) });
    client.send({ services: ['finance'], version: 1 });
    const ack = await client.next((m) => m.type === 'ack');
    assert.equal(ack.seq, 0);
    await client.close();
  });
});
