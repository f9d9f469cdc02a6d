// Chat rooms across two nodes sharing a private redis-server: users on different nodes chat
// in one order, see each other online (presence summed over nodes), hear joined/left once per
// user even with tabs on both nodes, page through the shared history, and dedup a retried
// clientMessageId sent through the other node.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, stopCluster } from './support/cluster.mjs';
import { ms, unique, waitFor } from './support/env.mjs';
import { chatClient, join, nextRoomEvent, roomEventsUntil, roomGetOk, say } from './support/chat.mjs';
import { closeAll } from './support/ws.mjs';

describe('chat rooms on two nodes with redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    ({ redis, nodes } = await startCluster(2, { 'chat-history': 10 }));
  });
  after(() => stopCluster({ redis, nodes }));

  test('two users on two nodes chat in one order and see each other online', async () => {
    const org = unique('o');
    const alice = await chatClient(nodes[0], { org, user: 'alice' });
    const bob = await chatClient(nodes[1], { org, user: 'bob' });
    await join(alice, 'general');
    await join(bob, 'general');
    // alice, on the other node, hears bob join.
    await alice.next((m) => m.event === 'chat.joined' && m.data.user === 'bob', { timeout: ms(10000), what: 'bob joined' });
    for (const node of nodes) {
      const online = await roomGetOk(node, 'general', 'online', alice.token);
      assert.deepEqual(online.users.map((u) => [u.userId, u.connections]), [['alice', 1], ['bob', 1]]);
    }
    const sends = [];
    for (let i = 0; i < 4; i += 1) {
      sends.push(say(alice, 'general', `a${i}`, `a${i}`));
      sends.push(say(bob, 'general', `b${i}`, `b${i}`));
    }
    await Promise.all(sends);
    const texts = async (c) =>
      (await c.collect(8, (m) => m.type === 'event' && m.event === 'chat.message', { timeout: ms(10000) })).map((m) => `${m.id} ${m.data.text}`);
    assert.deepEqual(await texts(alice), await texts(bob));
    for (const node of nodes) {
      const stats = await roomGetOk(node, 'general', 'stats', bob.token);
      assert.equal(stats.messagesTotal, 8);
      assert.equal(stats.onlineUsers, 2);
      assert.equal(stats.connections, 2);
    }
    // bob leaves on node B; alice on node A hears it.
    await bob.close();
    assert.deepEqual((await nextRoomEvent(alice, 'general', 'chat.left', { timeout: ms(10000) })).data, { user: 'bob' });
    await alice.close();
  });

  test('a user with tabs on both nodes is one member', async () => {
    const org = unique('o');
    const carol = await chatClient(nodes[1], { org, user: 'carol' });
    await join(carol, 'r');
    const tabA = await chatClient(nodes[0], { org, user: 'dave' });
    await join(tabA, 'r');
    const tabB = await chatClient(nodes[1], { org, user: 'dave' });
    await join(tabB, 'r');
    await say(tabB, 'r', 'both tabs in', 's1');
    let events = await roomEventsUntil(carol, 'r', 's1', { timeout: ms(10000) });
    assert.equal(events.filter((m) => m.event === 'chat.joined' && m.data.user === 'dave').length, 1, JSON.stringify(events));
    const online = await roomGetOk(nodes[0], 'r', 'online', carol.token);
    assert.deepEqual(online.users.map((u) => [u.userId, u.connections]), [['carol', 1], ['dave', 2]]);
    // Closing the tab on node A: dave is still in through node B, so no chat.left.
    await tabA.close();
    await waitFor(async () => (await roomGetOk(nodes[1], 'r', 'online', carol.token)).users.find((u) => u.userId === 'dave')?.connections === 1, {
      what: 'dave down to one connection',
      timeout: ms(10000),
    });
    await say(tabB, 'r', 'still here', 's2');
    events = await roomEventsUntil(carol, 'r', 's2', { timeout: ms(10000) });
    assert.deepEqual(events.filter((m) => m.event === 'chat.left'), []);
    await tabB.close();
    assert.deepEqual((await nextRoomEvent(carol, 'r', 'chat.left', { timeout: ms(10000) })).data, { user: 'dave' });
    await carol.close();
  });

  test('history and retries are shared by the nodes', async () => {
    const org = unique('o');
    const alice = await chatClient(nodes[0], { org, user: 'alice' });
    await join(alice, 'h');
    const first = await say(alice, 'h', 'once', 'retry');
    for (let i = 1; i <= 3; i += 1) await say(alice, 'h', `m${i}`, `m${i}`);
    await alice.close();
    // The same user retries through the other node: the first id, nothing new.
    const again = await chatClient(nodes[1], { org, user: 'alice' });
    await join(again, 'h');
    const replay = await again.collect(4, (m) => m.type === 'event' && m.event === 'chat.message', { timeout: ms(10000) });
    assert.deepEqual(replay.map((m) => m.data.text), ['once', 'm1', 'm2', 'm3']);
    const retried = await say(again, 'h', 'once', 'retry');
    assert.equal(retried.duplicate, true);
    assert.equal(retried.id, first.id);
    again.send({ type: 'history', room: 'h', before: replay[2].id, limit: 5 });
    const page = await again.next((m) => m.type === 'history', { timeout: ms(10000) });
    assert.deepEqual(page.events.map((e) => e.data.text), ['once', 'm1']);
    assert.equal(page.more, false);
    await again.close();
  });
});
