// Test doubles for the client's Platform: a virtual clock, a scripted WebSocket, in-memory
// BroadcastChannels and a Web Locks manager. Nothing here touches the network or real timers
// (except setImmediate, to let promise chains settle).

export const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Lets every pending promise chain and queued bus message run. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i++) await tick();
}

export class FakeClock {
  constructor(start = 1_000_000) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
  }
  now() {
    return this.time;
  }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn, id });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  /** Timers due at or before now + ms, earliest first. */
  pending() {
    return [...this.timers.values()].sort((a, b) => a.at - b.at || a.id - b.id);
  }
  /** The delay of the earliest timer, or undefined. */
  nextDelay() {
    const first = this.pending()[0];
    return first ? first.at - this.time : undefined;
  }
  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms) {
    const end = this.time + ms;
    await settle();
    for (;;) {
      const due = this.pending().find((t) => t.at <= end);
      if (!due) break;
      this.timers.delete(due.id);
      this.time = Math.max(this.time, due.at);
      due.fn();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

export class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;

  constructor(url, registry) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    this.closedWith = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    registry.push(this);
  }
  get token() {
    return new URL(this.url).searchParams.get('access_token');
  }
  send(data) {
    if (this.readyState !== FakeSocket.OPEN) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000, reason = '') {
    if (code !== 1000 && (code < 3000 || code > 4999)) throw new Error(`InvalidAccessError: ${code}`);
    this.closedWith = { code, reason };
    this.readyState = FakeSocket.CLOSED;
  }
  // ---- the server side ----
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.({});
  }
  receive(message) {
    this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }
  ack(extra = {}) {
    const handshake = this.sent[0];
    this.receive({ type: 'ack', seq: 0, timestamp: 't', connectionId: 'c', services: handshake.services, ...extra });
    this.seq = 0;
  }
  event(service, id, event = 'changed', data = null) {
    this.seq = (this.seq ?? 0) + 1;
    this.receive({ type: 'event', seq: this.seq, service, id, event, data, timestamp: '2026-01-01T00:00:00.000Z' });
  }
  /** The server (or the network) ends the connection. */
  serverClose(code, reason = '') {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
}

export function socketClass(registry) {
  return class extends FakeSocket {
    constructor(url) {
      super(url, registry);
    }
  };
}

/**
 * One GET of the SSE endpoint through the fake fetch: the test answers it with a status, then
 * writes the stream (`ack`, `event`, raw text) and ends or breaks it. Aborting (the client
 * closing it) rejects pending reads, as fetch does.
 */
export class FakeStream {
  constructor(url, init, registry) {
    this.url = url;
    this.init = init;
    this.chunks = [];
    this.waiters = [];
    this.done = false;
    this.error = null;
    this.aborted = false;
    this.seq = 0;
    this.response = new Promise((resolve, reject) => {
      this.resolveResponse = resolve;
      this.rejectResponse = reject;
    });
    init.signal?.addEventListener('abort', () => {
      this.aborted = true;
      this.fail(new DOMException('aborted', 'AbortError'));
    });
    registry.push(this);
  }
  get params() {
    return new URL(this.url).searchParams;
  }
  get services() {
    return this.params.get('services').split(',');
  }
  get token() {
    return this.params.get('access_token');
  }
  /** The cursor sent, decoded: { service: id }. */
  get cursor() {
    const c = this.params.get('lastEventId');
    if (c === null) return null;
    const plain = Buffer.from(c, 'base64url').toString();
    return Object.fromEntries(
      plain
        .split(' ')
        .slice(1)
        .map((e) => e.split('=')),
    );
  }
  respond(status = 200, body = '') {
    const stream = this;
    const reader = {
      read() {
        if (stream.chunks.length > 0) return Promise.resolve({ done: false, value: stream.chunks.shift() });
        if (stream.error) return Promise.reject(stream.error);
        if (stream.done) return Promise.resolve({ done: true });
        return new Promise((resolve, reject) => stream.waiters.push({ resolve, reject }));
      },
      cancel() {
        stream.done = true;
        return Promise.resolve();
      },
    };
    this.resolveResponse({
      status,
      body: status === 200 ? { getReader: () => reader } : null,
      text: async () => body,
    });
  }
  /** The request fails before any response (network error, refused connection). */
  refuse() {
    this.rejectResponse(new TypeError('Failed to fetch'));
  }
  write(text) {
    this.writeBytes(new TextEncoder().encode(text));
  }
  writeBytes(chunk) {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve({ done: false, value: chunk });
    else this.chunks.push(chunk);
  }
  /** The server's cursor for positions { service: id }. */
  static cursorOf(positions) {
    const plain = ['1', ...Object.entries(positions).map(([s, id]) => `${s}=${id}`)].join(' ');
    return Buffer.from(plain).toString('base64url');
  }
  ack(extra = {}, positions = {}) {
    const frame = { type: 'ack', seq: 0, timestamp: 't', connectionId: 'c', services: this.services, ...extra };
    this.write(`retry: 3000\n\nid: ${FakeStream.cursorOf(positions)}\nevent: ack\ndata: ${JSON.stringify(frame)}\n\n`);
  }
  event(service, id, positions, event = 'changed', data = null) {
    this.seq += 1;
    const frame = { type: 'event', seq: this.seq, service, id, event, data, timestamp: 't' };
    this.write(`id: ${FakeStream.cursorOf(positions)}\nevent: ${event}\ndata: ${JSON.stringify(frame)}\n\n`);
  }
  /** The server ends the stream (last chunk). */
  end() {
    this.done = true;
    for (const w of this.waiters.splice(0)) w.resolve({ done: true });
  }
  fail(error = new TypeError('network error')) {
    this.error = error;
    for (const w of this.waiters.splice(0)) w.reject(error);
    this.rejectResponse(error);
  }
}

