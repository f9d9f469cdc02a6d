// `streamgate --dev` prints shell lines a newcomer pastes as they are (README, "Try it in five
// minutes"): an export line that sets TOKEN and API_KEY, a wscat command whose URL carries $TOKEN,
// and a curl command that publishes with $API_KEY. Here bash runs them (wscat's URL is printed
// instead of opened, and the ws client subscribes with it), so the hints can't drift from what
// works.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { ms, waitFor } from './support/env.mjs';
import { startServer } from './support/server.mjs';
import { Client, WebSocket } from './support/ws.mjs';

function bash(script) {
  return execFileSync('bash', ['-c', script], { encoding: 'utf8', timeout: ms(10000) });
}

test('--dev prints export, wscat and curl lines that work when pasted', async (t) => {
  const server = await startServer({ flags: { dev: true, 'jwt-secret': null, 'api-key': null } });
  t.after(() => server.stop());
  await waitFor(() => server.stdoutText.includes('/v2/realtime/publish\n'), { what: 'the --dev hints' });

  const lines = server.stdoutText.split('\n').map((l) => l.trim());
  const exportLine = lines.find((l) => l.startsWith('export TOKEN='));
  const wscat = 'npx --yes wscat -c ';
  const wscatLine = lines.find((l) => l.startsWith(wscat));
  const curlLine = lines.find((l) => l.startsWith('curl '));
  assert.ok(exportLine && wscatLine && curlLine, `hints:\n${server.stdoutText}`);
  assert.match(exportLine, /^export TOKEN='[^']+' API_KEY='[0-9a-f]{64}'$/);

  const url = bash(`${exportLine}; printf %s ${wscatLine.slice(wscat.length)}`);
  assert.match(url, new RegExp(`^ws://127\\.0\\.0\\.1:${server.port}/v2/realtime/stream\\?access_token=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`));
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const client = new Client(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  client.send({ services: ['finance'], version: 1 });
  await client.next((m) => m.type === 'ack', { what: 'the ack' });

  const reply = JSON.parse(bash(`${exportLine}; ${curlLine}`));
  assert.equal(typeof reply.id, 'string', JSON.stringify(reply));
  const event = await client.next((m) => m.type === 'event', { what: 'the published event' });
  assert.equal(event.id, reply.id);
  assert.equal(event.event, 'invoice.paid');
  assert.deepEqual(event.data, { amount: 42 });
  await client.close();
});
