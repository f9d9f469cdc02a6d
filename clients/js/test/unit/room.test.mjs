// client.room(): chat on the shared socket, against scripted sockets and a virtual clock. One tab
// alone, then two tabs whose follower chats through the leader's socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealtimeClient } from '../../dist/index.js';
import { BusNetwork, FakeClock, FakeLocks, makeEnv, settle, tokenSource } from './fakes.mjs';

const URL_ = 'wss://rt.example.com/v2/realtime/stream';

function openTab(shared, options = {}) {
  const env = makeEnv({ ...shared, random: Math.random });
  const client = new RealtimeClient({
    url: URL_,
    getToken: tokenSource().getToken,
    platform: env.platform,
    ...options,
  });
  return { env, client };
}

function record(room) {
  const seen = [];
  for (const type of ['message', 'joined', 'left', 'typing', 'error', 'state']) {
    room.on(type, (v) => seen.push([type, type === 'message' ? v.text : type === 'error' ? v.code : (v.user ?? v)]));
  }
  return seen;
}

const chat = (socket) => socket.sent.filter((m) => ['join', 'leave', 'message', 'typing', 'history'].includes(m.type));

function roomEvent(socket, room, event, data, id) {
  socket.seq = (socket.seq ?? 0) + 1;
  socket.receive({ type: 'event', seq: socket.seq, service: `room:${room}`, id, event, data, timestamp: 't' });
}

test('a room joins, receives messages and presence, sends, types and pages history', async () => {
  const { env, client } = openTab({}, { election: 'none' });
  const room = client.room('general');
  assert.equal(client.room('general'), room, 'one object per name');
  assert.throws(() => client.room('bad name'), TypeError);
  const seen = record(room);
  await settle();
  const ws = env.lastSocket();
  ws.open();
  ws.ack();
  room.join({ history: 5 });
  assert.deepEqual(chat(ws), [{ type: 'join', room: 'general', history: 5 }]);
  ws.receive({ type: 'joined', room: 'general', timestamp: 't' });
  assert.equal(room.state, 'joined');
  roomEvent(ws, 'general', 'chat.message', { user: 'bob', text: 'hi', clientMessageId: 'b-1' }, 'r-1');
  roomEvent(ws, 'general', 'chat.joined', { user: 'carol' });
  roomEvent(ws, 'general', 'chat.typing', { user: 'carol' });
  roomEvent(ws, 'general', 'chat.left', { user: 'bob' });
  roomEvent(ws, 'other', 'chat.message', { user: 'x', text: 'elsewhere', clientMessageId: 'x' }, 'r-1');

  const sending = room.send('hello');
  const sent = chat(ws).at(-1);
  assert.equal(sent.type, 'message');
  assert.equal(sent.text, 'hello');
  assert.match(sent.clientMessageId, /^[0-9a-f]{32}$/);
  ws.receive({ type: 'sent', room: 'general', clientMessageId: sent.clientMessageId, id: 'r-2', duplicate: false });
  assert.deepEqual(await sending, { id: 'r-2', clientMessageId: sent.clientMessageId, duplicate: false });

  room.typing();
  room.typing(); // throttled
  assert.deepEqual(
    chat(ws).filter((m) => m.type === 'typing'),
    [{ type: 'typing', room: 'general' }],
  );

  const paging = room.history({ before: 'r-2', limit: 10 });
  assert.deepEqual(chat(ws).at(-1), { type: 'history', room: 'general', before: 'r-2', limit: 10 });
  const stored = { service: 'room:general', id: 'r-1', event: 'chat.message', timestamp: 't' };
  ws.receive({
    type: 'history',
    room: 'general',
    events: [{ ...stored, data: { user: 'bob', text: 'hi', clientMessageId: 'b-1' } }],
    more: false,
  });
  assert.deepEqual(await paging, {
    messages: [{ id: 'r-1', user: 'bob', text: 'hi', clientMessageId: 'b-1', timestamp: 't' }],
    more: false,
  });

  const refused = room.send('x'.repeat(5000));
  const big = chat(ws).at(-1);
  ws.receive({
    type: 'error',
    code: 'message_too_large',
    message: '…',
    room: 'general',
    clientMessageId: big.clientMessageId,
  });
  await assert.rejects(refused, (e) => e.code === 'message_too_large');

  room.leave();
  assert.deepEqual(chat(ws).at(-1), { type: 'leave', room: 'general' });
  assert.equal(room.state, 'left');
  await assert.rejects(room.send('late'), (e) => e.code === 'not_joined');
  assert.deepEqual(seen, [
    ['state', 'joining'],
    ['state', 'joined'],
    ['message', 'hi'],
    ['joined', 'carol'],
    ['typing', 'carol'],
    ['left', 'bob'],
    ['error', 'message_too_large'],
    ['state', 'left'],
  ]);
  client.close();
});

