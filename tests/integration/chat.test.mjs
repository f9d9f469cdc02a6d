// Chat rooms over the unified stream with the embedded broker: two users see one order;
// presence counts a user's tabs once; typing is relayed and never stored; history on join and
// paging; a retried clientMessageId is stored once; rooms are per org; the online and stats
// endpoints check the token. Limits have their own server in chat_limits.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EVENT_ID, RFC3339, parseEventId, unique, waitFor } from './support/env.mjs';
import { publish } from './support/http.mjs';
import { startServer } from './support/server.mjs';
import {
  chatClient,
  expectRoomError,
  join,
  nextRoomEvent,
  roomEventsUntil,
  roomGet,
  roomGetOk,
  roomService,
  say,
} from './support/chat.mjs';
import { closeAll, connect, openStream, tokenFor } from './support/ws.mjs';

const CHAT_HISTORY = 5;

describe('chat rooms', () => {
  let server;
  before(async () => {
    // A long typing interval makes "one typing notice per interval" independent of timing.
    server = await startServer({ flags: { 'chat-history': CHAT_HISTORY, 'chat-typing-interval': 60000 } });
  });
  after(async () => {
    await server?.stop();
  });

  test('two users exchange messages and both see the same order', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    await join(alice, 'general');
    await join(bob, 'general');
    // Both send at once, interleaved on the wire.
    const sends = [];
    for (let i = 0; i < 5; i += 1) {
      sends.push(say(alice, 'general', `from alice ${i}`, `a-${i}`));
      sends.push(say(bob, 'general', `from bob ${i}`, `b-${i}`));
    }
    const sent = await Promise.all(sends);
    const pick = (m) => ({ id: m.id, user: m.data.user, text: m.data.text, cmid: m.data.clientMessageId });
    const seenByAlice = (await alice.collect(10, (m) => m.type === 'event' && m.event === 'chat.message')).map(pick);
    const seenByBob = (await bob.collect(10, (m) => m.type === 'event' && m.event === 'chat.message')).map(pick);
    assert.deepEqual(seenByAlice, seenByBob);
    // Ids are the room's offsets: increasing by one, in delivery order.
    const offsets = seenByAlice.map((m) => parseEventId(m.id).offset);
    assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i));
    // Each sender's own messages keep their order, and the "sent" ids match the events.
    assert.deepEqual(seenByAlice.filter((m) => m.user === 'alice').map((m) => m.text), [0, 1, 2, 3, 4].map((i) => `from alice ${i}`));
    const idByCmid = Object.fromEntries(seenByAlice.map((m) => [m.cmid, m.id]));
    for (const s of sent) {
      assert.equal(s.room, 'general');
      assert.equal(s.duplicate, false);
      assert.equal(idByCmid[s.clientMessageId], s.id);
    }
    await closeAll([alice, bob]);
  });

  test('a message is an ordinary event frame stamped by the server', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    await join(alice, 'general');
    const before_ = Date.now();
    const sent = await say(alice, 'general', 'h\u00e9llo "world"\n', 'm-1');
    const m = await nextRoomEvent(alice, 'general', 'chat.message');
    assert.deepEqual(Object.keys(m).sort(), ['data', 'event', 'id', 'seq', 'service', 'timestamp', 'type']);
    assert.equal(m.service, roomService('general'));
    assert.equal(m.id, sent.id);
    assert.match(m.id, EVENT_ID);
    assert.ok(Number.isInteger(m.seq) && m.seq >= 1);
    assert.deepEqual(m.data, { user: 'alice', text: 'h\u00e9llo "world"\n', clientMessageId: 'm-1' });
    assert.match(m.timestamp, RFC3339);
    assert.ok(Math.abs(Date.parse(m.timestamp) - before_) < 60000);
    await alice.close();
  });

  test('presence: joined and left once per user, however many tabs', async () => {
    const org = unique('o');
    const bob = await chatClient(server, { org, user: 'bob' });
    await join(bob, 'general');
    const tabs = [];
    for (let i = 0; i < 3; i += 1) {
      tabs.push(await chatClient(server, { org, user: 'alice' }));
      await join(tabs[i], 'general');
    }
    // A sentinel from the third tab comes after any presence event the tabs caused.
    await say(tabs[2], 'general', 'all tabs in', 'sentinel-1');
    let events = await roomEventsUntil(bob, 'general', 'sentinel-1');
    // Members hear their own joined too (bob's comes first); alice's three tabs make one.
    const joined = events.filter((m) => m.event === 'chat.joined');
    assert.deepEqual(joined.map((m) => m.data), [{ user: 'bob' }, { user: 'alice' }], JSON.stringify(events));
    assert.equal('id' in joined[1], false, 'presence events are not stored: no id');
    assert.match(joined[1].timestamp, RFC3339);

    let online = await roomGetOk(server, 'general', 'online', bob.token);
    assert.deepEqual(online.users.map((u) => [u.userId, u.connections]), [['alice', 3], ['bob', 1]]);
    for (const u of online.users) assert.match(u.since, RFC3339);

    // Two tabs go: alice is still there, nobody hears she left.
    await closeAll([tabs[0], tabs[1]]);
    await waitFor(async () => {
      online = await roomGetOk(server, 'general', 'online', bob.token);
      return online.users.find((u) => u.userId === 'alice')?.connections === 1;
    }, { what: 'alice down to one connection' });
    await say(tabs[2], 'general', 'one tab left', 'sentinel-2');
    events = await roomEventsUntil(bob, 'general', 'sentinel-2');
    assert.deepEqual(events.filter((m) => m.event !== 'chat.message'), []);

    // The last tab goes: one chat.left.
    await tabs[2].close();
    const left = await nextRoomEvent(bob, 'general', 'chat.left');
    assert.deepEqual(left.data, { user: 'alice' });
    online = await roomGetOk(server, 'general', 'online', bob.token);
    assert.deepEqual(online.users.map((u) => u.userId), ['bob']);
    await bob.close();
  });

  test('leave answers "left", stops delivery and is announced', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    await join(alice, 'general');
    await join(bob, 'general');
    alice.send({ type: 'leave', room: 'general' });
    assert.deepEqual(await alice.next((m) => m.type === 'left'), { type: 'left', room: 'general' });
    assert.deepEqual((await nextRoomEvent(bob, 'general', 'chat.left')).data, { user: 'alice' });
    await say(bob, 'general', 'after alice left', 'after');
    // alice no longer receives the room, and may not post to it.
    alice.send({ type: 'message', room: 'general', text: 'x', clientMessageId: 'late' });
    const refused = await expectRoomError(alice, 'general', 'not_joined');
    assert.equal(refused.clientMessageId, 'late');
    assert.equal(alice.received.some((m) => m.type === 'event' && m.data?.clientMessageId === 'after'), false);
    // Leaving a room one is not in is not an error.
    alice.send({ type: 'leave', room: 'elsewhere' });
    assert.deepEqual(await alice.next((m) => m.type === 'left'), { type: 'left', room: 'elsewhere' });
    await closeAll([alice, bob]);
  });

  test('typing is relayed to the members, rate limited, and never stored', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    await join(alice, 'general');
    await join(bob, 'general');
    for (let i = 0; i < 3; i += 1) alice.send({ type: 'typing', room: 'general' });
    await say(alice, 'general', 'done typing', 'typed');
    const events = await roomEventsUntil(bob, 'general', 'typed');
    const typing = events.filter((m) => m.event === 'chat.typing');
    assert.equal(typing.length, 1, `one typing notice per --chat-typing-interval: ${JSON.stringify(events)}`);
    assert.deepEqual(typing[0].data, { user: 'alice' });
    assert.equal('id' in typing[0], false);
    // Not in history: neither a page nor a newcomer's join sees it.
    bob.send({ type: 'history', room: 'general' });
    const page = await bob.next((m) => m.type === 'history');
    assert.deepEqual(page.events.map((e) => e.event), ['chat.message']);
    const carol = await chatClient(server, { org, user: 'carol' });
    await join(carol, 'general');
    await say(carol, 'general', 'hi', 'carol-1');
    const replay = await roomEventsUntil(carol, 'general', 'carol-1');
    assert.deepEqual(replay.map((m) => m.event), ['chat.message', 'chat.joined', 'chat.message']);
    // Typing in a room one has not joined is refused.
    carol.send({ type: 'typing', room: 'other' });
    await expectRoomError(carol, 'other', 'not_joined');
    await closeAll([alice, bob, carol]);
  });

  test('history: the last --chat-history messages on join, fewer on request, then paging back', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    await join(alice, 'general');
    const ids = [];
    for (let i = 1; i <= 8; i += 1) ids.push((await say(alice, 'general', `m${i}`, `m${i}`)).id);

    const bob = await chatClient(server, { org, user: 'bob' });
    const joined = await join(bob, 'general');
    const replay = await bob.collect(CHAT_HISTORY, (m) => m.type === 'event' && m.event === 'chat.message');
    assert.deepEqual(replay.map((m) => m.data.text), ['m4', 'm5', 'm6', 'm7', 'm8']);
    assert.deepEqual(replay.map((m) => m.id), ids.slice(3));
    // The joined frame comes first, then the history, then live events.
    const order = bob.received.filter((m) => m.type === 'joined' || m.type === 'event');
    assert.equal(order[0], joined);

    const carol = await chatClient(server, { org, user: 'carol' });
    await join(carol, 'general', { history: 2 });
    await say(carol, 'general', 'live', 'live-1');
    const carolSees = (await roomEventsUntil(carol, 'general', 'live-1')).filter((m) => m.event === 'chat.message');
    assert.deepEqual(carolSees.map((m) => m.data.text), ['m7', 'm8', 'live']);

    // Paging back from the oldest message bob has.
    bob.send({ type: 'history', room: 'general', before: replay[0].id, limit: 2 });
    let page = await bob.next((m) => m.type === 'history');
    assert.equal(page.room, 'general');
    assert.deepEqual(page.events.map((e) => e.data.text), ['m2', 'm3']);
    assert.deepEqual(page.events.map((e) => e.id), ids.slice(1, 3));
    assert.equal(page.events[0].service, roomService('general'));
    assert.equal(page.more, true);
    bob.send({ type: 'history', room: 'general', before: page.events[0].id, limit: 100 });
    page = await bob.next((m) => m.type === 'history');
    assert.deepEqual(page.events.map((e) => e.data.text), ['m1']);
    assert.equal(page.more, false);
    // Without "before": the newest, at most --chat-history.
    bob.send({ type: 'history', room: 'general', limit: 1000 });
    page = await bob.next((m) => m.type === 'history');
    assert.deepEqual(page.events.map((e) => e.data.text), ['m5', 'm6', 'm7', 'm8', 'live']);
    // An id of another epoch names nothing here.
    bob.send({ type: 'history', room: 'general', before: 'zzzz-5' });
    page = await bob.next((m) => m.type === 'history');
    assert.deepEqual(page, { type: 'history', room: 'general', events: [], more: false });
    await closeAll([alice, bob, carol]);
  });

  test('a retried clientMessageId is stored and delivered once', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    await join(alice, 'general');
    await join(bob, 'general');
    const first = await say(alice, 'general', 'only once', 'retry-me');
    const again = await say(alice, 'general', 'only once', 'retry-me');
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.equal(again.id, first.id);
    // Another user may use the same clientMessageId: it is per sender.
    const bobs = await say(bob, 'general', 'mine', 'retry-me');
    assert.equal(bobs.duplicate, false);
    assert.notEqual(bobs.id, first.id);
    await say(alice, 'general', 'sentinel', 'sentinel');
    const events = await roomEventsUntil(bob, 'general', 'sentinel');
    const messages = events.filter((m) => m.event === 'chat.message');
    assert.deepEqual(messages.map((m) => `${m.data.user}:${m.data.text}`), ['alice:only once', 'bob:mine', 'alice:sentinel']);
    const stats = await roomGetOk(server, 'general', 'stats', bob.token);
    assert.equal(stats.messagesTotal, 3);
    await closeAll([alice, bob]);
  });

  test('rooms of the same name in two orgs are separate', async () => {
    const orgA = unique('a');
    const orgB = unique('b');
    const a = await chatClient(server, { org: orgA, user: 'same-user' });
    const b = await chatClient(server, { org: orgB, user: 'same-user' });
    const b2 = await chatClient(server, { org: orgB, user: 'other' });
    await join(a, 'general');
    await join(b, 'general');
    await say(a, 'general', 'secret of A', 'a-1');
    await join(b2, 'general');
    await say(b, 'general', 'B speaking', 'b-1');
    const seenByB = await roomEventsUntil(b, 'general', 'b-1');
    assert.equal(seenByB.some((m) => m.data?.text === 'secret of A'), false, JSON.stringify(seenByB));
    // b2 joined after A's message: B's history has none of A's.
    const b2Sees = await roomEventsUntil(b2, 'general', 'b-1');
    assert.deepEqual(b2Sees.filter((m) => m.event === 'chat.message').map((m) => m.data.text), ['B speaking']);
    const statsA = await roomGetOk(server, 'general', 'stats', a.token);
    const statsB = await roomGetOk(server, 'general', 'stats', b.token);
    assert.equal(statsA.messagesTotal, 1);
    assert.equal(statsB.messagesTotal, 1);
    assert.equal(statsA.onlineUsers, 1);
    assert.equal(statsB.onlineUsers, 2);
    const onlineA = await roomGetOk(server, 'general', 'online', a.token);
    assert.deepEqual(onlineA.users.map((u) => u.userId), ['same-user']);
    await closeAll([a, b, b2]);
  });

  test('online and stats: the room of the caller\'s org, counts, times', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    const alice2 = await chatClient(server, { org, user: 'alice' });
    const bob = await chatClient(server, { org, user: 'bob' });
    const before_ = Date.now();
    for (const c of [alice, alice2, bob]) await join(c, 'stats-room');
    await say(alice, 'stats-room', 'one', 's1');
    await say(bob, 'stats-room', 'two', 's2');
    const stats = await roomGetOk(server, 'stats-room', 'stats', bob.token);
    assert.deepEqual(Object.keys(stats).sort(), [
      'connections',
      'createdAt',
      'lastMessageAt',
      'messagesLastMinute',
      'messagesTotal',
      'onlineUsers',
      'room',
    ]);
    assert.equal(stats.room, 'stats-room');
    assert.equal(stats.onlineUsers, 2);
    assert.equal(stats.connections, 3);
    assert.equal(stats.messagesTotal, 2);
    assert.equal(stats.messagesLastMinute, 2);
    assert.match(stats.createdAt, RFC3339);
    assert.match(stats.lastMessageAt, RFC3339);
    assert.ok(Date.parse(stats.createdAt) >= before_ - 1000);
    assert.ok(Date.parse(stats.lastMessageAt) >= Date.parse(stats.createdAt));
    // The token is the org: a user of another org asking for the same room sees an empty one.
    const stranger = tokenFor(server, { org: unique('x'), user: 'alice' });
    assert.deepEqual(await roomGetOk(server, 'stats-room', 'online', stranger), { room: 'stats-room', users: [] });
    await closeAll([alice, alice2, bob]);
  });

  test('a room nobody joined answers 200 with an empty list and zero counts', async () => {
    const token = tokenFor(server, { org: unique('o'), user: 'u' });
    assert.deepEqual(await roomGetOk(server, 'never', 'online', token), { room: 'never', users: [] });
    assert.deepEqual(await roomGetOk(server, 'never', 'stats', token), {
      room: 'never',
      onlineUsers: 0,
      connections: 0,
      messagesTotal: 0,
      messagesLastMinute: 0,
      createdAt: null,
      lastMessageAt: null,
    });
  });

  test('the endpoints need a valid user token', async () => {
    for (const what of ['online', 'stats']) {
      let r = await roomGet(server, 'general', what, null);
      assert.equal(r.status, 401);
      assert.equal(r.json.error, 'missing_token');
      assert.equal(typeof r.json.message, 'string');
      r = await roomGet(server, 'general', what, tokenFor({ secret: 'wrong-secret-0123456789abcdefghijklmnop' }, { org: 1 }));
      assert.equal(r.status, 401);
      assert.equal(r.json.error, 'bad_signature');
      r = await roomGet(server, 'general', what, server.apiKey);
      assert.equal(r.status, 401, 'an API key is not a user token');
      r = await roomGet(server, 'general', what, tokenFor(server, { org: 1, ttl: -3600 }));
      assert.equal(r.status, 401);
      assert.equal(r.json.error, 'token_expired');
      r = await roomGet(server, 'general', what, tokenFor(server, { org: 1 }), { via: 'query' });
      assert.equal(r.status, 200, 'access_token works as for the stream');
    }
    const token = tokenFor(server, { org: 1 });
    assert.equal((await roomGet(server, 'general', 'members', token)).status, 404);
    const bad = await roomGet(server, 'a b', 'online', token);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error, 'bad_room');
    const post = await fetch(`${server.httpUrl}/v2/realtime/rooms/general/online`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(post.status, 405);
    assert.equal(server.stderrText.includes(token), false, 'tokens never reach the logs');
  });

  test('the rooms claim limits joinable rooms and the endpoints', async () => {
    const org = unique('o');
    const limited = await chatClient(server, { org, user: 'limited', rooms: ['general'] });
    await join(limited, 'general');
    limited.send({ type: 'join', room: 'board' });
    await expectRoomError(limited, 'board', 'forbidden_room');
    assert.ok(limited.isOpen);
    const r = await roomGet(server, 'board', 'online', limited.token);
    assert.equal(r.status, 403);
    assert.equal(r.json.error, 'forbidden_room');
    assert.equal((await roomGet(server, 'general', 'online', limited.token)).status, 200);
    await limited.close();
  });

  test('room channels cannot be reached as services', async () => {
    const org = unique('o');
    const alice = await chatClient(server, { org, user: 'alice' });
    await join(alice, 'general');
    // Unsubscribing "room:general" does not take the room away.
    alice.send({ type: 'unsubscribe', services: ['room:general'] });
    await alice.next((m) => m.type === 'unsubscribed');
    await say(alice, 'general', 'still here', 'still');
    await nextRoomEvent(alice, 'general', 'chat.message');
    const published = await publish(server, { orgId: org, service: 'room:general', event: 'chat.message', data: {} });
    assert.equal(published.status, 400);
    assert.equal(published.json.error, 'reserved_service');
    const spy = await openStream(server, { org, user: 'spy', services: [] });
    spy.client.send({ type: 'subscribe', services: ['room:general'] });
    const err = await spy.client.next((m) => m.type === 'error');
    assert.equal(err.code, 'unknown_service');
    await spy.client.waitClose();
    await alice.close();
  });

  test('malformed chat messages close like any bad message; chat needs the handshake first', async () => {
    const c = await chatClient(server, { org: unique('o'), user: 'u' });
    c.send({ type: 'message', room: 'general', text: 'no id' });
    const err = await c.next((m) => m.type === 'error');
    assert.equal(err.code, 'missing_field');
    assert.equal((await c.waitClose()).code, 1008);
    // Before the handshake a chat message is not a handshake.
    const early = await connect(server, { token: tokenFor(server, { org: unique('o') }) });
    early.send({ type: 'join', room: 'general' });
    assert.equal((await early.next((m) => m.type === 'error')).code, 'unknown_type');
    assert.equal((await early.waitClose()).code, 1008);
  });
});
