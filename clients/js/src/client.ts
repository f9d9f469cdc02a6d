// RealtimeClient: what a page uses. Every tab creates one; the tabs of an origin that share a
// name elect a leader, and only the leader's client opens the WebSocket (Connection). The leader
// relays what it receives to the other tabs over a BroadcastChannel; every tab deduplicates and
// dispatches on its own, so handlers see the same events, once, in every tab.

import { Connection, type ConnectionHooks, type Transport } from './connection.js';
import { DedupCache } from './dedup.js';
import { earlier, isAfter, isServiceName, parseEventId } from './ids.js';
import {
  BroadcastElection,
  DEFAULT_TIMING,
  LockElection,
  SoloElection,
  type Election,
  type ElectionKind,
  type ElectionMessage,
  type ElectionTiming,
} from './leader.js';
import { browserPlatform, type BusLike, type Platform } from './platform.js';
import { hubOf, roomOf, type Room } from './room.js';
import type { UploadOptions, UploadResult } from './upload.js';
import { FallbackTransport, LazyTransport, sseUrlFor } from './fallback.js';
import { Subscription } from './subscription.js';
import type {
  ConnectionState,
  EventHandler,
  RealtimeError,
  RealtimeEvent,
  ResumeFailure,
  StateChange,
  SubscriptionState,
  TokenReason,
  TokenRequest,
  TransportKind,
} from './types.js';

export interface ReconnectOptions {
  /** Window of the first retry in ms; each failure doubles it. Default 500. */
  baseDelayMs?: number;
  /** Largest window in ms. Default 30000. */
  maxDelayMs?: number;
  /** A connection open this long (ms) resets the backoff to the first window. Default 10000. */
  stableAfterMs?: number;
}

export interface RealtimeClientOptions {
  /** The stream URL, e.g. `wss://host/v2/realtime/stream`. The token is added as `access_token`. */
  url: string;
  /**
   * Called before every connection attempt of the leader tab, and to refresh the open socket's token
   * in band (`reason: 'refresh'`); may cache, must honour `forceRefresh`.
   */
  getToken: (request: TokenRequest) => Promise<string> | string;
  /** Services this tab wants. Default none (add later with `setServices`). */
  services?: readonly string[];
  /**
   * Tabs with the same name share one socket. Default: the URL without its query. Give tabs of
   * different users (or different tokens' service grants) different names.
   */
  name?: string;
  /** `auto` (default): Web Locks where available, else BroadcastChannel; `none`: a socket per tab. */
  election?: ElectionKind;
  /** Remembered (service, id) pairs for dedup. Default 10000. */
  dedupSize?: number;
  reconnect?: ReconnectOptions;
  /** Time allowed from starting an attempt's socket to the server's ack, in ms. Default 15000. */
  connectTimeoutMs?: number;
  /** Idle time after which the client pings the server, in ms. Default 20000. */
  pingIntervalMs?: number;
  /** Time a ping may go unanswered before the socket counts as dead, in ms. Default 10000. */
  pongTimeoutMs?: number;
  /** Ids to resume after (service → last id), e.g. restored from storage after a reload. */
  resume?: Readonly<Record<string, string>>;
  /** Start at once (default). `false`: nothing happens until `start()`. */
  autoStart?: boolean;
  /**
   * How the leader tab may receive events, in order of preference. Default both: the WebSocket,
   * and Server-Sent Events after `fallbackAfter` WebSocket attempts in a row failed to open.
   */
  transports?: readonly TransportKind[];
  /** The SSE endpoint. Default: `url` with `ws(s):` → `http(s):` and a final `/stream` → `/sse`. */
  sseUrl?: string;
  /** WebSocket attempts in a row that fail to open before falling back to SSE. Default 3. */
  fallbackAfter?: number;
  /**
   * While on SSE, when to try the WebSocket again, in ms: the first window (default 30000),
   * doubling up to the largest (default 300000).
   */
  websocketRetry?: { baseDelayMs?: number; maxDelayMs?: number };
  /** Environment overrides; for tests. */
  platform?: Partial<Platform>;
  /** BroadcastChannel election timing; for tests. */
  electionTiming?: Partial<ElectionTiming>;
}

