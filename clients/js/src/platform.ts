// What the client needs from its environment, as narrow structural types. The defaults come from
// the browser's globals; tests pass fakes (a scripted WebSocket, a virtual clock, in-memory
// BroadcastChannels and locks).

export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type SocketConstructor = new (url: string) => SocketLike;

export interface BusLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

/** The part of a fetch Response the SSE transport reads. */
export interface FetchResponseLike {
  readonly status: number;
  readonly body: {
    getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  } | null;
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { signal: AbortSignal; cache: 'no-store'; credentials: 'omit'; headers: Record<string, string> },
) => Promise<FetchResponseLike>;

export type BusConstructor = new (name: string) => BusLike;

/** The part of the Web Locks API the client uses (`navigator.locks`). */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown> | unknown,
  ): Promise<unknown>;
}

export interface LifecycleHandlers {
  /** The browser came back online, or the page became visible: worth trying at once. */
  wake(): void;
  /** The page is going away (closed, navigated, or into the back/forward cache). */
  hide(): void;
  /** The page came back from the back/forward cache. */
  show(): void;
}

export interface Platform {
  WebSocket: SocketConstructor | undefined;
  /** For the Server-Sent Events fallback; without it the client uses only the WebSocket. */
  fetch?: FetchLike | undefined;
  BroadcastChannel: BusConstructor | undefined;
  locks: LockManagerLike | undefined;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
  random(): number;
  /** Subscribes to page lifecycle signals; returns the unsubscribe function. */
  listen(handlers: LifecycleHandlers): () => void;
}

interface BrowserGlobals {
  WebSocket?: SocketConstructor;
  fetch?: FetchLike;
  BroadcastChannel?: BusConstructor;
  navigator?: { locks?: LockManagerLike };
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  addEventListener?: (type: string, fn: (ev: unknown) => void) => void;
  removeEventListener?: (type: string, fn: (ev: unknown) => void) => void;
  document?: {
    visibilityState?: string;
    addEventListener(type: string, fn: () => void): void;
    removeEventListener(type: string, fn: () => void): void;
  };
}

function listenToBrowser(g: BrowserGlobals, handlers: LifecycleHandlers): () => void {
  const add = g.addEventListener;
  const remove = g.removeEventListener;
  if (typeof add !== 'function' || typeof remove !== 'function') return () => {};
  const doc = g.document;
  const onOnline = () => handlers.wake();
  const onVisibility = () => {
    if (doc?.visibilityState === 'visible') handlers.wake();
  };
  const onHide = () => handlers.hide();
  const onShow = (ev: unknown) => {
    if ((ev as { persisted?: boolean }).persisted) handlers.show();
  };
  add.call(g, 'online', onOnline);
  add.call(g, 'pagehide', onHide);
  add.call(g, 'pageshow', onShow);
  doc?.addEventListener('visibilitychange', onVisibility);
  return () => {
    remove.call(g, 'online', onOnline);
    remove.call(g, 'pagehide', onHide);
    remove.call(g, 'pageshow', onShow);
    doc?.removeEventListener('visibilitychange', onVisibility);
  };
}

export function browserPlatform(): Platform {
  const g = globalThis as unknown as BrowserGlobals;
  const locks = g.navigator?.locks;
  return {
    WebSocket: g.WebSocket,
    // Called through the global: a detached window.fetch throws "Illegal invocation".
    fetch: typeof g.fetch === 'function' ? (url, init) => g.fetch!(url, init) : undefined,
    BroadcastChannel: g.BroadcastChannel,
    locks: locks && typeof locks.request === 'function' ? locks : undefined,
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (handle) => g.clearTimeout(handle),
    now: () => Date.now(),
    random: () => Math.random(),
    listen: (handlers) => listenToBrowser(g, handlers),
  };
}
