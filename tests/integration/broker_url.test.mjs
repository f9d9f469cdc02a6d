// The --broker URL can carry a Redis password; it must never reach the logs.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startServer } from './support/server.mjs';

// A loopback port with nothing listening: the Redis broker keeps redialling it, and the server
// still starts (reporting not ready), which is all this test needs.
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

test('a Redis password in --broker never appears in the logs', async () => {
  const password = 'hunter2-redis-password-xyz';
  const port = await closedPort();
  const server = await startServer({ flags: { broker: `redis://:${password}@127.0.0.1:${port}/0` } });
  try {
    const listening = server.logs().find((l) => l.message === 'listening');
    assert.ok(listening, 'a listening line');
    assert.equal(listening.broker, `redis://[redacted]@127.0.0.1:${port}/0`);
  } finally {
    await server.stop();
  }
  assert.ok(!server.stderrText.includes(password), 'the password is not in stderr');
});
