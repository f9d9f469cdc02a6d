// The Server-Sent Events transport (GET /v2/realtime/sse, docs/protocol.md "Server-Sent Events"),
// loaded only when a client uses it (fallback.ts).
//
// Read with fetch rather than EventSource: EventSource delivers a named event only to a listener
// for that name (the client can't know every event type in advance), hides the status of a
// refusal (a 403 for one service looks like a 401), and reconnects with the token of its URL.
// The request carries nothing but query parameters (token, services, cursor), so a cross-origin
// page needs no preflight, as with EventSource.
//
// Nothing can be sent on the stream: a change of services and a token refresh reopen it with the
// last cursor, which names the position in every service, so nothing is missed in between.

import { Backoff } from './backoff.js';
import type { ConnectionHooks, Transport } from './connection.js';
import { eventOfFrame, reportResume, sequenceGap, tokenExpiryMs } from './connection.js';
import { isAfter, isServiceName, parseEventId } from './ids.js';
import type { FetchResponseLike, Platform } from './platform.js';
import type { ConnectionState, RealtimeError, StateChange, TokenReason, TokenRequest } from './types.js';

export interface SseOptions {
  /** The SSE endpoint, e.g. `https://host/v2/realtime/sse`. */
  url: string;
  getToken: (request: TokenRequest) => Promise<string> | string;
  baseDelayMs: number;
  maxDelayMs: number;
  stableAfterMs: number;
  connectTimeoutMs: number;
  /** No byte (event or `: ping`) for this long: the stream counts as dead. */
  idleTimeoutMs: number;
  /** Why the first attempt asks for a token (`rejected` after WebSocket attempts that never opened). */
  firstReason?: TokenReason;
}

