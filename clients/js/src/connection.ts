// The WebSocket of the leader tab: token, handshake, resume, subscriptions, keepalive, in-band
// token refresh and reconnection with backoff. It knows nothing about tabs; the client feeds it the services to
// subscribe to and the ids to resume from, and takes the events it receives.

import { Backoff } from './backoff.js';
import type { Platform, SocketLike } from './platform.js';
import type { ConnectionState, RealtimeError, RealtimeEvent, StateChange, TokenReason, TokenRequest } from './types.js';

export interface ConnectionOptions {
  url: string;
  getToken: (request: TokenRequest) => Promise<string> | string;
  baseDelayMs: number;
  maxDelayMs: number;
  stableAfterMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /** Failed attempts already behind this connection (its backoff continues from there). */
  startAttempt?: number;
}

export interface ConnectionHooks {
  /** The services to subscribe to now. */
  services(): string[];
  /** The id to resume `service` after, if any. */
  resumeId(service: string): string | undefined;
  /** Awaited (alongside getToken) before each socket is opened. */
  beforeConnect(): Promise<void>;
  /** Called once the handshake has been sent (its resume ids are now in use). */
  handshakeSent(): void;
  event(event: RealtimeEvent): void;
  state(change: Omit<StateChange, 'previous'>): void;
  resumed(service: string, recovered: boolean, reason: string, lastId: string): void;
  error(error: RealtimeError): void;
  /** Frames the connection doesn't act on itself: chat's replies and error frames naming a room. */
  frame(frame: Record<string, unknown>): void;
  /** The services the server confirmed on this connection (`[]` once it is down). */
  subscribed?(services: string[]): void;
  /** An attempt failed before the server's ack, not because the server refused the request. */
  openFailed?(): void;
}

/** What the client drives: a WebSocket (Connection) or Server-Sent Events (SseConnection). */
export interface Transport {
  start(): void;
  stop(): void;
  wake(): void;
  servicesChanged(): void;
  /** Writes a client message (chat) on the open connection; false when it can't. */
  sendMessage(message: Record<string, unknown>): boolean;
}

type Phase = 'idle' | 'token' | 'opening' | 'handshake' | 'active' | 'waiting' | 'stopped';

// Close codes after which the same request would fail again (docs/protocol.md, "Errors and
// closing"): retrying at the base rate would only hammer the server.
const REQUEST_REJECTED = new Set([1002, 1003, 1007, 1008, 1009]);

// Codes a browser may pass to WebSocket.close(): 1000 or 3000-4999.
const CLOSE_NORMAL = 1000;
const CLOSE_CLIENT_GAVE_UP = 4000;

const TOKEN_EXPIRED = 4001;
// A producer disconnected this user (docs/protocol.md, "Disconnect"): reconnecting would undo
// what the backend meant, unless the close reason says it may ("disconnected; reconnect").
const DISCONNECTED = 4004;

// In-band refresh (docs/protocol.md#token-refresh): a new token goes to the open socket at this
// share of the current token's life, or when the server says `expiring`, whichever is first.
const REFRESH_AT = 0.8;
// The server serves one refresh a second per connection.
const MIN_REFRESH_DELAY_MS = 1000;