type BusMessage =
  | ElectionMessage
  | { t: 'hello'; tab: string; services: string[]; lastIds: Record<string, string>; reply: boolean }
  | { t: 'bye'; tab: string }
  | { t: 'leader'; tab: string }
  | { t: 'ev'; tab: string; e: RealtimeEvent }
  | { t: 'state'; tab: string; change: Omit<StateChange, 'previous'> }
  | { t: 'resume'; tab: string; failure: ResumeFailure }
  | { t: 'error'; tab: string; error: RealtimeError }
  | { t: 'wake'; tab: string }
  | { t: 'send'; tab: string; m: Record<string, unknown> }
  | { t: 'frame'; tab: string; f: Record<string, unknown> }
  | { t: 'subs'; tab: string; confirmed: string[]; refused: RealtimeError[] };

const REFUSALS = new Set(['forbidden_service', 'unknown_service']);

// How long a new leader waits for the other tabs to report their last ids before it connects.
const COLLECT_MS = 250;

type Listener<T> = (value: T) => void;

let instances = 0;

function normalizeServices(services: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const service of services ?? []) {
    if (!isServiceName(service)) {
      throw new TypeError(`streamgate: invalid service name ${JSON.stringify(service)} (1-64 of A-Z a-z 0-9 _ . : -)`);
    }
    if (!out.includes(service)) out.push(service);
  }
  return out;
}

function report(error: unknown): void {
  // A throwing handler must not stop dispatch to the others; rethrow where the console sees it.
  queueMicrotask(() => {
    throw error;
  });
}

function emit<T>(listeners: Set<Listener<T>>, value: T): void {
  for (const listener of [...listeners]) {
    try {
      listener(value);
    } catch (error) {
      report(error);
    }
  }
}

export class RealtimeClient {
  /** This tab's id in the election and on the BroadcastChannel. */
  readonly tabId: string;
  readonly name: string;

  private readonly options: RealtimeClientOptions;
  private readonly platform: Platform;
  private wanted: string[];
  private explicit: string[];
  private readonly subscriptions = new Map<string, Set<Subscription>>();
  private subsQueued = false;
  // Decided by the leader, relayed to every tab: services the server confirmed on the open
  // connection, and those it refused (left out of the connection until no tab wants them).
  private confirmed: string[] = [];
  private readonly refused = new Map<string, RealtimeError>();
  private currentTransport: TransportKind = 'websocket';
  private currentState: ConnectionState = 'connecting';
  private everOpen = false;
  private started = false;
  private leader = false;
  private bus: BusLike | null = null;
  private election: Election | null = null;
  private connection: Transport | null = null;
  private unlisten: (() => void) | null = null;
  private suspended = false;
  private readonly dedup: DedupCache;
  private readonly lastIds = new Map<string, string>();
  private readonly peers = new Map<string, string[]>();
  private leaderTab: string | null = null;
  private collecting: { pending: Set<string>; done: () => void } | null = null;
  private peerFloor: Map<string, string> | null = null;

  private readonly handlers = new Map<string, Set<EventHandler>>();
  private readonly stateListeners = new Set<Listener<StateChange>>();
  private readonly resumeListeners = new Set<Listener<ResumeFailure>>();
  private readonly errorListeners = new Set<Listener<RealtimeError>>();
  private readonly leaderListeners = new Set<Listener<boolean>>();

