// The choice of transport: WebSocket first, Server-Sent Events when it can't open. The SSE code
// itself (sse_transport.ts) is loaded on first use, so pages whose WebSocket works don't pay for it.

import { Backoff } from './backoff.js';
import type { ConnectionHooks, Transport } from './connection.js';
import type { Platform } from './platform.js';
import type { ConnectionState, StateChange, TokenReason, TransportKind } from './types.js';

/** `wss://host/v2/realtime/stream?x=1` → `https://host/v2/realtime/sse?x=1`. */
export function sseUrlFor(wsUrl: string): string {
  const url = new URL(wsUrl);
  if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol === 'ws:') url.protocol = 'http:';
  url.pathname = url.pathname.replace(/\/stream\/?$/, '/sse');
  url.hash = '';
  return url.toString();
}

/**
 * A transport whose code is loaded on start. If loading fails (the chunk can't be fetched), the
 * error is reported as a failed attempt and loading is tried again after `retryMs`.
 */
export class LazyTransport implements Transport {
  private inner: Transport | null = null;
  private phase: 'idle' | 'loading' | 'started' | 'stopped' = 'idle';
  private timer: unknown = null;

  constructor(
    private readonly load: () => Promise<Transport>,
    private readonly hooks: ConnectionHooks,
    private readonly platform: Platform,
    private readonly retryMs: number,
  ) {}

  start(): void {
    if (this.phase !== 'idle') return;
    this.phase = 'loading';
    this.load().then(
      (transport) => {
        if (this.phase !== 'loading') return;
        this.phase = 'started';
        this.inner = transport;
        transport.start();
      },
      (error: unknown) => {
        if (this.phase !== 'loading') return;
        this.hooks.error({ code: 'socket_error', message: `could not load the SSE transport: ${String(error)}` });
        this.hooks.openFailed?.();
        if (this.phase !== 'loading') return; // the fallback went back to the WebSocket
        this.phase = 'idle';
        this.timer = this.platform.setTimeout(() => this.start(), this.retryMs);
      },
    );
  }

  stop(): void {
    this.phase = 'stopped';
    this.platform.clearTimeout(this.timer);
    this.inner?.stop();
    this.inner = null;
  }

  wake(): void {
    this.inner?.wake();
  }

  servicesChanged(): void {
    this.inner?.servicesChanged(); // before that, the stream reads the services when it opens
  }

  sendMessage(message: Record<string, unknown>): boolean {
    return this.inner?.sendMessage(message) ?? false;
  }
}

export interface FallbackOptions {
  /** WebSocket attempts that fail to open in a row before the client uses SSE. */
  fallbackAfter: number;
  /** The client's reconnect backoff (first window, largest window). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Backoff of the WebSocket retries while on SSE (first window, largest window). */
  retryBaseMs: number;
  retryMaxMs: number;
}

/**
 * WebSocket first; after `fallbackAfter` attempts in a row that could not open one, SSE. While
 * on SSE a WebSocket is tried again now and then (backoff); the SSE stream stays until that
 * WebSocket has its ack, and the client's dedup drops what both delivered, so the switch back
 * has no gap.
 *
 * A server that is simply down (restarting) fails the WebSocket too: if the first SSE attempt
 * can't reach it either (no HTTP answer), the client goes back to the WebSocket, its backoff
 * continuing, so a restart doesn't leave every client on SSE.
 */
export class FallbackTransport implements Transport {
  private ws: Transport | null = null;
  private sse: Transport | null = null;
  private probe: Transport | null = null;
  private failures = 0;
  // Attempts in a row that reached no server, on either transport: the WebSocket's backoff.
  private unreachable = 0;
  private sseOpened = false;
  private timer: unknown = null;
  private reopenWebSocket: (() => void) | null = null;
  private stopped = false;
  private readonly retries: Backoff;

  constructor(
    private readonly makeWebSocket: (
      hooks: ConnectionHooks,
      firstState: ConnectionState,
      startAttempt: number,
    ) => Transport,
    private readonly makeSse: (hooks: ConnectionHooks, firstState: ConnectionState, reason: TokenReason) => Transport,
    private readonly hooks: ConnectionHooks,
    private readonly platform: Platform,
    private readonly options: FallbackOptions,
    private readonly firstState: ConnectionState,
  ) {
    // Each probe waits a window of [ceiling/2, ceiling): never hammering, never in lockstep.
    this.retries = new Backoff({
      baseMs: options.retryBaseMs,
      maxMs: options.retryMaxMs,
      random: () => 0.5 + platform.random() / 2,
    });
  }

  get current(): TransportKind {
    return this.sse ? 'sse' : 'websocket';
  }

