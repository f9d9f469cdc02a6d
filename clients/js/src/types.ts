// Public value types of @streamgate/client. The event shape is the server's event frame minus its
// per-connection fields (`type`, `seq`), so it is the same in every tab and after every reconnect.

/**
 * One event, as the server sent it. `id` is `<epoch>-<offset>` and is what resume and dedup use;
 * ephemeral events (a chat room's typing indicator) are never stored and have no id.
 */
export interface RealtimeEvent<T = unknown> {
  service: string;
  id?: string;
  event: string;
  data: T;
  timestamp: string;
}

/**
 * `connecting`: the first attempt (no socket has been open yet); `open`: the server acknowledged the
 * handshake; `reconnecting`: the socket is down and another attempt is coming (emitted again for each
 * scheduled retry); `closed`: `close()` was called.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Failed attempts in a row so far (0 once a connection has been stable). */
  attempt: number;
  /** For `reconnecting`: how long until the next attempt, in milliseconds. */
  delayMs?: number;
  /** The WebSocket close code that ended the previous connection, if there was one. */
  closeCode?: number;
  /** The transport of this state (`open` over `sse` means the WebSocket fallback is in use). */
  transport?: TransportKind;
}

/** Why `getToken` is being called. */
export type TokenReason =
  | 'initial' // first connection of this leader
  | 'reconnect' // the previous connection dropped for a reason unrelated to the token
  | 'expired' // the server closed with 4001: the token's `exp` passed
  | 'rejected' // the socket closed before it opened: possibly a 401 at the upgrade
  | 'refresh'; // the open socket's token nears its exp: a new one is sent in band, no reconnect

export interface TokenRequest {
  reason: TokenReason;
  /**
   * True when the previous token must not be reused (`expired`, `rejected` or `refresh`): bypass
   * caches.
   */
  forceRefresh: boolean;
  /** Failed attempts in a row before this one. */
  attempt: number;
}

/** Emitted when the server could not resume a service: reload that service's state. */
export interface ResumeFailure {
  service: string;
  /** `too_old`, `epoch_changed`, `unknown_id`, `unavailable` (see docs/protocol.md). */
  reason: string;
  /** The id the client asked to resume after. */
  lastId: string;
}

/** An error frame from the server, or a client-side failure (`token_error`, `socket_error`, ...). */
export interface RealtimeError {
  code: string;
  message: string;
  closeCode?: number;
  /** For `unknown_service` and `forbidden_service`: the service the server refused. */
  service?: string;
}

export type EventHandler<T = unknown> = (event: RealtimeEvent<T>) => void;

/**
 * `subscribing`: asked for, not yet confirmed by the server (also while reconnecting);
 * `subscribed`: the open connection receives its events; `error`: the server refused the service
 * (`forbidden_service`, `unknown_service`); the other services are not affected.
 */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'error';

/** How the leader tab receives events: a WebSocket, or Server-Sent Events when it can't open one. */
export type TransportKind = 'websocket' | 'sse';