  constructor(options: RealtimeClientOptions) {
    if (typeof options?.url !== 'string' || options.url === '') {
      throw new TypeError('streamgate: `url` is required (wss://host/v2/realtime/stream)');
    }
    if (typeof options.getToken !== 'function') {
      throw new TypeError('streamgate: `getToken` is required');
    }
    this.options = options;
    this.platform = { ...browserPlatform(), ...options.platform };
    this.explicit = normalizeServices(options.services);
    this.wanted = [...this.explicit];
    const kinds = options.transports ?? ['websocket', 'sse'];
    if (kinds.length === 0 || kinds.some((k) => k !== 'websocket' && k !== 'sse')) {
      throw new TypeError("streamgate: `transports` lists 'websocket' and/or 'sse'");
    }
    if (kinds[0] === 'sse') this.currentTransport = 'sse';
    this.name = options.name ?? options.url.split(/[?#]/)[0]!;
    // The counter keeps clients of one page apart even if `random` is not random (tests).
    instances += 1;
    const random = Math.floor(this.platform.random() * 2 ** 52).toString(36);
    this.tabId = `${random}-${this.platform.now().toString(36)}-${instances}`;
    this.dedup = new DedupCache(options.dedupSize ?? 10000);
    // A malformed id would get every handshake refused (bad_event_id, 1008): ignore it instead.
    for (const [service, id] of Object.entries(options.resume ?? {})) {
      if (isServiceName(service) && typeof id === 'string' && parseEventId(id)) this.lastIds.set(service, id);
    }
    if (options.autoStart !== false) this.start();
  }

  // ---- public API ----

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Whether this tab holds the socket. */
  get isLeader(): boolean {
    return this.leader;
  }

  /** The services this tab asked for (`services`/`setServices`, then active subscriptions). */
  get services(): readonly string[] {
    return this.wanted;
  }

  /** The leader's transport (`sse` while the WebSocket can't open). */
  get transport(): TransportKind {
    return this.currentTransport;
  }

  /**
   * Subscribes this tab to `service` and returns a handle with its state (`subscribing`,
   * `subscribed`, `error`) and its events. Handles are counted: the service stays subscribed
   * while any handle, in any tab, is active. A service the server refuses fails only its own
   * subscriptions: the connection goes on without it.
   */
  subscribe<T = unknown>(service: string): Subscription<T> {
    const [name] = normalizeServices([service]);
    const subscription = new Subscription<T>(name!, {
      on: (s, type, handler) => this.on(s, type, handler),
      release: (sub) => {
        const set = this.subscriptions.get(sub.service);
        set?.delete(sub);
        if (set && set.size === 0) this.subscriptions.delete(sub.service);
        this.wantedChanged();
      },
    });
    let set = this.subscriptions.get(name!);
    if (!set) {
      set = new Set();
      this.subscriptions.set(name!, set);
    }
    set.add(subscription as Subscription);
    subscription.update(this.subscriptionState(name!), this.refused.get(name!));
    this.wantedChanged();
    return subscription;
  }

  /** The last event id seen per service (in any tab), e.g. to persist for the next page load. */
  lastEventIds(): Record<string, string> {
    return Object.fromEntries(this.lastIds);
  }

  /**
   * Calls `handler` for each event of `service` (`'*'`: every service this tab asked for) whose
   * type is `eventType` (`'*'`: any). Returns the unsubscribe function.
   */
  on<T = unknown>(service: string, eventType: string, handler: EventHandler<T>): () => void {
    if (typeof handler !== 'function') throw new TypeError('streamgate: handler must be a function');
    const key = `${service}\u0000${eventType}`;
    let set = this.handlers.get(key);
    if (!set) {
      set = new Set();
      this.handlers.set(key, set);
    }
    const h = handler as EventHandler;
    set.add(h);
    return () => {
      const current = this.handlers.get(key);
      current?.delete(h);
      if (current && current.size === 0) this.handlers.delete(key);
    };
  }

  /** Connection state changes (`connecting`, `open`, `reconnecting`, `closed`). */
  onStateChange(listener: Listener<StateChange>): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** The server could not resume a service this tab asked for: reload its state. */
  onResumeFailed(listener: Listener<ResumeFailure>): () => void {
    this.resumeListeners.add(listener);
    return () => this.resumeListeners.delete(listener);
  }

  /** Error frames from the server and client-side failures (token, socket). Informational. */
  onError(listener: Listener<RealtimeError>): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** This tab became leader (true) or stopped being leader (false). */
  onLeaderChange(listener: Listener<boolean>): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  /** Replaces the services this tab wants; the shared socket subscribes/unsubscribes live. */
  setServices(services: readonly string[]): void {
    const next = normalizeServices(services);
    if (next.length === this.explicit.length && next.every((s, i) => s === this.explicit[i])) return;
    this.explicit = next;
    if (!this.recomputeWanted() || !this.started) return;
    this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: {}, reply: true });
    this.pruneRefused();
    this.connection?.servicesChanged();
  }

  /**
   * Uploads `file` over its own upload socket from this tab, resuming after dropped connections;
   * resolves with the server's upload id and SHA-256. Works whether or not this tab leads.
   */
  async upload(file: Blob, options: UploadOptions = {}): Promise<UploadResult> {
    // Loaded on first use: pages that never upload don't pay for it.
    const { upload } = await import('./upload.js');
    return upload(file, options, { url: this.options.url, getToken: this.options.getToken, platform: this.platform });
  }

  /** Chat room `name` (the same object on every call): join, leave, send, typing, history, events. */
  room(name: string): Room {
    return roomOf(this, name);
  }

  // ---- plumbing for room.ts (internal) ----

