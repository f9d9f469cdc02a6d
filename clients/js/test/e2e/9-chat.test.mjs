// Scenario 9: chat with client.room(). Two tabs of alice share one socket (through a proxy) and a
// tab of bob has its own. Messages, presence, typing and history reach the right tabs; the
// follower tab chats through the leader; and a send whose `sent` the network lost (the proxy cuts
// the connection right there) is sent again after the reconnect and arrives once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Streamgate, WebServer, launchBrowser, waitFor } from './support/harness.mjs';
import { startCuttingProxy } from './support/proxy.mjs';

let server;
let web;
let browser;
let proxy;
let armed = false;

before(async () => {
  [server, web, browser] = await Promise.all([Streamgate.start(), WebServer.start(), launchBrowser()]);
  proxy = await startCuttingProxy(
    server.port,
    (direction, chunk) => armed && direction === 'down' && chunk.includes('"type":"sent"'),
  );
});

after(async () => {
  await browser?.close();
  await web?.close();
  await proxy?.close();
  await server?.stop();
});

// Joins `lobby` in the tab and records what the room reports in window.sg.chat.
function joinLobby(page) {
  return page.evaluate(() => {
    const room = window.sg.client.room('lobby');
    const chat = { messages: [], joined: [], left: [], typing: [], errors: [], states: [] };
    window.sg.chat = chat;
    window.sg.room = room;
    room.on('message', (m) => chat.messages.push(m));
    room.on('joined', (p) => chat.joined.push(p.user));
    room.on('left', (p) => chat.left.push(p.user));
    room.on('typing', (p) => chat.typing.push(p.user));
    room.on('error', (e) => chat.errors.push(e.code));
    room.on('state', (s) => chat.states.push(s));
    room.join();
  });
}

const chatOf = (page) => page.evaluate(() => window.sg.chat);
const texts = async (page) => (await chatOf(page)).messages.map((m) => m.text);

async function until(page, probe, what) {
  await waitFor(async () => probe(await chatOf(page)), { what, describe: () => chatOf(page) });
}

test('two tabs chat through one socket; a send retried across a reconnect arrives once', async () => {
  const viaProxy = `ws://127.0.0.1:${proxy.port}/v2/realtime/stream`;
  const a = await browser.newTab(web.tabUrl({ ws: viaProxy, org: 109, user: 'alice', services: '', name: 'alice' }));
  await waitFor(() => a.evaluate(() => window.sg.client.isLeader && window.sg.client.state === 'open'), {
    what: 'tab a leads, open',
  });
  const b = await browser.newTab(web.tabUrl({ ws: viaProxy, org: 109, user: 'alice', services: '', name: 'alice' }));
  await waitFor(() => b.evaluate(() => window.sg.client.state === 'open'), { what: 'tab b open' });
  assert.equal(await b.evaluate(() => window.sg.client.isLeader), false, 'tab b follows');

  await joinLobby(a);
  await joinLobby(b);
  for (const page of [a, b]) await until(page, (c) => c.states.at(-1) === 'joined', 'alice joined');

  // Bob, another user with his own socket, joins: both of alice's tabs see him arrive.
  const c = await browser.newTab(web.tabUrl({ ws: server.wsUrl, org: 109, user: 'bob', services: '', name: 'bob' }));
  await waitFor(() => c.evaluate(() => window.sg.client.state === 'open'), { what: 'tab c open' });
  await joinLobby(c);
  await until(c, (ch) => ch.states.at(-1) === 'joined', 'bob joined');
  for (const page of [a, b]) await until(page, (ch) => ch.joined.includes('bob'), 'bob’s arrival');

  // A message from bob, and one from the follower tab b: every tab sees each once.
  await c.evaluate(() => window.sg.room.send('hi from bob'));
  const sent = await b.evaluate(() => window.sg.room.send('hi from alice'));
  assert.equal(sent.duplicate, false);
  for (const page of [a, b, c]) {
    await until(page, (ch) => ch.messages.length >= 2, 'two messages');
    assert.deepEqual(await texts(page), ['hi from bob', 'hi from alice']);
  }
  const fromAlice = (await chatOf(c)).messages[1];
  assert.equal(fromAlice.user, 'alice');
  assert.equal(fromAlice.id, sent.id);

  // Typing in the follower tab reaches bob.
  await b.evaluate(() => window.sg.room.typing());
  await until(c, (ch) => ch.typing.includes('alice'), 'alice typing');

  // History, asked by the follower tab, comes back to it.
  const page = await b.evaluate(() => window.sg.room.history({ limit: 10 }));
  assert.deepEqual(
    page.messages.map((m) => m.text),
    ['hi from bob', 'hi from alice'],
  );

  // The next `sent` on alice's socket is lost with the connection: the send goes again.
  armed = true;
  const retried = await b.evaluate(() => window.sg.room.send('sent twice, stored once'));
  assert.equal(proxy.cuts, 1, 'the proxy cut the connection at the sent frame');
  assert.equal(retried.duplicate, true, 'the server recognised the retry');
  await c.evaluate(() => window.sg.room.send('after'));
  for (const p of [a, b, c]) {
    await until(p, (ch) => ch.messages.some((m) => m.text === 'after'), '"after"');
    assert.deepEqual(await texts(p), ['hi from bob', 'hi from alice', 'sent twice, stored once', 'after']);
  }
  const stored = await c.evaluate(() => window.sg.room.history({ limit: 10 }));
  assert.equal(stored.messages.filter((m) => m.text === 'sent twice, stored once').length, 1);
  assert.ok((await chatOf(a)).states.includes('joining'), 'the rooms rejoined after the cut');

  // Alice is in the room while either tab is; she leaves with the last.
  const leftBefore = (await chatOf(c)).left.length;
  await b.evaluate(() => window.sg.room.leave());
  await c.evaluate(() => window.sg.room.send('still there?'));
  await until(a, (ch) => ch.messages.some((m) => m.text === 'still there?'), 'tab a still in the room');
  assert.equal((await chatOf(c)).left.length, leftBefore);
  await a.evaluate(() => window.sg.room.leave());
  await until(c, (ch) => ch.left.length > leftBefore && ch.left.at(-1) === 'alice', 'alice left with her last tab');
  for (const p of [a, b, c]) assert.deepEqual((await chatOf(p)).errors, []);
  await Promise.all([a.close(), b.close(), c.close()]);
});
