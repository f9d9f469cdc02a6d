// Chat room helpers over the unified stream: a connection with no services that joins rooms,
// sends messages and waits for room events; the rooms' HTTP endpoints with a user token.

import assert from 'node:assert/strict';
import { EVENT_ID, RFC3339, ms } from './env.mjs';
import { getAsUser } from './http.mjs';
import { openStream, tokenFor } from './ws.mjs';

// A stream connection for (org, user) that subscribes to no service. `rooms`: the token's
// rooms claim (undefined: none).
export async function chatClient(server, { org = 456, user = 'user-1', rooms } = {}) {
  const claimOpts = rooms === undefined ? {} : { rooms };
  const { client, token } = await openStream(server, { org, user, services: [], claimOpts });
  return Object.assign(client, { org, user, token });
}

const isRoomReply = (room, types) => (m) => types.includes(m.type) && m.room === room;

// Sends a join and resolves with the "joined" frame; rejects with the error frame's code.
export async function join(client, room, extra = {}) {
  client.send({ type: 'join', room, ...extra });
  const reply = await client.next(isRoomReply(room, ['joined', 'error']), { what: `joined ${room}` });
  if (reply.type !== 'joined') throw Object.assign(new Error(`join ${room}: ${JSON.stringify(reply)}`), { reply });
  assert.match(reply.timestamp, RFC3339);
  return reply;
}

// Expects the next answer about `room` to be an error frame; returns it.
export async function expectRoomError(client, room, code) {
  const reply = await client.next(isRoomReply(room, ['error', 'joined', 'sent', 'history']), {
    what: `error ${code} for ${room}`,
  });
  assert.equal(reply.type, 'error', `expected error ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.code, code, JSON.stringify(reply));
  assert.equal(typeof reply.message, 'string');
  return reply;
}

// Sends a message and resolves with the "sent" frame for its clientMessageId.
export async function say(client, room, text, clientMessageId) {
  client.send({ type: 'message', room, text, clientMessageId });
  const reply = await client.next(
    (m) => (m.type === 'sent' || m.type === 'error') && m.clientMessageId === clientMessageId,
    { what: `sent ${clientMessageId}` },
  );
  if (reply.type !== 'sent') throw Object.assign(new Error(`message ${clientMessageId}: ${JSON.stringify(reply)}`), { reply });
  assert.match(reply.id, EVENT_ID);
  return reply;
}

export const roomService = (room) => `room:${room}`;

// The next room event of `room` (optionally of one type).
export function nextRoomEvent(client, room, event, opts = {}) {
  return client.next((m) => m.type === 'event' && m.service === roomService(room) && (!event || m.event === event), {
    what: `${event ?? 'an event'} in ${room}`,
    ...opts,
  });
}

// Room events of `room` up to and including the chat.message with this clientMessageId.
export async function roomEventsUntil(client, room, clientMessageId, { timeout = ms(5000) } = {}) {
  const out = [];
  const deadline = Date.now() + timeout;
  for (;;) {
    const m = await nextRoomEvent(client, room, undefined, { timeout: Math.max(1, deadline - Date.now()) });
    out.push(m);
    if (m.event === 'chat.message' && m.data?.clientMessageId === clientMessageId) return out;
  }
}

// GET /v2/realtime/rooms/{room}/{what} with `token` as Bearer (null: no header).
export async function roomGet(server, room, what, token, { via = 'header' } = {}) {
  return getAsUser(server, `/v2/realtime/rooms/${encodeURIComponent(room)}/${what}`, { token, via });
}

export async function roomGetOk(server, room, what, token) {
  const r = await roomGet(server, room, what, token);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

export { tokenFor };