  /** @internal A client message from this tab; the leader's room hub puts it on the socket. */
  sendMessage(message: Record<string, unknown>): void {
    if (this.leader) hubOf(this).outgoing(message, this.tabId);
    else this.post({ t: 'send', tab: this.tabId, m: message });
  }

  /** @internal Leader only: writes a client message on the socket; false when none is open. */
  sendToSocket(message: Record<string, unknown>): boolean {
    return this.connection?.sendMessage(message) ?? false;
  }

  /** @internal Leader only: hands a chat frame to the other tabs. */
  relayFrame(frame: Record<string, unknown>): void {
    this.post({ t: 'frame', tab: this.tabId, f: frame });
  }

  private recomputeWanted(): boolean {
    const next = [...this.explicit];
    for (const service of this.subscriptions.keys()) if (!next.includes(service)) next.push(service);
    if (next.length === this.wanted.length && next.every((s, i) => s === this.wanted[i])) return false;
    this.wanted = next;
    return true;
  }

  // Subscriptions change in bursts (React's StrictMode mounts, unmounts and mounts an effect in
  // one go): the connection hears of the net change once, after the burst.
  private wantedChanged(): void {
    if (this.subsQueued) return;
    this.subsQueued = true;
    queueMicrotask(() => {
      this.subsQueued = false;
      if (!this.recomputeWanted() || !this.started) return;
      this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: {}, reply: true });
      this.pruneRefused();
      this.connection?.servicesChanged();
    });
  }

  // ---- subscription states ----

  private subscriptionState(service: string): SubscriptionState {
    if (this.refused.has(service)) return 'error';
    return this.currentState === 'open' && this.confirmed.includes(service) ? 'subscribed' : 'subscribing';
  }

  private updateSubscriptions(): void {
    for (const [service, set] of this.subscriptions) {
      const state = this.subscriptionState(service);
      for (const sub of [...set]) sub.update(state, this.refused.get(service));
    }
  }

  /** Leader: tells the other tabs what the server confirmed and refused. */
  private postSubs(): void {
    if (!this.leader) return;
    this.post({ t: 'subs', tab: this.tabId, confirmed: this.confirmed, refused: [...this.refused.values()] });
  }

  /** Leader: a refused service nobody wants any more may be asked for again later. */
  private pruneRefused(): void {
    if (!this.leader || this.refused.size === 0) return;
    const all = this.union(false);
    let changed = false;
    for (const service of [...this.refused.keys()]) {
      if (!all.includes(service)) {
        this.refused.delete(service);
        changed = true;
      }
    }
    if (changed) this.postSubs();
  }

  /** Starts after `autoStart: false` or a `close()`. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.suspended = false;
    if (this.currentState === 'closed')
      this.setState({ state: this.everOpen ? 'reconnecting' : 'connecting', attempt: 0 });
    const Bus = this.platform.BroadcastChannel;
    const kind = this.resolveElection();
    if (Bus && kind !== 'none') {
      this.bus = new Bus(`streamgate:${this.name}`);
      this.bus.onmessage = (ev) => this.onBus(ev.data as BusMessage);
    }
    const onLeader = (leader: boolean) => this.onLeaderChanged(leader);
    if (kind === 'locks' && this.platform.locks) {
      this.election = new LockElection(this.platform.locks, `streamgate:${this.name}`, onLeader);
    } else if (kind === 'broadcast' && this.bus) {
      const timing = { ...DEFAULT_TIMING, ...this.options.electionTiming };
      this.election = new BroadcastElection(this.tabId, (m) => this.post(m), this.platform, onLeader, timing);
    } else {
      this.election = new SoloElection(onLeader);
    }
    // Kept while suspended in the back/forward cache, so that `show` can bring the client back.
    this.unlisten ??= this.platform.listen({
      wake: () => {
        if (this.started) this.wake();
      },
      hide: () => {
        if (!this.started) return;
        this.stop();
        this.suspended = true;
      },
      show: () => {
        if (this.suspended) this.start();
      },
    });
    this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: this.lastEventIds(), reply: false });
    this.election.start();
  }

  /**
   * Closes this tab's client. The leader closes its socket and hands leadership to another tab,
   * which reconnects and resumes. Handlers stay registered; `start()` resumes.
   */
  close(): void {
    this.suspended = false;
    const unlisten = this.unlisten;
    this.unlisten = null;
    unlisten?.();
    this.stop();
  }

  private stop(): void {
    if (!this.started) return;
    this.started = false;
    this.connection?.stop();
    this.connection = null;
    this.post({ t: 'bye', tab: this.tabId });
    this.election?.stop();
    this.election = null;
    this.bus?.close();
    this.bus = null;
    this.peers.clear();
    this.finishCollecting();
    this.setState({ state: 'closed', attempt: 0 });
  }

  // ---- leadership ----

  private resolveElection(): ElectionKind {
    const kind = this.options.election ?? 'auto';
    if (!this.platform.BroadcastChannel) return 'none'; // no way to relay: every tab on its own
    if (kind === 'auto') return this.platform.locks ? 'locks' : 'broadcast';
    if (kind === 'locks' && !this.platform.locks) return 'broadcast';
    return kind;
  }

  private onLeaderChanged(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    if (leader) {
      this.post({ t: 'leader', tab: this.tabId });
      this.startCollecting();
      this.connection = this.createConnection();
      this.connection.start();
    } else {
      this.connection?.stop();
      this.connection = null;
      this.finishCollecting();
      if (this.leaderTab === this.tabId) this.leaderTab = null;
      // Stepped down but still here: the next leader must include our services.
      if (this.started) {
        this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: this.lastEventIds(), reply: true });
      }
    }
    emit(this.leaderListeners, leader);
  }

  private createConnection(): Transport {
    const o = this.options;
    const common = {
      getToken: o.getToken,
      baseDelayMs: o.reconnect?.baseDelayMs ?? 500,
      maxDelayMs: o.reconnect?.maxDelayMs ?? 30000,
      stableAfterMs: o.reconnect?.stableAfterMs ?? 10000,
      connectTimeoutMs: o.connectTimeoutMs ?? 15000,
    };
    const pingIntervalMs = o.pingIntervalMs ?? 20000;
    const pongTimeoutMs = o.pongTimeoutMs ?? 10000;
    const first: ConnectionState = this.everOpen ? 'reconnecting' : 'connecting';
    const hooks = this.connectionHooks();
    const websocket = (h: ConnectionHooks, state: ConnectionState, startAttempt = 0) =>
      new Connection({ ...common, url: o.url, pingIntervalMs, pongTimeoutMs, startAttempt }, h, this.platform, state);
    // The server pings a quiet stream every --sse-heartbeat (15 s): silence past a ping interval
    // and its timeout is a dead stream.
    const sse = (h: ConnectionHooks, state: ConnectionState, firstReason: TokenReason = 'initial') =>
      new LazyTransport(
        () =>
          import('./sse_transport.js').then(
            ({ SseConnection }) =>
              new SseConnection(
                {
                  ...common,
                  url: o.sseUrl ?? sseUrlFor(o.url),
                  idleTimeoutMs: pingIntervalMs + pongTimeoutMs,
                  firstReason,
                },
                h,
                this.platform,
                state,
              ),
          ),
        h,
        this.platform,
        common.maxDelayMs,
      );
    const kinds = o.transports ?? ['websocket', 'sse'];
    const tag = (kind: TransportKind): ConnectionHooks => ({
      ...hooks,
      state: (change) => hooks.state({ ...change, transport: kind }),
    });
    if (kinds[0] === 'sse') return sse(tag('sse'), first);
    // Without fetch (an old browser, a test platform) there is nothing to fall back to.
    if (!kinds.includes('sse') || !this.platform.fetch) return websocket(tag('websocket'), first);
    return new FallbackTransport(
      websocket,
      sse,
      hooks,
      this.platform,
      {
        fallbackAfter: Math.max(1, o.fallbackAfter ?? 3),
        baseDelayMs: common.baseDelayMs,
        maxDelayMs: common.maxDelayMs,
        retryBaseMs: o.websocketRetry?.baseDelayMs ?? 30000,
        retryMaxMs: o.websocketRetry?.maxDelayMs ?? 300000,
      },
      first,
    );
  }

  private connectionHooks(): ConnectionHooks {
    return {
      services: () => this.union(),
      resumeId: (service) => this.resumeId(service),
      beforeConnect: () => this.collected(),
      handshakeSent: () => {
        this.peerFloor = null;
      },
      event: (event) => this.accept(event, true),
      state: (change) => this.leaderState(change),
      resumed: (service, recovered, reason, lastId) => {
        if (!recovered) this.resumeFailed({ service, reason, lastId }, true);
      },
      error: (error) => {
        // Refused: that service's subscriptions fail, and the connection goes on without it.
        if (REFUSALS.has(error.code) && error.service !== undefined && this.union(false).includes(error.service)) {
          this.refused.set(error.service, error);
          this.postSubs();
          this.updateSubscriptions();
          queueMicrotask(() => this.connection?.servicesChanged());
        }
        this.post({ t: 'error', tab: this.tabId, error });
        emit(this.errorListeners, error);
      },
      frame: (frame) => hubOf(this).frame(frame, true),
      subscribed: (services) => {
        this.confirmed = services;
        this.postSubs();
        this.updateSubscriptions();
      },
    };
  }

  /** Services of this tab first, then the other tabs', each once; without the refused ones. */
  private union(withoutRefused = true): string[] {
    const all = [...this.wanted];
    for (const services of this.peers.values()) {
      for (const s of services) if (!all.includes(s)) all.push(s);
    }
    return withoutRefused ? all.filter((s) => !this.refused.has(s)) : all;
  }

  private resumeId(service: string): string | undefined {
    const mine = this.lastIds.get(service);
    const floor = this.peerFloor?.get(service);
    if (mine === undefined) return floor;
    return floor === undefined ? mine : earlier(mine, floor);
  }

  // A new leader resumes from the oldest id that any live tab has (same epoch), so no tab misses
  // what the old leader received but didn't relay in time; dedup drops what a tab already has.
  private startCollecting(): void {
    this.finishCollecting();
    this.peerFloor = new Map();
    // The previous leader is gone (it released the lock, or went silent): don't wait for it.
    if (this.leaderTab !== null && this.leaderTab !== this.tabId) this.peers.delete(this.leaderTab);
    this.leaderTab = this.tabId;
    const pending = new Set(this.peers.keys());
    if (pending.size === 0) return;
    let timer: unknown = null;
    const collect = {
      pending,
      done: () => {
        if (this.collecting !== collect) return;
        this.collecting = null;
        this.platform.clearTimeout(timer);
        // Tabs that didn't answer are gone (closed or crashed without a goodbye).
        for (const tab of pending) this.peers.delete(tab);
        this.waiters.splice(0).forEach((resolve) => resolve());
      },
    };
    this.collecting = collect;
    timer = this.platform.setTimeout(() => collect.done(), COLLECT_MS);
  }

  private readonly waiters: Array<() => void> = [];

  private collected(): Promise<void> {
    if (!this.collecting) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private finishCollecting(): void {
    this.collecting?.done();
    this.collecting = null;
    this.waiters.splice(0).forEach((resolve) => resolve());
  }

  // ---- events ----

  /** Relays (leader), dedups, records the id and dispatches to this tab's handlers. */
  private accept(event: RealtimeEvent, fromSocket: boolean): void {
    // Relay even what this tab already has: after a takeover the replay carries events that only
    // some followers missed, and each tab's own dedup decides.
    if (fromSocket) this.post({ t: 'ev', tab: this.tabId, e: event });
    // An ephemeral event (typing) has no id: nothing to resume from or deduplicate by.
    if (typeof event.id === 'string') {
      const last = this.lastIds.get(event.service);
      if (last !== undefined && !isAfter(event.id, last)) return;
      if (!this.dedup.add(`${event.service}\n${event.id}`)) return;
      this.lastIds.set(event.service, event.id);
    }
    if (!this.wanted.includes(event.service)) {
      if (event.service.startsWith('room:')) hubOf(this).frame({ type: 'event', ...event }, false);
      return;
    }
    this.dispatch(`${event.service}\u0000${event.event}`, event);
    this.dispatch(`${event.service}\u0000*`, event);
    this.dispatch(`*\u0000${event.event}`, event);
    this.dispatch(`*\u0000*`, event);
  }

  private dispatch(key: string, event: RealtimeEvent): void {
    const set = this.handlers.get(key);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(event);
      } catch (error) {
        report(error);
      }
    }
  }

  private resumeFailed(failure: ResumeFailure, fromSocket: boolean): void {
    if (fromSocket) this.post({ t: 'resume', tab: this.tabId, failure });
    if (this.wanted.includes(failure.service)) emit(this.resumeListeners, failure);
  }

  // ---- state ----

  private leaderState(change: Omit<StateChange, 'previous'>): void {
    this.post({ t: 'state', tab: this.tabId, change });
    this.setState(change);
  }

  private setState(change: Omit<StateChange, 'previous'>): void {
    let state = change.state;
    // A tab that has been connected before is reconnecting, whichever tab now leads.
    if (state === 'connecting' && this.everOpen) state = 'reconnecting';
    if (state === 'open') this.everOpen = true;
    const previous = this.currentState;
    // A repeated `reconnecting` is news only when it announces another scheduled retry, and a
    // repeated `open` only when the transport changed (back to the WebSocket from SSE).
    const transportChanged = change.transport !== undefined && change.transport !== this.currentTransport;
    const news = (state === 'reconnecting' && change.delayMs !== undefined) || (state === 'open' && transportChanged);
    if (state === previous && !news) return;
    if (previous === 'closed' && this.started === false && state !== 'closed') return;
    this.currentState = state;
    if (change.transport !== undefined) this.currentTransport = change.transport;
    emit(this.stateListeners, { ...change, state, previous });
    this.updateSubscriptions();
  }

  private wake(): void {
    if (this.connection) this.connection.wake();
    else this.post({ t: 'wake', tab: this.tabId });
  }

  // ---- the BroadcastChannel ----

  private post(message: BusMessage): void {
    try {
      this.bus?.postMessage(message);
    } catch {
      // Closed channel (page going away): nothing to tell anyone.
    }
  }

  private onBus(message: BusMessage): void {
    if (!this.started || typeof message !== 'object' || message === null || message.tab === this.tabId) return;
    switch (message.t) {
      case 'el-hb':
      case 'el-who':
      case 'el-claim':
      case 'el-resign':
        this.election?.handle(message);
        break;
      case 'hello': {
        const known = this.peers.has(message.tab);
        this.peers.set(message.tab, normalizeSafe(message.services));
        if (!known && !message.reply) {
          // Introduce ourselves so the newcomer knows every tab if it ever leads.
          this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: {}, reply: true });
        }
        if (this.leader) {
          if (this.collecting && this.peerFloor) {
            for (const [service, id] of Object.entries(message.lastIds ?? {})) {
              if (typeof id !== 'string') continue;
              const floor = this.peerFloor.get(service);
              this.peerFloor.set(service, floor === undefined ? id : earlier(floor, id));
            }
            this.collecting.pending.delete(message.tab);
            if (this.collecting.pending.size === 0) this.collecting.done();
          }
          if (!known) {
            const change = { state: this.currentState, attempt: 0, transport: this.currentTransport };
            this.post({ t: 'state', tab: this.tabId, change });
          }
          this.pruneRefused();
          this.postSubs();
          this.connection?.servicesChanged();
        }
        break;
      }
      case 'bye':
        this.peers.delete(message.tab);
        this.pruneRefused();
        if (this.leaderTab === message.tab) this.leaderTab = null;
        if (this.collecting) {
          this.collecting.pending.delete(message.tab);
          if (this.collecting.pending.size === 0) this.collecting.done();
        }
        this.connection?.servicesChanged();
        break;
      case 'leader':
        this.leaderTab = message.tab;
        // The new leader waits for our ids before it connects.
        this.post({ t: 'hello', tab: this.tabId, services: this.wanted, lastIds: this.lastEventIds(), reply: true });
        break;
      case 'ev':
        if (!this.leader) this.accept(message.e, false);
        break;
      case 'state':
        if (!this.leader) {
          this.leaderTab = message.tab;
          this.setState(message.change);
        }
        break;
      case 'resume':
        if (!this.leader) this.resumeFailed(message.failure, false);
        break;
      case 'error':
        if (!this.leader) emit(this.errorListeners, message.error);
        break;
      case 'wake':
        this.connection?.wake();
        break;
      case 'send':
        if (this.leader) hubOf(this).outgoing(message.m, message.tab);
        break;
      case 'frame':
        if (!this.leader) hubOf(this).frame(message.f, false);
        break;
      case 'subs':
        if (!this.leader && Array.isArray(message.confirmed) && Array.isArray(message.refused)) {
          this.confirmed = normalizeSafe(message.confirmed);
          this.refused.clear();
          for (const error of message.refused) {
            if (typeof error?.service === 'string') this.refused.set(error.service, error);
          }
          this.updateSubscriptions();
        }
        break;
    }
  }
}

function normalizeSafe(services: unknown): string[] {
  if (!Array.isArray(services)) return [];
  return services.filter((s): s is string => isServiceName(s));
}