// The server's cursor: base64url of "1 <service>=<id> ...", one entry per service of the stream.
const CURSOR_VERSION = '1';
// A line longer than this is no SSE message the server writes (events are bounded by its
// --outbox-bytes); stop instead of buffering without a bound.
const MAX_BUFFER_CHARS = 8 * 1024 * 1024;
const REFRESH_AT = 0.8;
const MIN_REFRESH_DELAY_MS = 1000;
// Until the stream says otherwise (`retry:`), as the server's default --sse-retry.
const DEFAULT_RETRY_MS = 3000;

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unbase64url(text: string): string | null {
  try {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

/** The (service, id) entries of a server cursor, or null when it isn't one this client can read. */
export function decodeCursor(cursor: string): Map<string, string> | null {
  const plain = unbase64url(cursor);
  if (plain === null || !plain.startsWith(CURSOR_VERSION)) return null;
  const rest = plain.slice(CURSOR_VERSION.length);
  const entries = new Map<string, string>();
  if (rest === '') return entries;
  if (!rest.startsWith(' ')) return null;
  for (const entry of rest.slice(1).split(' ')) {
    const eq = entry.indexOf('=');
    const service = entry.slice(0, eq);
    const id = entry.slice(eq + 1);
    if (eq < 0 || !isServiceName(service) || !parseEventId(id)) return null;
    entries.set(service, id);
  }
  return entries;
}

export function encodeCursor(entries: ReadonlyMap<string, string>): string {
  let text = CURSOR_VERSION;
  for (const [service, id] of entries) text += ` ${service}=${id}`;
  return base64url(text);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

type Phase = 'idle' | 'token' | 'opening' | 'streaming' | 'active' | 'waiting' | 'stopped';

export class SseConnection implements Transport {
  private phase: Phase = 'idle';
  private generation = 0;
  private readonly backoff: Backoff;
  private timer: unknown = null;
  private idleTimer: unknown = null;
  private refreshTimer: unknown = null;
  private abort: AbortController | null = null;
  private tokenReason: TokenReason = 'initial';
  private everOpened = false;
  private lastRejected = false;
  private openedAt = 0;
  private cursor: string | undefined;
  private streamServices: string[] = [];
  private pendingResume = new Map<string, string>();
  private retryMs = DEFAULT_RETRY_MS;
  private expectedSeq = 1;
  private reopenQueued = false;

  constructor(
    private readonly options: SseOptions,
    private readonly hooks: ConnectionHooks,
    private readonly platform: Platform,
    private readonly firstState: ConnectionState = 'connecting',
  ) {
    this.backoff = new Backoff({
      baseMs: options.baseDelayMs,
      maxMs: options.maxDelayMs,
      random: () => platform.random(),
    });
    this.tokenReason = options.firstReason ?? 'initial';
  }

  start(): void {
    if (this.phase !== 'idle') return;
    void this.connect();
  }

  stop(): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.generation += 1;
    this.clearTimers();
    this.dropStream();
  }

  wake(): void {
    if (this.phase !== 'waiting') return;
    this.platform.clearTimeout(this.timer);
    this.timer = null;
    void this.connect();
  }

  /** Nothing can be sent on an event stream (chat needs the WebSocket). */
  sendMessage(): boolean {
    return false;
  }

  /** Nothing can be sent on a stream: another set of services means another stream. */
  servicesChanged(): void {
    if (this.phase === 'waiting') {
      if (this.lastRejected) this.wake();
      return;
    }
    if (this.phase !== 'active' && this.phase !== 'streaming') return;
    if (this.reopenQueued) return;
    this.reopenQueued = true;
    queueMicrotask(() => {
      this.reopenQueued = false;
      if (this.phase !== 'active' && this.phase !== 'streaming') return;
      const wanted = this.hooks.services();
      const same = wanted.length === this.streamServices.length && wanted.every((s) => this.streamServices.includes(s));
      if (!same) this.reopen('reconnect');
    });
  }

  // ---- connecting ----

  /** A new stream from the last cursor, without reporting a disconnection. */
  private reopen(reason: TokenReason): void {
    this.generation += 1;
    this.clearTimers();
    this.dropStream();
    this.tokenReason = reason;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.phase = 'token';
    const reason = this.tokenReason;
    if (this.backoff.attempt === 0 && !this.everOpened && reason === 'initial') {
      this.hooks.state({ state: this.firstState, attempt: 0 });
    }
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (generation !== this.generation) return;
      if (this.phase === 'token') this.hooks.error({ code: 'token_error', message: 'getToken did not answer in time' });
      this.abandon();
    }, this.options.connectTimeoutMs);
    const request: TokenRequest = {
      reason,
      forceRefresh: reason === 'expired' || reason === 'rejected' || reason === 'refresh',
      attempt: this.backoff.attempt,
    };
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
      this.retry();
      return;
    }
    if (generation !== this.generation) return;
    if (typeof token !== 'string' || token === '') {
      this.hooks.error({ code: 'token_error', message: 'getToken returned no token' });
      this.retry();
      return;
    }
    const fetchFn = this.platform.fetch;
    if (!fetchFn) {
      this.hooks.error({ code: 'socket_error', message: 'no fetch in this environment' });
      this.retry();
      return;
    }
    const services = this.hooks.services();
    this.streamServices = services;
    if (services.length === 0) {
      // The endpoint needs at least one service, and there is nothing to receive: open, idle.
      this.platform.clearTimeout(this.timer);
      this.timer = null;
      this.phase = 'active';
      this.onOpened();
      this.hooks.subscribed?.([]);
      this.scheduleRefresh(token);
      return;
    }
    const cursor = this.resumeCursor(services);
    const url = new URL(this.options.url);
    url.searchParams.set('services', services.join(','));
    url.searchParams.set('access_token', token);
    if (cursor !== undefined) url.searchParams.set('lastEventId', cursor);
    this.hooks.handshakeSent();
    const controller = new AbortController();
    this.abort = controller;
    this.phase = 'opening';
    let response: FetchResponseLike;
    try {
      response = await fetchFn(url.toString(), {
        signal: controller.signal,
        cache: 'no-store',
        credentials: 'omit',
        headers: { Accept: 'text/event-stream' },
      });
    } catch (error) {
      if (generation !== this.generation) return;
      this.abort = null;
      this.hooks.error({ code: 'socket_error', message: `event stream failed: ${describe(error)}` });
      this.failed();
      return;
    }
    if (generation !== this.generation) return;
    if (response.status !== 200 || !response.body) {
      await this.refused(generation, response, services);
      return;
    }
    this.phase = 'streaming';
    this.expectedSeq = 1;
    this.armIdle();
    void this.read(generation, response.body.getReader(), token);
  }

  /**
   * Where to resume: the server's last cursor, plus the client's last ids for services it doesn't
   * name (the WebSocket's, before a fallback, or a service added since), limited to `services`
   * (the server refuses a cursor longer than its --max-services allows).
   */
  private resumeCursor(services: string[]): string | undefined {
    this.pendingResume.clear();
    let entries = new Map<string, string>();
    if (this.cursor !== undefined) {
      const decoded = decodeCursor(this.cursor);
      // A cursor of a format this client doesn't know is passed on as it is.
      if (decoded === null) return this.cursor;
      entries = decoded;
    }
    const out = new Map<string, string>();
    for (const service of services) {
      const fromCursor = entries.get(service);
      const mine = this.hooks.resumeId(service);
      const id = fromCursor !== undefined && (mine === undefined || !isAfter(mine, fromCursor)) ? fromCursor : mine;
      if (id === undefined) continue;
      out.set(service, id);
      this.pendingResume.set(service, id);
    }
    return out.size > 0 ? encodeCursor(out) : undefined;
  }

  private async refused(generation: number, response: FetchResponseLike, services: string[]): Promise<void> {
    let body: { error?: unknown; message?: unknown; service?: unknown } = {};
    try {
      const parsed: unknown = JSON.parse((await response.text()).slice(0, 4096));
      if (typeof parsed === 'object' && parsed !== null) body = parsed as typeof body;
    } catch {
      // Not the server's JSON (a proxy's page): the status alone decides.
    }
    if (generation !== this.generation) return;
    this.abort = null;
    const code = typeof body.error === 'string' ? body.error : `http_${response.status}`;
    const message = typeof body.message === 'string' ? body.message : `event stream refused (${response.status})`;
    const error: RealtimeError = { code, message };
    if (code === 'forbidden_service' || code === 'unknown_service') {
      // The body's `service`; a server before it named the service only at the end of the
      // message: then the longest requested name the message ends with.
      const named =
        typeof body.service === 'string' && services.includes(body.service)
          ? body.service
          : services.filter((s) => message.endsWith(` ${s}`)).sort((a, b) => b.length - a.length)[0];
      if (named !== undefined) error.service = named;
    }
    this.hooks.error(error);
    if (error.service !== undefined && !this.hooks.services().includes(error.service)) {
      this.retry(0); // the client dropped the refused service: the rest may stream at once
      return;
    }
    if (code === 'bad_last_event_id') {
      this.cursor = undefined;
      this.retry(0);
      return;
    }
    if (response.status === 401) {
      this.tokenReason = code === 'token_expired' ? 'expired' : 'rejected';
    } else if (response.status === 400 || response.status === 403) {
      // The same request would be refused again: wait the largest window (or for new services).
      this.lastRejected = true;
      this.backoff.exhaust();
    }
    this.retry();
  }

  // ---- reading ----

  private async read(
    generation: number,
    reader: ReturnType<NonNullable<FetchResponseLike['body']>['getReader']>,
    token: string,
  ): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    let event = '';
    let data: string[] = [];
    let id: string | undefined;
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await reader.read();
      } catch (error) {
        if (generation !== this.generation) return;
        this.hooks.error({ code: 'socket_error', message: `event stream failed: ${describe(error)}` });
        this.ended();
        return;
      }
      if (generation !== this.generation) {
        void reader.cancel().catch(() => {});
        return;
      }
      if (chunk.done) {
        this.ended();
        return;
      }
      this.armIdle();
      buffer += decoder.decode(chunk.value, { stream: true });
      let start = 0;
      const eol = /\r\n|\r|\n/g;
      for (;;) {
        eol.lastIndex = start;
        const match = eol.exec(buffer);
        // A CR at the end of what arrived may be the first half of a CRLF: wait for the rest.
        if (!match || (match[0] === '\r' && match.index === buffer.length - 1)) break;
        const line = buffer.slice(start, match.index);
        start = match.index + match[0].length;
        if (line === '') {
          if (id !== undefined) this.cursor = id === '' ? undefined : id;
          if (data.length > 0) this.dispatch(event || 'message', data.join('\n'), token);
          if (generation !== this.generation) return;
          event = '';
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(':')) continue; // `: ping`
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
        else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retryMs = Number(value);
      }
      buffer = buffer.slice(start);
      if (buffer.length > MAX_BUFFER_CHARS) {
        this.hooks.error({ code: 'socket_error', message: 'event stream line too long' });
        this.abandon();
        return;
      }
    }
  }

  private dispatch(type: string, raw: string, token: string): void {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
      message = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    if (type === 'ack') {
      this.onAck(message, token);
      return;
    }
    if (type === 'error' && message.type === 'error') {
      const code = typeof message.code === 'string' ? message.code : 'error';
      const error: RealtimeError = { code, message: typeof message.message === 'string' ? message.message : '' };
      if (typeof message.service === 'string') error.service = message.service;
      if (code === 'token_expired') this.tokenReason = 'expired';
      this.hooks.error(error);
      return;
    }
    // `resume_failed` repeats what the ack's `resume` already said.
    if (message.type !== 'event' || this.phase !== 'active') return;
    const gap = sequenceGap(message.seq, this.expectedSeq);
    if (gap) {
      this.hooks.error(gap);
      this.abandon();
      return;
    }
    this.expectedSeq += 1;
    const event = eventOfFrame(message);
    if (event) this.hooks.event(event);
  }

  private onAck(message: Record<string, unknown>, token: string): void {
    if (this.phase !== 'streaming') return;
    this.platform.clearTimeout(this.timer);
    this.timer = null;
    this.phase = 'active';
    const services = Array.isArray(message.services)
      ? message.services.filter((s): s is string => typeof s === 'string')
      : this.streamServices;
    this.onOpened();
    this.hooks.subscribed?.(services);
    reportResume(message.resume, this.pendingResume, this.hooks);
    this.scheduleRefresh(token);
  }

  private onOpened(): void {
    this.everOpened = true;
    this.lastRejected = false;
    this.openedAt = this.platform.now();
    this.tokenReason = 'reconnect';
    this.hooks.state({ state: 'open', attempt: this.backoff.attempt });
  }

  // ---- token refresh: a new stream before the token's exp ----

  private scheduleRefresh(token: string): void {
    const expMs = tokenExpiryMs(token);
    if (expMs === undefined) return; // the server's token_expired error and a reconnect will do
    const now = this.platform.now();
    const delay = Math.max(MIN_REFRESH_DELAY_MS, (expMs - now) * REFRESH_AT);
    this.refreshTimer = this.platform.setTimeout(() => {
      this.refreshTimer = null;
      if (this.phase === 'active') this.reopen('refresh');
    }, delay);
  }

  // ---- ending ----

  private armIdle(): void {
    if (this.idleTimer !== null) this.platform.clearTimeout(this.idleTimer);
    this.idleTimer = this.platform.setTimeout(() => {
      this.idleTimer = null;
      this.abandon();
    }, this.options.idleTimeoutMs);
  }

  /** The stream ended (the server's last chunk, or the network): resume from the cursor. */
  private ended(): void {
    this.abort = null;
    if (this.phase === 'active') {
      if (this.platform.now() - this.openedAt >= this.options.stableAfterMs) this.backoff.reset();
      this.hooks.subscribed?.([]);
      this.retry(undefined, true);
      return;
    }
    this.failed();
  }

  /** Gives up on the current stream (its data is ignored from now on) and reconnects. */
  private abandon(): void {
    const wasActive = this.phase === 'active';
    this.generation += 1;
    this.dropStream();
    if (wasActive) {
      this.hooks.subscribed?.([]);
      this.retry();
    } else {
      this.failed();
    }
  }

  /** An attempt that got no ack. */
  private failed(): void {
    if (this.phase === 'stopped') return;
    this.hooks.openFailed?.();
    this.retry();
  }

  private retry(immediateMs?: number, afterEnd = false): void {
    if (this.phase === 'stopped') return;
    this.clearTimers();
    this.dropStream();
    this.phase = 'waiting';
    let delayMs = immediateMs ?? this.backoff.next();
    // The server's `retry:` is the least it wants between a stream it ended and the next one.
    if (afterEnd) delayMs = Math.max(delayMs, this.retryMs);
    const change: Omit<StateChange, 'previous'> = { state: 'reconnecting', attempt: this.backoff.attempt, delayMs };
    this.hooks.state(change);
    const generation = ++this.generation;
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (generation === this.generation && this.phase === 'waiting') void this.connect();
    }, delayMs);
  }

  private dropStream(): void {
    const abort = this.abort;
    this.abort = null;
    try {
      abort?.abort();
    } catch {
      // Already finished.
    }
  }

  private clearTimers(): void {
    for (const t of [this.timer, this.idleTimer, this.refreshTimer]) if (t !== null) this.platform.clearTimeout(t);
    this.timer = null;
    this.idleTimer = null;
    this.refreshTimer = null;
  }
}
