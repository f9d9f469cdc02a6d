// Chat rooms on the shared stream socket (docs/protocol.md, "Chat rooms"). Every tab has its own
// Room objects; their messages go to the leader tab, which holds the socket. The leader counts
// which tabs are in which room, so one tab's leave doesn't take the others out, and tags each
// history page with the tab that asked (the server answers in order but names no request). After
// every (re)connection each tab joins its rooms again, with history to fill the gap (dedup drops
// what it has seen), and sends its unconfirmed messages again with the same clientMessageId: the
// server stores and delivers such a message once. Chat needs a WebSocket: on a transport that
// can't send (SSE), a room goes to `error` with `chat_unavailable`.

import type { RealtimeClient } from './client.js';
import { isServiceName } from './ids.js';

/** What room.ts plugs into the client. */
export interface ClientExtension {
  /** Leader only: a client message from tab `tab` (this one included). */
  outgoing(message: Record<string, unknown>, tab: string): void;
  /** A chat frame: straight from the socket (`fromSocket`, leader), relayed by the leader, or a room's event. */
  frame(frame: Record<string, unknown>, fromSocket: boolean): void;
}

/**
 * `idle`: not joined; `joining`: join sent, or waiting for the connection to join again;
 * `joined`; `left`; `error`: the server refused the join (see the `error` event).
 */
export type RoomState = 'idle' | 'joining' | 'joined' | 'left' | 'error';

export interface ChatMessage {
  id: string;
  user: string;
  text: string;
  clientMessageId: string;
  timestamp: string;
}

/** Someone joined, left or is typing. Ephemeral: only members connected at that moment see it. */
export interface RoomPresence {
  user: string;
  timestamp: string;
}

export interface SendResult {
  id: string;
  clientMessageId: string;
  /** The server had this clientMessageId already (a retry): stored and delivered once. */
  duplicate: boolean;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: ChatMessage[];
  /** Older messages may exist: ask again with `before` set to the first id. */
  more: boolean;
}

/** An error frame about the room (`forbidden_room`, `room_full`, `rate_limited`, ...) or `chat_unavailable`. */
export class RoomError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly clientMessageId?: string,
  ) {
    super(message);
    this.name = 'RoomError';
  }
}

export interface RoomEvents {
  message: ChatMessage;
  joined: RoomPresence;
  left: RoomPresence;
  typing: RoomPresence;
  error: RoomError;
  state: RoomState;
}

type Frame = Record<string, unknown>;

interface Pending<T> {
  resolve(value: T): void;
  reject(error: RoomError): void;
  message: Frame;
  tries: number;
}

// Errors after which the same message may succeed later (docs/protocol.md, "Chat errors").
const RETRYABLE = new Set(['rate_limited', 'unavailable']);
const MAX_TRIES = 4;
const RETRY_MS = 1000;
// The server relays one typing signal per 2 s and room; sending more only costs the bus and socket.
const TYPING_EVERY_MS = 1000;

function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function toMessage(e: Frame): ChatMessage {
  const data = (e.data ?? {}) as Frame;
  return {
    id: str(e.id),
    user: str(data.user),
    text: str(data.text),
    clientMessageId: str(data.clientMessageId),
    timestamp: str(e.timestamp),
  };
}

export class Room {
  private current: RoomState = 'idle';
  private historyWanted: number | undefined;
  private readonly listeners = new Map<string, Set<(value: never) => void>>();
  private readonly sends = new Map<string, Pending<SendResult>>();
  private readonly pages = new Map<string, Pending<HistoryPage>>();
  private lastTyping = -Infinity;

  constructor(
    private readonly client: RealtimeClient,
    readonly name: string,
  ) {}

  get state(): RoomState {
    return this.current;
  }