/** In-memory BroadcastChannels: delivery is asynchronous and structured-cloned, as in browsers. */
export class BusNetwork {
  constructor() {
    this.channels = new Set();
    this.log = [];
  }
  channelClass() {
    const network = this;
    return class FakeBroadcastChannel {
      constructor(name) {
        this.name = name;
        this.onmessage = null;
        this.closed = false;
        this.muted = false; // a crashed tab: sends and receives nothing, says no goodbye
        this.deaf = false; // receives nothing (to make one tab miss a message)
        network.channels.add(this);
      }
      postMessage(message) {
        if (this.closed) throw new Error('InvalidStateError: channel closed');
        if (this.muted) return;
        const copy = structuredClone(message);
        network.log.push({ from: this, message: copy });
        for (const other of network.channels) {
          if (other === this || other.name !== this.name) continue;
          setImmediate(() => {
            if (!other.closed && !other.muted && !other.deaf) other.onmessage?.({ data: structuredClone(copy) });
          });
        }
      }
      close() {
        this.closed = true;
        network.channels.delete(this);
      }
    };
  }
}

/** Web Locks, exclusive mode only: grants in request order, releases when the callback settles. */
export class FakeLocks {
  constructor() {
    this.held = new Map(); // name -> holder entry
    this.queues = new Map(); // name -> entries waiting
  }
  request(name, options, callback) {
    return new Promise((resolve, reject) => {
      const entry = { name, callback, resolve, reject, options };
      const signal = options?.signal;
      if (signal) {
        if (signal.aborted) {
          reject(new DOMException('aborted', 'AbortError'));
          return;
        }
        signal.addEventListener('abort', () => {
          const queue = this.queues.get(name) ?? [];
          const i = queue.indexOf(entry);
          if (i >= 0) {
            queue.splice(i, 1);
            reject(new DOMException('aborted', 'AbortError'));
          }
        });
      }
      if (!this.queues.has(name)) this.queues.set(name, []);
      this.queues.get(name).push(entry);
      this.pump(name);
    });
  }
  /** Simulates the holder's tab crashing: the browser frees its lock. */
  crash(name) {
    const entry = this.held.get(name);
    if (!entry) return;
    entry.dead = true;
    this.held.delete(name);
    this.pump(name);
  }
  pump(name) {
    if (this.held.has(name)) return;
    const queue = this.queues.get(name) ?? [];
    const entry = queue.shift();
    if (!entry) return;
    this.held.set(name, entry);
    Promise.resolve()
      .then(() => entry.callback({ name, mode: 'exclusive' }))
      .then(
        (value) => {
          if (!entry.dead && this.held.get(name) === entry) {
            this.held.delete(name);
            this.pump(name);
          }
          entry.resolve(value);
        },
        (error) => {
          if (this.held.get(name) === entry) {
            this.held.delete(name);
            this.pump(name);
          }
          entry.reject(error);
        },
      );
  }
}

/** A complete fake Platform plus handles to drive it. */
export function makeEnv({
  random = () => 0.5,
  locks = true,
  bus = true,
  sse = false,
  network,
  lockManager,
  clock,
} = {}) {
  const sockets = [];
  const streams = [];
  const wakeHandlers = [];
  const c = clock ?? new FakeClock();
  const n = network ?? new BusNetwork();
  const l = lockManager ?? new FakeLocks();
  let seq = 0;
  const buses = [];
  const Channel = n.channelClass();
  const platform = {
    WebSocket: socketClass(sockets),
    // Node has a real fetch: the fake one, or none (no SSE fallback), never the network.
    fetch: sse ? (url, init) => new FakeStream(url, init, streams).response : undefined,
    BroadcastChannel: bus
      ? class extends Channel {
          constructor(name) {
            super(name);
            buses.push(this);
          }
        }
      : undefined,
    locks: locks ? l : undefined,
    setTimeout: (fn, ms) => c.setTimeout(fn, ms),
    clearTimeout: (h) => c.clearTimeout(h),
    now: () => c.now(),
    random: () => (typeof random === 'function' ? random() : random),
    listen: (handlers) => {
      wakeHandlers.push(handlers);
      return () => {
        const i = wakeHandlers.indexOf(handlers);
        if (i >= 0) wakeHandlers.splice(i, 1);
      };
    },
  };
  return {
    platform,
    sockets,
    streams,
    lastStream: () => streams[streams.length - 1],
    clock: c,
    network: n,
    locks: l,
    lifecycle: wakeHandlers,
    buses,
    /** The tab's current BroadcastChannel. */
    bus: () => buses[buses.length - 1],
    lastSocket: () => sockets[sockets.length - 1],
    nextSeq: () => ++seq,
  };
}

/** A getToken that records its calls and returns token-1, token-2, ... */
export function tokenSource() {
  const calls = [];
  const getToken = async (request) => {
    calls.push(request);
    return `token-${calls.length}`;
  };
  return { calls, getToken };
}
