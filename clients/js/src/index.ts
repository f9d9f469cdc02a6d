// @streamgate/client: the browser client for streamgate. A plain ES module without dependencies,
// loadable by a browser as is.

export { RealtimeClient } from './client.js';
export { Subscription } from './subscription.js';
export type { SubscriptionEvents } from './subscription.js';
export type { RealtimeClientOptions, ReconnectOptions } from './client.js';
export { Backoff } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { DedupCache } from './dedup.js';
export { RoomError } from './room.js';
export type { ChatMessage, HistoryPage, Room, RoomEvents, RoomPresence, RoomState, SendResult } from './room.js';
export { UploadError } from './upload_error.js';
export type { UploadOptions, UploadProgress, UploadResult } from './upload.js';
export type { ElectionKind, ElectionTiming } from './leader.js';
export type {
  BusConstructor,
  BusLike,
  FetchLike,
  FetchResponseLike,
  LifecycleHandlers,
  LockManagerLike,
  Platform,
  SocketConstructor,
  SocketLike,
} from './platform.js';
export type {
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