// The `exp` of a JWT in milliseconds, or undefined when the token is not a JWT with a numeric exp
// (then only the server's `expiring` notice triggers a refresh).
export function tokenExpiryMs(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    const exp = (claims as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

// ---- frames both transports read the same way (WebSocket and SSE) ----

// The frame's seq against the one expected next: an error to report, before the connection is
// given up, when a frame went missing. The server never skips a frame of a connection; a new
// connection that resumes from the last id is the only way to get a lost one back.
export function sequenceGap(seq: unknown, expected: number): RealtimeError | null {
  if (seq === expected) return null;
  return { code: 'sequence_gap', message: `expected frame ${expected}, got ${String(seq)}` };
}

// An event frame as subscribers get it; null when it lacks its service or event type or has an
// id that is not a string. No id: an ephemeral event (typing), never stored, so nothing to
// resume from.
export function eventOfFrame(message: Record<string, unknown>): RealtimeEvent | null {
  const { service, id, event, data, timestamp } = message;
  if (typeof service !== 'string' || typeof event !== 'string') return null;
  if (id !== undefined && typeof id !== 'string') return null;
  return {
    service,
    ...(id === undefined ? {} : { id }),
    event,
    data: data === undefined ? null : data,
    timestamp: typeof timestamp === 'string' ? timestamp : '',
  };
}

// An ack's `resume` map: each service the client asked to resume (`pending`: service → the id
// it resumed after) is reported once, and taken out of `pending`.
export function reportResume(
  resume: unknown,
  pending: Map<string, string>,
  hooks: Pick<ConnectionHooks, 'resumed'>,
): void {
  if (typeof resume !== 'object' || resume === null) return;
  for (const [service, status] of Object.entries(resume as Record<string, unknown>)) {
    const lastId = pending.get(service);
    pending.delete(service);
    if (typeof status !== 'object' || status === null || lastId === undefined) continue;
    const s = status as { recovered?: unknown; reason?: unknown };
    hooks.resumed(service, s.recovered === true, typeof s.reason === 'string' ? s.reason : '', lastId);
  }
}

// What is known of the token a socket holds (or was offered by a refresh in flight).
interface HeldToken {
  expMs: number | undefined;
  receivedAt: number;
}

function withToken(url: string, token: string): string {
  const hash = url.indexOf('#');
  const base = hash >= 0 ? url.slice(0, hash) : url;
  return `${base}${base.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Connection implements Transport {
  private ws: SocketLike | null = null;
  private phase: Phase = 'idle';
  private generation = 0;
  private readonly backoff: Backoff;
  private timer: unknown = null;
  private keepalive: unknown = null;
  private probing = false;
  private tokenReason: TokenReason = 'initial';
  private everOpened = false;
  private lastCloseRejected = false;
  private openedAt = 0;
  private lastRx = 0;
  private expectedSeq = 0;
  private subscribed: string[] = [];
  private confirmed: string[] = [];
  private pendingResume = new Map<string, string>();
  private serverError: RealtimeError | null = null;
  private held: HeldToken | null = null;
  private offered: HeldToken | null = null; // sent in a refresh, not yet answered
  private refreshTimer: unknown = null;
  private refreshing = false; // getToken for a refresh, or its answer, is outstanding

  constructor(
    private readonly options: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
    private readonly platform: Platform,
    private readonly firstState: ConnectionState = 'connecting',
  ) {
    this.backoff = new Backoff({
      baseMs: options.baseDelayMs,
      maxMs: options.maxDelayMs,
      random: () => platform.random(),
    });
    while (this.backoff.attempt < (options.startAttempt ?? 0)) this.backoff.next();
    // Following attempts that never opened (on another transport): the token is suspect too.
    if (this.backoff.attempt > 0) this.tokenReason = 'rejected';
  }

  get attempt(): number {
    return this.backoff.attempt;
  }

  start(): void {
    if (this.phase !== 'idle') return;
    void this.connect();
  }

  /** Closes the socket (1000) and stops retrying. */
  stop(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.generation += 1;
    this.clearTimers();
    this.dropSocket(CLOSE_NORMAL, 'client closed');
  }

  /**
   * Online again, or the page became visible: a waiting retry happens now, and an open socket is
   * probed with a ping (a laptop that slept may hold a socket that is long dead).
   */
  wake(): void {
    if (this.phase === 'waiting') {
      this.platform.clearTimeout(this.timer);
      this.timer = null;
      void this.connect();
    } else if (this.phase === 'active') {
      this.probe();
    }
  }

  /** Sends a client message (chat) on the open socket; false when there is none. */
  sendMessage(message: Record<string, unknown>): boolean {
    if (this.phase !== 'active') return false;
    this.send(message);
    return true;
  }

  /** The wanted services changed: subscribe/unsubscribe live, or retry now after a rejection. */
  servicesChanged(): void {
    if (this.phase === 'active') {
      this.sync();
    } else if (this.phase === 'waiting' && this.lastCloseRejected) {
      this.wake();
    }
  }

  // ---- connecting ----

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.phase = 'token';
    this.serverError = null;
    const reason = this.tokenReason;
    const request: TokenRequest = {
      reason,
      forceRefresh: reason === 'expired' || reason === 'rejected',
      attempt: this.backoff.attempt,
    };
    if (this.backoff.attempt === 0 && !this.everOpened && reason === 'initial') {
      this.hooks.state({ state: this.firstState, attempt: 0 });
    }
    // One deadline for the whole attempt: token, upgrade and ack.
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (generation !== this.generation) return;
      if (this.phase === 'token') {
        this.generation += 1;
        this.hooks.error({ code: 'token_error', message: 'getToken did not answer in time' });
        this.retry(undefined);
        return;
      }
      // No open or no ack in time: give up on this socket without waiting for the browser to.
      this.abandon(this.phase === 'opening' ? 1006 : CLOSE_CLIENT_GAVE_UP, 'connect timeout');
    }, this.options.connectTimeoutMs);
    let token: string;
    try {
      const [value] = await Promise.all([
        Promise.resolve().then(() => this.options.getToken(request)),
        this.hooks.beforeConnect(),
      ]);
      token = value;
    } catch (error) {
      if (generation !== this.generation) return;
      this.hooks.error({ code: 'token_error', message: `getToken failed: ${describe(error)}` });
      this.retry(undefined);
      return;
    }
    if (generation !== this.generation) return;
    if (typeof token !== 'string' || token === '') {
      this.hooks.error({ code: 'token_error', message: 'getToken returned no token' });
      this.retry(undefined);
      return;
    }
    this.held = { expMs: tokenExpiryMs(token), receivedAt: this.platform.now() };
    const Socket = this.platform.WebSocket;
    if (!Socket) {
      this.hooks.error({ code: 'socket_error', message: 'no WebSocket in this environment' });
      this.retry(undefined);
      return;
    }
    let ws: SocketLike;
    try {
      ws = new Socket(withToken(this.options.url, token));
    } catch (error) {
      this.hooks.error({ code: 'socket_error', message: describe(error) });
      this.backoff.exhaust(); // a malformed URL won't fix itself
      this.retry(undefined);
      return;
    }
    this.ws = ws;
    this.phase = 'opening';
    ws.onopen = () => this.onOpen(generation);
    ws.onmessage = (ev) => this.onMessage(generation, ev.data);
    ws.onclose = (ev) => this.onClose(generation, ev.code, ev.reason);
    ws.onerror = () => {}; // the close event that follows says what matters
  }

  private onOpen(generation: number): void {
    if (generation !== this.generation || !this.ws) return;
    this.phase = 'handshake';
    const services = this.hooks.services();
    const resume: Record<string, string> = {};
    this.pendingResume.clear();
    for (const service of services) {
      const id = this.hooks.resumeId(service);
      if (id !== undefined) {
        resume[service] = id;
        this.pendingResume.set(service, id);
      }
    }
    const handshake: Record<string, unknown> = { services, version: 1 };
    if (this.pendingResume.size > 0) handshake.resume = resume;
    this.subscribed = services;
    this.send(handshake);
    this.hooks.handshakeSent();
  }

  // ---- receiving ----

  private onMessage(generation: number, raw: unknown): void {
    if (generation !== this.generation || typeof raw !== 'string') return;
    this.lastRx = this.platform.now();
    this.probing = false;
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
      message = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    switch (message.type) {
      case 'ack':
        this.onAck(message);
        break;
      case 'event':
        this.onEvent(message);
        break;
      case 'subscribed':
        this.confirm(message.services, []);
        reportResume(message.resume, this.pendingResume, this.hooks);
        break;
      case 'unsubscribed':
        this.confirm([], message.services);
        break;
      case 'expiring':
        this.onExpiring();
        break;
      case 'refreshed':
        this.onRefreshed(message);
        break;
      case 'error': {
        const code = typeof message.code === 'string' ? message.code : 'error';
        const text = typeof message.message === 'string' ? message.message : '';
        const error: RealtimeError = { code, message: text };
        if (typeof message.service === 'string') error.service = message.service;
        this.serverError = error;
        // Error frames about chat name a room; any other one while a refresh is awaiting its
        // answer is that answer (the server answers in order). The old token stays in force
        // and the next `expiring` or the 4001 close takes over.
        if (this.offered && typeof message.room !== 'string') {
          this.offered = null;
          this.refreshing = false;
        }
        this.hooks.error(error);
        if (typeof message.room === 'string') this.hooks.frame(message);
        break;
      }
      default:
        this.hooks.frame(message); // chat's joined, left, sent, history; pong, unsubscribed, ...
        break;
    }
  }

  private onAck(message: Record<string, unknown>): void {
    if (this.phase !== 'handshake') return;
    this.platform.clearTimeout(this.timer);
    this.timer = null;
    this.phase = 'active';
    this.everOpened = true;
    this.lastCloseRejected = false;
    this.openedAt = this.platform.now();
    this.expectedSeq = 1;
    this.tokenReason = 'reconnect';
    if (Array.isArray(message.services)) {
      this.subscribed = message.services.filter((s): s is string => typeof s === 'string');
    }
    this.confirmed = [];
    this.confirm(this.subscribed, []);
    this.hooks.state({ state: 'open', attempt: this.backoff.attempt });
    reportResume(message.resume, this.pendingResume, this.hooks);
    this.armKeepalive(this.options.pingIntervalMs);
    this.scheduleRefresh();
    this.sync();
  }

  private onEvent(message: Record<string, unknown>): void {
    if (this.phase !== 'active') return;
    const gap = sequenceGap(message.seq, this.expectedSeq);
    if (gap) {
      this.hooks.error(gap);
      this.abandon(CLOSE_CLIENT_GAVE_UP, 'sequence gap');
      return;
    }
    this.expectedSeq += 1;
    const event = eventOfFrame(message);
    if (event) this.hooks.event(event);
  }

  // ---- in-band token refresh ----

  private scheduleRefresh(): void {
    if (this.refreshTimer !== null) this.platform.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const held = this.held;
    if (!held || held.expMs === undefined) return;
    const at = held.receivedAt + (held.expMs - held.receivedAt) * REFRESH_AT;
    const delay = Math.max(MIN_REFRESH_DELAY_MS, at - this.platform.now());
    this.refreshTimer = this.platform.setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh();
    }, delay);
  }

  private onExpiring(): void {
    const held = this.held;
    // A notice longer than the token's whole life comes right after the ack; the timer at 80 %
    // covers that token, and refreshing at once would only fetch tokens as fast as the server
    // takes them. Past half its life (or for a token whose exp we can't read) refresh now.
    if (held && held.expMs !== undefined) {
      const half = held.receivedAt + (held.expMs - held.receivedAt) / 2;
      if (this.platform.now() < half) return;
    }
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    if (this.phase !== 'active' || this.refreshing) return;
    this.refreshing = true;
    const generation = this.generation;
    let token: string;
    try {
      token = await Promise.resolve().then(() =>
        this.options.getToken({ reason: 'refresh', forceRefresh: true, attempt: 0 }),
      );
    } catch (error) {
      if (generation !== this.generation) return;
      this.refreshing = false;
      this.hooks.error({ code: 'token_error', message: `getToken failed: ${describe(error)}` });
      return;
    }
    if (generation !== this.generation || this.phase !== 'active') return;
    const expMs = typeof token === 'string' && token !== '' ? tokenExpiryMs(token) : undefined;
    if (typeof token !== 'string' || token === '' || (expMs !== undefined && expMs === this.held?.expMs)) {
      // No token, or the one the socket already has (a cache that ignored forceRefresh): nothing
      // to send. The 4001 close and a reconnect remain the fallback.
      this.refreshing = false;
      if (typeof token !== 'string' || token === '') {
        this.hooks.error({ code: 'token_error', message: 'getToken returned no token' });
      }
      return;
    }
    this.offered = { expMs, receivedAt: this.platform.now() };
    this.send({ type: 'refresh', token });
  }

  private onRefreshed(message: Record<string, unknown>): void {
    const offered = this.offered;
    if (!offered || this.phase !== 'active') return;
    this.offered = null;
    this.refreshing = false;
    const expiresAt = typeof message.expiresAt === 'string' ? Date.parse(message.expiresAt) : NaN;
    this.held = {
      expMs: offered.expMs ?? (Number.isFinite(expiresAt) ? expiresAt : undefined),
      receivedAt: offered.receivedAt,
    };
    this.scheduleRefresh();
  }

  // ---- subscriptions ----

  private sync(): void {
    if (this.phase !== 'active') return;
    const wanted = this.hooks.services();
    const added = wanted.filter((s) => !this.subscribed.includes(s));
    const removed = this.subscribed.filter((s) => !wanted.includes(s));
    if (added.length > 0) {
      const resume: Record<string, string> = {};
      let any = false;
      for (const service of added) {
        const id = this.hooks.resumeId(service);
        if (id !== undefined) {
          resume[service] = id;
          this.pendingResume.set(service, id);
          any = true;
        }
      }
      this.send(any ? { type: 'subscribe', services: added, resume } : { type: 'subscribe', services: added });
    }
    if (removed.length > 0) this.send({ type: 'unsubscribe', services: removed });
    this.subscribed = wanted;
  }

  private confirm(added: unknown, removed: unknown): void {
    const names = (list: unknown) =>
      Array.isArray(list) ? list.filter((s): s is string => typeof s === 'string') : [];
    const gone = names(removed);
    const next = this.confirmed.filter((s) => !gone.includes(s));
    for (const s of names(added)) if (!next.includes(s)) next.push(s);
    this.confirmed = next;
    this.hooks.subscribed?.(next);
  }

  private send(message: unknown): void {
    try {
      this.ws?.send(JSON.stringify(message));
    } catch {
      // A socket that fails to send is closing; its close event drives what happens next.
    }
  }

  // ---- keepalive ----

  private armKeepalive(ms: number): void {
    if (this.keepalive !== null) this.platform.clearTimeout(this.keepalive);
    this.keepalive = this.platform.setTimeout(() => this.onKeepalive(), ms);
  }

  private onKeepalive(): void {
    this.keepalive = null;
    if (this.phase !== 'active') return;
    const idle = this.platform.now() - this.lastRx;
    if (this.probing) {
      // A ping went out and nothing at all came back: the socket is dead even if the browser
      // hasn't noticed (sleep, a network switch, a silent proxy).
      this.abandon(CLOSE_CLIENT_GAVE_UP, 'ping timeout');
      return;
    }
    if (idle < this.options.pingIntervalMs) {
      this.armKeepalive(this.options.pingIntervalMs - idle);
      return;
    }
    this.probe();
  }

  private probe(): void {
    if (this.probing) return;
    this.probing = true;
    this.send({ type: 'ping' });
    this.armKeepalive(this.options.pongTimeoutMs);
  }

  // ---- closing ----

  private onClose(generation: number, code: number, reason = ''): void {
    if (generation !== this.generation) return;
    this.ws = null;
    if (code === DISCONNECTED && !/\breconnect\b/.test(reason)) {
      this.phase = 'stopped';
      this.clearTimers();
      if (!this.serverError) {
        this.hooks.error({ code: 'disconnected', message: 'the server disconnected this user', closeCode: code });
      }
      this.hooks.state({ state: 'closed', attempt: 0, closeCode: code });
      return;
    }
    this.disconnected(code);
  }

  /** Gives up on the current socket (its events are ignored from now on) and handles it as closed. */
  private abandon(code: number, reason: string): void {
    this.generation += 1;
    this.dropSocket(code === 1006 ? CLOSE_CLIENT_GAVE_UP : code, reason);
    this.disconnected(code);
  }

  private disconnected(code: number): void {
    const wasPhase = this.phase;
    this.clearTimers();
    if (wasPhase === 'stopped') return;
    const opened = wasPhase === 'handshake' || wasPhase === 'active';
    if (this.confirmed.length > 0) {
      this.confirmed = [];
      this.hooks.subscribed?.([]);
    }
    if (wasPhase === 'opening' || (wasPhase === 'handshake' && !this.serverError)) this.hooks.openFailed?.();
    if (wasPhase === 'active' && this.platform.now() - this.openedAt >= this.options.stableAfterMs) {
      this.backoff.reset();
    }
    if (!opened) {
      // A browser reports a refused upgrade (401) only as a socket that closed before opening,
      // exactly like an unreachable server: assume the token may be the cause.
      this.tokenReason = 'rejected';
    } else if (code === TOKEN_EXPIRED || this.serverError?.code === 'token_expired') {
      this.tokenReason = 'expired';
    } else {
      this.tokenReason = 'reconnect';
    }
    this.lastCloseRejected = REQUEST_REJECTED.has(code);
    const refused = this.serverError?.service;
    if (this.lastCloseRejected && refused !== undefined && !this.hooks.services().includes(refused)) {
      // The server refused one service and the client has dropped it (its subscription reports
      // the error): the rest of the request is fine, so reconnect at once without it.
      this.lastCloseRejected = false;
      this.retry(code, 0);
      return;
    }
    if (this.lastCloseRejected) {
      if (!this.serverError) {
        this.hooks.error({ code: 'closed', message: `server closed the connection (${code})`, closeCode: code });
      }
      this.backoff.exhaust();
    }
    this.retry(code);
  }

  private retry(closeCode: number | undefined, immediateMs?: number): void {
    if (this.phase === 'stopped') return;
    if (this.timer !== null) this.platform.clearTimeout(this.timer);
    this.phase = 'waiting';
    const delayMs = immediateMs ?? this.backoff.next();
    const change: Omit<StateChange, 'previous'> = { state: 'reconnecting', attempt: this.backoff.attempt, delayMs };
    if (closeCode !== undefined) change.closeCode = closeCode;
    this.hooks.state(change);
    const generation = this.generation;
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (generation === this.generation && this.phase === 'waiting') void this.connect();
    }, delayMs);
  }

  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  private clearTimers(): void {
    if (this.timer !== null) this.platform.clearTimeout(this.timer);
    if (this.keepalive !== null) this.platform.clearTimeout(this.keepalive);
    if (this.refreshTimer !== null) this.platform.clearTimeout(this.refreshTimer);
    this.timer = null;
    this.keepalive = null;
    this.refreshTimer = null;
    this.probing = false;
    this.refreshing = false;
    this.offered = null;
  }
}
