// Chat limits, each with its flag: message size, per-user message rate (error frame, the
// connection stays), rooms per connection, members per room, typing interval 0. Every refusal
// is an error frame naming the room; nothing else about the connection changes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { unique } from './support/env.mjs';
import { promValue } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import { chatClient, expectRoomError, join, nextRoomEvent, roomEventsUntil, roomGetOk, say } from './support/chat.mjs';
import { closeAll } from './support/ws.mjs';

async function pingPong(client) {
  client.send({ type: 'ping' });
  await client.next((m) => m.type === 'pong');
}

describe('chat limits', () => {
  let server;
  before(async () => {
    server = await startServer({
      flags: {
        'chat-max-bytes': 10,
        'chat-burst': 3,
        // One token a minute: nothing refills during the test.
        'chat-messages-per-minute': 1,
        'chat-max-rooms': 2,
        'chat-max-members': 2,
        'chat-typing-interval': 0,
      },
    });
  });
  after(async () => {
    await server?.stop();
  });

  test('--chat-max-bytes: longer text gets message_too_large, counted in UTF-8 bytes', async () => {
    const c = await chatClient(server, { org: unique('o'), user: 'u' });
    await join(c, 'r');
    await say(c, 'r', '\u00e9'.repeat(5), 'fits'); // 10 bytes
    c.send({ type: 'message', room: 'r', text: '\u00e9'.repeat(6), clientMessageId: 'big' });
    const err = await expectRoomError(c, 'r', 'message_too_large');
    assert.equal(err.clientMessageId, 'big');
    await pingPong(c);
    const stats = await roomGetOk(server, 'r', 'stats', c.token);
    assert.equal(stats.messagesTotal, 1);
    await c.close();
  });

  test('--chat-burst/--chat-messages-per-minute: over the bucket gets rate_limited, per user, not a disconnect', async () => {
    const org = unique('o');
    const tab1 = await chatClient(server, { org, user: 'chatty' });
    const tab2 = await chatClient(server, { org, user: 'chatty' });
    const other = await chatClient(server, { org, user: 'other' });
    await join(tab1, 'r');
    await join(tab2, 'r');
    await join(other, 'r');
    await say(tab1, 'r', '1', 'c1');
    await say(tab2, 'r', '2', 'c2');
    await say(tab1, 'r', '3', 'c3');
    // The user's fourth message, from either tab, is over the burst.
    tab2.send({ type: 'message', room: 'r', text: '4', clientMessageId: 'c4' });
    assert.equal((await expectRoomError(tab2, 'r', 'rate_limited')).clientMessageId, 'c4');
    tab1.send({ type: 'message', room: 'r', text: '5', clientMessageId: 'c5' });
    await expectRoomError(tab1, 'r', 'rate_limited');
    await pingPong(tab1);
    assert.ok(tab1.isOpen && tab2.isOpen);
    assert.equal(await promValue(server, 'streamgate_chat_refusals_total', { reason: 'rate_limited' }), 2);
    // Another user is not limited by it.
    await say(other, 'r', 'mine', 'o1');
    const seen = await roomEventsUntil(other, 'r', 'o1');
    assert.deepEqual(seen.filter((m) => m.event === 'chat.message').map((m) => m.data.text), ['1', '2', '3', 'mine']);
    await closeAll([tab1, tab2, other]);
  });

  test('--chat-max-rooms: a third room gets too_many_rooms; leaving makes space', async () => {
    const c = await chatClient(server, { org: unique('o'), user: 'u' });
    await join(c, 'a');
    await join(c, 'b');
    c.send({ type: 'join', room: 'c' });
    await expectRoomError(c, 'c', 'too_many_rooms');
    await pingPong(c);
    c.send({ type: 'leave', room: 'a' });
    await c.next((m) => m.type === 'left');
    await join(c, 'c');
    await c.close();
  });

  test('--chat-max-members: a new user beyond it gets room_full; a member\'s tab still gets in', async () => {
    const org = unique('o');
    const a = await chatClient(server, { org, user: 'a' });
    const b = await chatClient(server, { org, user: 'b' });
    const c = await chatClient(server, { org, user: 'c' });
    const a2 = await chatClient(server, { org, user: 'a' });
    await join(a, 'r');
    await join(b, 'r');
    c.send({ type: 'join', room: 'r' });
    await expectRoomError(c, 'r', 'room_full');
    await join(a2, 'r');
    const online = await roomGetOk(server, 'r', 'online', a.token);
    assert.deepEqual(online.users.map((u) => [u.userId, u.connections]), [['a', 2], ['b', 1]]);
    // c was never a member: sending there is refused, and c still chats elsewhere.
    c.send({ type: 'message', room: 'r', text: 'x', clientMessageId: 'x' });
    await expectRoomError(c, 'r', 'not_joined');
    await join(c, 'elsewhere');
    // When b leaves, c fits.
    await b.close();
    await nextRoomEvent(a, 'r', 'chat.left');
    await join(c, 'r');
    await closeAll([a, a2, c]);
  });

  test('--chat-typing-interval 0 relays every typing message', async () => {
    const org = unique('o');
    const a = await chatClient(server, { org, user: 'a' });
    const b = await chatClient(server, { org, user: 'b' });
    await join(a, 'r');
    await join(b, 'r');
    for (let i = 0; i < 3; i += 1) a.send({ type: 'typing', room: 'r' });
    await say(a, 'r', 'x', 'done');
    const events = await roomEventsUntil(b, 'r', 'done');
    assert.equal(events.filter((m) => m.event === 'chat.typing').length, 3);
    await closeAll([a, b]);
  });
});
