// React bindings: <RealtimeProvider> owns (or is given) one RealtimeClient for a subtree, and the
// hooks read from it. The only module of the package that imports React.
//
// Re-renders never reconnect: the provider keeps its client for as long as `url`, `name` and
// `election` stay the same, reads `getToken` through a ref, and compares `services` by value.
// Under StrictMode's mount/unmount/mount the close is deferred a tick and cancelled by the
// remount, so the socket is opened once.

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import { RealtimeClient, type RealtimeClientOptions } from './client.js';
import type { Subscription } from './subscription.js';
import type { ConnectionState, EventHandler, RealtimeError, ResumeFailure, SubscriptionState } from './types.js';

const ClientContext = createContext<RealtimeClient | null>(null);

export type RealtimeProviderProps =
  | { client: RealtimeClient; children?: ReactNode }
  | (Omit<RealtimeClientOptions, 'autoStart'> & { client?: undefined; children?: ReactNode });

const pendingClose = new WeakMap<RealtimeClient, ReturnType<typeof setTimeout>>();

function identity(props: RealtimeClientOptions): string {
  return JSON.stringify([props.url, props.name ?? null, props.election ?? 'auto']);
}

/**
 * Provides a client to the hooks below it. With `client`, the app owns it (starts and closes it);
 * with `url`/`getToken`/`services`, the provider creates it on mount and closes it on unmount.
 */
export function RealtimeProvider(props: RealtimeProviderProps): ReactNode {
  const external = props.client;
  let options: RealtimeClientOptions | null = null;
  if (!external) {
    const {
      children: _children,
      client: _client,
      ...rest
    } = props as RealtimeClientOptions & {
      children?: ReactNode;
      client?: undefined;
    };
    options = rest;
  }
  const getTokenRef = useRef(options?.getToken);
  useEffect(() => {
    getTokenRef.current = options?.getToken;
  });

  const key = options ? identity(options) : '';
  const [owned, setOwned] = useState<{ key: string; client: RealtimeClient } | null>(() =>
    options ? { key, client: create(options, getTokenRef) } : null,
  );
  let current = owned;
  if (options && (!owned || owned.key !== key)) {
    // A new identity: a new client (its constructor has no side effects until start()).
    current = { key, client: create(options, getTokenRef) };
    setOwned(current);
  }
  const client = external ?? current!.client;
  const ownClient = external ? null : client;

  useEffect(() => {
    if (!ownClient) return undefined;
    const pending = pendingClose.get(ownClient);
    if (pending !== undefined) {
      clearTimeout(pending);
      pendingClose.delete(ownClient);
    }
    ownClient.start();
    return () => {
      pendingClose.set(
        ownClient,
        setTimeout(() => {
          pendingClose.delete(ownClient);
          ownClient.close();
        }, 0),
      );
    };
  }, [ownClient]);

  const servicesKey = JSON.stringify(options?.services ?? []);
  useEffect(() => {
    if (ownClient) ownClient.setServices(JSON.parse(servicesKey) as string[]);
  }, [ownClient, servicesKey]);

  return createElement(ClientContext.Provider, { value: client }, props.children);
}

function create(
  options: RealtimeClientOptions,
  getTokenRef: { current: RealtimeClientOptions['getToken'] | undefined },
): RealtimeClient {
  return new RealtimeClient({
    ...options,
    autoStart: false,
    getToken: (request) => {
      const getToken = getTokenRef.current ?? options.getToken;
      return getToken(request);
    },
  });
}

/** The provider's client; throws outside a <RealtimeProvider>. */
export function useRealtimeClient(): RealtimeClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('streamgate: useRealtime* hooks must be used inside <RealtimeProvider>');
  return client;
}

/**
 * Calls `handler` for each event of `service` with type `eventType` (`'*'` for any). Subscribes
 * the service itself (a counted subscription, so the provider need not list it; `'*'` means the
 * services already asked for) and lets it go on unmount. The latest handler is used without
 * resubscribing; changing `service` or `eventType` resubscribes.
 */
export function useRealtimeEvent<T = unknown>(service: string, eventType: string, handler: EventHandler<T>): void {
  const client = useRealtimeClient();
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => {
    const subscription = service === '*' ? null : client.subscribe(service);
    const off = client.on<T>(service, eventType, (event) => ref.current(event));
    return () => {
      off();
      subscription?.unsubscribe();
    };
  }, [client, service, eventType]);
}

/**
 * Subscribes `service` for the component's life and returns its state (`subscribing`,
 * `subscribed`, `error`) and, when refused, the server's error; re-renders when they change.
 */
export function useSubscription(service: string): { state: SubscriptionState; error: RealtimeError | undefined } {
  const client = useRealtimeClient();
  const [subscription, setSubscription] = useState<Subscription | null>(null);
  useEffect(() => {
    const sub = client.subscribe(service);
    setSubscription(sub);
    return () => sub.unsubscribe();
  }, [client, service]);
  const subscribe = useCallback(
    (onChange: () => void) => (subscription ? subscription.on('state', onChange) : () => {}),
    [subscription],
  );
  const state = useSyncExternalStore(
    subscribe,
    () => subscription?.state ?? 'subscribing',
    () => 'subscribing' as const,
  );
  return { state, error: state === 'error' ? subscription?.error : undefined };
}

/** The connection state; re-renders when it changes. */
export function useConnectionState(): ConnectionState {
  const client = useRealtimeClient();
  const subscribe = useCallback((onChange: () => void) => client.onStateChange(onChange), [client]);
  return useSyncExternalStore(
    subscribe,
    () => client.state,
    () => client.state,
  );
}

/** Calls `handler` when the server could not resume a service (reload that service's state). */
export function useResumeFailed(handler: (failure: ResumeFailure) => void): void {
  const client = useRealtimeClient();
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => client.onResumeFailed((failure) => ref.current(failure)), [client]);
}

export type {
  ConnectionState,
  EventHandler,
  RealtimeError,
  RealtimeEvent,
  ResumeFailure,
  SubscriptionState,
} from './types.js';
export type { Subscription } from './subscription.js';
export { RealtimeClient } from './client.js';