  /** Calls `listener` for each `message`, `joined`, `left`, `typing`, `error` or `state`. Returns the unsubscribe. */
  on<K extends keyof RoomEvents>(type: K, listener: (value: RoomEvents[K]) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as (value: never) => void);
    return () => set.delete(listener as (value: never) => void);
  }

  /**
   * Joins (again after every reconnect, until `leave`). `history`: how many of the newest
   * messages to receive as `message` events first (the server caps it; default its maximum).
   */
  join(options: { history?: number } = {}): void {
    this.historyWanted = options.history;
    this.setState('joining');
    this.sendJoin();
  }

  /** Leaves; unconfirmed sends and history requests reject with `left`. */
  leave(): void {
    if (this.current === 'idle' || this.current === 'left') return;
    this.setState('left');
    this.client.sendMessage({ type: 'leave', room: this.name });
    this.failAll(new RoomError('left', 'left the room'));
  }

  /**
   * Sends a message; resolves once the server stored it. Safe across reconnects: until it is
   * confirmed it is sent again with the same `clientMessageId` (pass one to retry a send of an
   * earlier page life), and the server stores and delivers it once.
   */
  send(text: string, options: { clientMessageId?: string } = {}): Promise<SendResult> {
    const clientMessageId = options.clientMessageId ?? randomId();
    const message = { type: 'message', room: this.name, text, clientMessageId };
    return this.request(this.sends, clientMessageId, message);
  }

  /** Tells the room this user is typing; call it on every keystroke (it is throttled). */
  typing(): void {
    const now = Date.now();
    if (this.current !== 'joined' || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.client.sendMessage({ type: 'typing', room: this.name });
  }

  /** Up to `limit` messages older than `before` (default: the newest), oldest first. */
  history(options: { before?: string; limit?: number } = {}): Promise<HistoryPage> {
    const req = randomId();
    return this.request(this.pages, req, { type: 'history', room: this.name, ...options, req });
  }

  // ---- from the hub ----

  /** @internal */
  connectionChanged(open: boolean): void {
    if (this.current !== 'joining' && this.current !== 'joined') return;
    if (!open) {
      this.setState('joining');
      return;
    }
    this.sendJoin();
    for (const pending of [...this.sends.values(), ...this.pages.values()]) this.client.sendMessage(pending.message);
  }

  /** @internal */
  frame(f: Frame): void {
    const active = this.current === 'joining' || this.current === 'joined';
    switch (f.type) {
      case 'joined':
        if (this.current === 'joining') this.setState('joined');
        break;
      case 'sent': {
        const pending = this.sends.get(str(f.clientMessageId));
        if (!pending) break;
        this.sends.delete(str(f.clientMessageId));
        pending.resolve({ id: str(f.id), clientMessageId: str(f.clientMessageId), duplicate: f.duplicate === true });
        break;
      }
      case 'history': {
        const pending = this.pages.get(str(f.req));
        if (!pending) break;
        this.pages.delete(str(f.req));
        const events = Array.isArray(f.events) ? (f.events as Frame[]) : [];
        pending.resolve({
          messages: events.filter((e) => e.event === 'chat.message').map(toMessage),
          more: f.more === true,
        });
        break;
      }
      case 'error':
        this.onError(f);
        break;
      case 'event': {
        if (!active) break;
        const user = { user: str((f.data as Frame | null)?.user), timestamp: str(f.timestamp) };
        if (f.event === 'chat.message') this.emit('message', toMessage(f));
        else if (f.event === 'chat.joined') this.emit('joined', user);
        else if (f.event === 'chat.left') this.emit('left', user);
        else if (f.event === 'chat.typing') this.emit('typing', user);
        break;
      }
    }
  }

  // ---- internals ----

  private sendJoin(): void {
    const join: Frame = { type: 'join', room: this.name };
    if (this.historyWanted !== undefined) join.history = this.historyWanted;
    this.client.sendMessage(join);
  }

  private request<T>(map: Map<string, Pending<T>>, key: string, message: Frame): Promise<T> {
    if (this.current !== 'joining' && this.current !== 'joined') {
      return Promise.reject(new RoomError('not_joined', `not in room ${this.name}`));
    }
    return new Promise<T>((resolve, reject) => {
      map.set(key, { resolve, reject, message, tries: 1 });
      this.client.sendMessage(message);
    });
  }

  private onError(f: Frame): void {
    const code = str(f.code);
    const error = new RoomError(
      code,
      str(f.message),
      typeof f.clientMessageId === 'string' ? f.clientMessageId : undefined,
    );
    const key = error.clientMessageId ?? str(f.req);
    const map: Map<string, Pending<unknown>> = this.sends.has(key) ? this.sends : this.pages;
    const pending = map.get(key);
    if (pending) {
      if (RETRYABLE.has(code) && pending.tries < MAX_TRIES) {
        const wait = RETRY_MS * 2 ** (pending.tries - 1);
        pending.tries += 1;
        globalThis.setTimeout(() => {
          if (map.get(key) === pending) this.client.sendMessage(pending.message);
        }, wait);
        return;
      }
      map.delete(key);
      pending.reject(error);
    } else if (error.clientMessageId === undefined && this.current === 'joining') {
      // A refused join (forbidden_room, too_many_rooms, room_full, unavailable, chat_unavailable).
      this.setState('error');
      this.failAll(error);
    }
    this.emit('error', error);
  }

  private failAll(error: RoomError): void {
    for (const map of [this.sends, this.pages] as Map<string, Pending<unknown>>[]) {
      for (const pending of map.values()) pending.reject(error);
      map.clear();
    }
  }

  private setState(state: RoomState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('state', state);
  }

  private emit<K extends keyof RoomEvents>(type: K, value: RoomEvents[K]): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) {
      try {
        (listener as (value: RoomEvents[K]) => void)(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

// One per client: the tab's rooms, and in the leader tab the routing of every tab's messages.
class RoomHub implements ClientExtension {
  readonly rooms = new Map<string, Room>();
  private readonly members = new Map<string, Set<string>>(); // leader: room → tabs in it
  private readonly asked = new Map<string, Array<{ tab: string; req: unknown }>>(); // leader: history FIFO per room

  constructor(private readonly client: RealtimeClient) {
    // Any change is a new connection or none: what the leader knew of the old one is void. The
    // hub's listener runs before the rooms rejoin.
    client.onStateChange(({ state }) => {
      this.reset();
      for (const room of this.rooms.values()) room.connectionChanged(state === 'open');
    });
    client.onLeaderChange(() => this.reset());
  }

  outgoing(message: Frame, tab: string): void {
    const room = str(message.room);
    let tabs = this.members.get(room);
    if (message.type === 'join') {
      if (!tabs) this.members.set(room, (tabs = new Set()));
      tabs.add(tab);
    } else if (message.type === 'leave') {
      tabs?.delete(tab);
      if (tabs && tabs.size > 0) return; // other tabs are still in: the connection stays
      this.members.delete(room);
    }
    const { req, ...wire } = message;
    const queue = this.asked.get(room) ?? [];
    if (message.type === 'history') this.asked.set(room, queue).get(room)!.push({ tab, req });
    if (this.client.sendToSocket(wire)) return;
    if (message.type === 'history') queue.pop();
    // Open but unable to send: the connection is not a WebSocket (SSE). Otherwise the tab sends
    // again once a connection is open.
    if (this.client.state === 'open' && message.type !== 'leave' && message.type !== 'typing') {
      this.deliver({
        type: 'error',
        code: 'chat_unavailable',
        message: 'chat needs the WebSocket transport',
        room,
        clientMessageId: message.clientMessageId,
        req,
        to: tab,
      });
    }
  }

  frame(f: Frame, fromSocket: boolean): void {
    if (fromSocket) {
      if (!CHAT_FRAMES.has(str(f.type))) return;
      const queue = this.asked.get(str(f.room));
      // The server answers a connection's chat messages in order: a page, or an error without a
      // clientMessageId while a page is owed, answers the oldest history request of that room.
      if (queue?.length && (f.type === 'history' || (f.type === 'error' && f.clientMessageId === undefined))) {
        const head = queue.shift()!;
        f = { ...f, to: head.tab, req: head.req };
      }
      this.deliver(f);
      return;
    }
    if (typeof f.to === 'string' && f.to !== this.client.tabId) return;
    const name = f.type === 'event' ? str(f.service).slice('room:'.length) : str(f.room);
    this.rooms.get(name)?.frame(f);
  }

  private deliver(f: Frame): void {
    this.client.relayFrame(f);
    this.frame(f, false);
  }

  private reset(): void {
    this.members.clear();
    this.asked.clear();
  }
}

const CHAT_FRAMES = new Set(['joined', 'left', 'sent', 'history', 'error']);

const hubs = new WeakMap<RealtimeClient, RoomHub>();

/** The client's chat plumbing, created on first use (in the leader: when another tab chats). */
export function hubOf(client: RealtimeClient): ClientExtension & { readonly rooms: Map<string, Room> } {
  let hub = hubs.get(client);
  if (!hub) hubs.set(client, (hub = new RoomHub(client)));
  return hub;
}

export function roomOf(client: RealtimeClient, name: string): Room {
  if (!isServiceName(name)) {
    throw new TypeError(`streamgate: invalid room name ${JSON.stringify(name)} (1-64 of A-Z a-z 0-9 _ . : -)`);
  }
  const rooms = hubOf(client).rooms;
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Room(client, name)));
  return room;
}