  start(): void {
    if (this.ws || this.sse || this.stopped) return;
    this.ws = this.makeWebSocket(this.wsHooks(), this.firstState, 0);
    this.ws.start();
  }

  stop(): void {
    this.stopped = true;
    this.platform.clearTimeout(this.timer);
    this.timer = null;
    for (const t of [this.ws, this.sse, this.probe]) t?.stop();
    this.ws = this.sse = this.probe = null;
  }

  wake(): void {
    const current = this.sse ?? this.ws;
    if (current) {
      current.wake();
    } else if (this.reopenWebSocket) {
      // Between transports (back to the WebSocket after a failed SSE attempt): retry now.
      this.platform.clearTimeout(this.timer);
      this.timer = null;
      this.reopenWebSocket();
    }
  }

  sendMessage(message: Record<string, unknown>): boolean {
    return this.ws?.sendMessage(message) ?? false;
  }

  servicesChanged(): void {
    this.ws?.servicesChanged();
    this.sse?.servicesChanged();
    this.probe?.servicesChanged();
  }

  private tagged(kind: TransportKind, change: Omit<StateChange, 'previous'>): Omit<StateChange, 'previous'> {
    return { ...change, transport: kind };
  }

  private wsHooks(): ConnectionHooks {
    return {
      ...this.hooks,
      state: (change) => {
        if (change.state === 'open') this.failures = this.unreachable = 0;
        this.hooks.state(this.tagged('websocket', change));
      },
      openFailed: () => {
        this.failures += 1;
        this.unreachable += 1;
        if (this.failures >= this.options.fallbackAfter && !this.stopped) {
          // After the WebSocket's own `reconnecting`: the switch happens once that is reported.
          queueMicrotask(() => this.toSse());
        }
      },
    };
  }

  private toSse(): void {
    if (this.stopped || this.sse || !this.ws || this.failures < this.options.fallbackAfter) return;
    this.ws.stop();
    this.ws = null;
    this.sseOpened = false;
    this.sse = this.makeSse(
      {
        ...this.hooks,
        state: (change) => {
          if (change.state === 'open') this.sseOpened = true;
          this.hooks.state(this.tagged('sse', change));
        },
        openFailed: () => {
          if (!this.sseOpened) this.backToWebSocket();
        },
      },
      'reconnecting',
      'rejected',
    );
    this.sse.start();
    this.scheduleProbe();
  }

  // Neither transport reached the server: it is down, not blocking WebSockets.
  private backToWebSocket(): void {
    if (this.stopped || !this.sse) return;
    this.sse.stop();
    this.sse = null;
    this.platform.clearTimeout(this.timer);
    this.timer = null;
    this.probe?.stop();
    this.probe = null;
    this.failures = 0;
    this.unreachable += 1;
    const backoff = new Backoff({
      baseMs: this.options.baseDelayMs,
      maxMs: this.options.maxDelayMs,
      random: () => this.platform.random(),
    });
    const attempt = this.unreachable;
    while (backoff.attempt < attempt - 1) backoff.next();
    const delayMs = backoff.next();
    this.hooks.state({ state: 'reconnecting', attempt, delayMs, transport: 'websocket' });
    this.reopenWebSocket = () => {
      this.reopenWebSocket = null;
      if (this.stopped || this.ws || this.sse) return;
      this.ws = this.makeWebSocket(this.wsHooks(), 'reconnecting', attempt);
      this.ws.start();
    };
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      this.reopenWebSocket?.();
    }, delayMs);
  }

  private scheduleProbe(): void {
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      this.startProbe();
    }, this.retries.next());
  }

  // A WebSocket beside the SSE stream: only its events and errors count until its ack.
  private startProbe(): void {
    if (this.stopped || !this.sse) return;
    let promoted = false;
    const probe = this.makeWebSocket(
      {
        ...this.hooks,
        state: (change) => {
          if (promoted) {
            if (change.state === 'open') this.failures = this.unreachable = 0;
            this.hooks.state(this.tagged('websocket', change));
          } else if (change.state === 'open' && this.probe === probe) {
            promoted = true;
            this.probe = null;
            this.sse?.stop();
            this.sse = null;
            this.ws = probe;
            this.failures = this.unreachable = 0;
            this.retries.reset();
            this.hooks.state(this.tagged('websocket', change));
          }
        },
        subscribed: (services) => {
          if (promoted) this.hooks.subscribed?.(services);
        },
        openFailed: () => {
          if (promoted) {
            this.failures += 1;
            if (this.failures >= this.options.fallbackAfter) queueMicrotask(() => this.toSse());
            return;
          }
          if (this.probe !== probe) return;
          probe.stop();
          this.probe = null;
          this.scheduleProbe();
        },
      },
      'reconnecting',
      0,
    );
    this.probe = probe;
    probe.start();
  }
}
