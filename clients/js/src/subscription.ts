// A subscription to one service, as `client.subscribe(service)` returns it. Handles are counted:
// the tab asks for the service while any handle of it (in this tab or, through the leader, in
// any tab) is active, and stops when the last one unsubscribes.

import type { EventHandler, RealtimeError, SubscriptionState } from './types.js';

/** What a Subscription needs from its client. */
export interface SubscriptionOwner {
  on(service: string, eventType: string, handler: EventHandler): () => void;
  release(subscription: Subscription): void;
}

export interface SubscriptionEvents<T> {
  /** Each event of the service. */
  event: EventHandler<T>;
  /** The state changed (`subscribing`, `subscribed`, `error`). */
  state: (state: SubscriptionState) => void;
  /** The server refused the service (`forbidden_service`, `unknown_service`). */
  error: (error: RealtimeError) => void;
}

type Listener = (value: never) => void;

export class Subscription<T = unknown> {
  private currentState: SubscriptionState = 'subscribing';
  private currentError: RealtimeError | undefined;
  private active = true;
  private readonly offs = new Set<() => void>();
  private readonly listeners = { state: new Set<Listener>(), error: new Set<Listener>() };

  constructor(
    readonly service: string,
    private readonly owner: SubscriptionOwner,
  ) {}

  /** `subscribing` until the server confirms the service; again while reconnecting. */
  get state(): SubscriptionState {
    return this.currentState;
  }

  /** Why the server refused the service, when `state` is `error`. */
  get error(): RealtimeError | undefined {
    return this.currentError;
  }

  /** False once `unsubscribe()` was called. */
  get isActive(): boolean {
    return this.active;
  }

  /** Adds a listener; returns the function that removes it. All go with `unsubscribe()`. */
  on<K extends keyof SubscriptionEvents<T>>(type: K, listener: SubscriptionEvents<T>[K]): () => void {
    if (typeof listener !== 'function') throw new TypeError('streamgate: listener must be a function');
    if (!this.active) return () => {};
    let off: () => void;
    if (type === 'event') {
      off = this.owner.on(this.service, '*', listener as EventHandler);
    } else {
      const set = this.listeners[type as 'state' | 'error'];
      const l = listener as Listener;
      set.add(l);
      off = () => set.delete(l);
    }
    const remove = () => {
      off();
      this.offs.delete(remove);
    };
    this.offs.add(remove);
    return remove;
  }

  /** Stops this handle; the service is unsubscribed when no other handle wants it. Idempotent. */
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    for (const off of [...this.offs]) off();
    this.owner.release(this);
  }

  /** @internal The client reports the service's state. */
  update(state: SubscriptionState, error: RealtimeError | undefined): void {
    if (!this.active || state === this.currentState) return;
    this.currentState = state;
    this.currentError = state === 'error' ? error : undefined;
    for (const l of [...this.listeners.state]) call(l, state);
    if (state === 'error' && error) for (const l of [...this.listeners.error]) call(l, error);
  }
}

function call(listener: Listener, value: unknown): void {
  try {
    (listener as (v: unknown) => void)(value);
  } catch (error) {
    // A throwing listener must not stop the others; rethrow where the console sees it.
    queueMicrotask(() => {
      throw error;
    });
  }
}