test('after a reconnect the room rejoins and an unconfirmed send goes again with the same id', async () => {
  const { env, client } = openTab({}, { election: 'none', reconnect: { baseDelayMs: 10, maxDelayMs: 10 } });
  const room = client.room('general');
  const seen = record(room);
  await settle();
  const first = env.lastSocket();
  first.open();
  first.ack();
  room.join();
  first.receive({ type: 'joined', room: 'general', timestamp: 't' });
  const sending = room.send('once');
  const original = chat(first).at(-1);
  // The message was stored and delivered, but the connection died before its `sent`.
  roomEvent(
    first,
    'general',
    'chat.message',
    { user: 'me', text: 'once', clientMessageId: original.clientMessageId },
    'r-9',
  );
  first.serverClose(1006);
  assert.equal(room.state, 'joining');
  await env.clock.advance(1000);
  const second = env.lastSocket();
  assert.notEqual(second, first);
  second.open();
  second.ack();
  assert.deepEqual(chat(second), [{ type: 'join', room: 'general' }, original]);
  second.receive({ type: 'joined', room: 'general', timestamp: 't' });
  // The join's history replays the message: seen already, not dispatched again.
  roomEvent(
    second,
    'general',
    'chat.message',
    { user: 'me', text: 'once', clientMessageId: original.clientMessageId },
    'r-9',
  );
  second.receive({
    type: 'sent',
    room: 'general',
    clientMessageId: original.clientMessageId,
    id: 'r-9',
    duplicate: true,
  });
  assert.deepEqual(await sending, { id: 'r-9', clientMessageId: original.clientMessageId, duplicate: true });
  assert.deepEqual(
    seen.filter(([type]) => type === 'message'),
    [['message', 'once']],
  );
  assert.equal(room.state, 'joined');
  client.close();
});

test('a follower tab chats through the leader; one tab leaving keeps the other in; pages go to who asked', async () => {
  const shared = { clock: new FakeClock(), network: new BusNetwork(), lockManager: new FakeLocks() };
  const a = openTab(shared);
  await settle();
  const b = openTab(shared);
  await settle();
  assert.equal(a.client.isLeader, true);
  assert.equal(b.client.isLeader, false);
  const ws = a.env.lastSocket();
  ws.open();
  ws.ack();
  await settle();
  const ra = a.client.room('general');
  const rb = b.client.room('general');
  const seenA = record(ra);
  const seenB = record(rb);
  rb.join();
  await settle();
  assert.deepEqual(chat(ws), [{ type: 'join', room: 'general' }]);
  ws.receive({ type: 'joined', room: 'general', timestamp: 't' });
  await settle();
  assert.equal(rb.state, 'joined');
  assert.equal(ra.state, 'idle', 'a tab that did not join stays out');
  roomEvent(ws, 'general', 'chat.message', { user: 'bob', text: 'to b', clientMessageId: 'x' }, 'r-1');
  await settle();
  assert.deepEqual(
    seenB.filter(([t]) => t === 'message'),
    [['message', 'to b']],
  );
  assert.deepEqual(seenA, []);

  const sendingB = rb.send('from b');
  await settle();
  const msg = chat(ws).at(-1);
  assert.equal(msg.text, 'from b');
  ws.receive({ type: 'sent', room: 'general', clientMessageId: msg.clientMessageId, id: 'r-2', duplicate: false });
  await settle();
  assert.equal((await sendingB).id, 'r-2');

  ra.join();
  await settle();
  ws.receive({ type: 'joined', room: 'general', timestamp: 't' });
  // Two tabs ask for history at once; the server answers in order.
  const pageB = rb.history({ limit: 1 });
  await settle();
  const pageA = ra.history({ limit: 2 });
  await settle();
  assert.deepEqual(
    chat(ws).filter((m) => m.type === 'history'),
    [
      { type: 'history', room: 'general', limit: 1 },
      { type: 'history', room: 'general', limit: 2 },
    ],
  );
  const ev = (id) => ({ service: 'room:general', id, event: 'chat.message', data: { text: id }, timestamp: 't' });
  ws.receive({ type: 'history', room: 'general', events: [ev('r-2')], more: true });
  ws.receive({ type: 'history', room: 'general', events: [ev('r-1'), ev('r-2')], more: false });
  await settle();
  assert.deepEqual(
    (await pageB).messages.map((m) => m.id),
    ['r-2'],
  );
  assert.deepEqual(
    (await pageA).messages.map((m) => m.id),
    ['r-1', 'r-2'],
  );

  rb.leave();
  await settle();
  assert.equal(rb.state, 'left');
  assert.ok(!chat(ws).some((m) => m.type === 'leave'), 'the leader stays in for tab a');
  ra.leave();
  await settle();
  assert.deepEqual(chat(ws).at(-1), { type: 'leave', room: 'general' });
  a.client.close();
  b.client.close();
});

test('a refused join puts the room in error; open but unable to send (SSE) reports chat_unavailable', async () => {
  const { env, client } = openTab({}, { election: 'none' });
  await settle();
  const ws = env.lastSocket();
  ws.open();
  ws.ack();
  const secret = client.room('secret');
  const seen = record(secret);
  secret.join();
  ws.receive({ type: 'error', code: 'forbidden_room', message: 'no', room: 'secret' });
  assert.equal(secret.state, 'error');
  assert.deepEqual(seen.at(-1), ['error', 'forbidden_room']);

  client.sendToSocket = () => false; // what a transport that can't send looks like
  const general = client.room('general');
  general.join();
  assert.equal(general.state, 'error');
  await assert.rejects(general.send('x'), (e) => e.code === 'not_joined');
  assert.deepEqual(record(general), []);
  client.close();
});
