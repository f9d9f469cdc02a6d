// A React app using the provider and hooks the way an app would: inline getToken and services
// (new identities on every render), a clock that re-renders the tree ten times a second, and
// StrictMode (mount, unmount, mount) in development. Bundled by esbuild for the test.
import { StrictMode, useState, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import {
  RealtimeProvider,
  useConnectionState,
  useRealtimeClient,
  useRealtimeEvent,
  useResumeFailed,
  useSubscription,
  type RealtimeEvent,
  type ResumeFailure,
} from '../../../dist/react.js';

declare global {
  interface Window {
    reactLog: { tokens: string[]; renders: number; handled: string[] };
    reactClient: ReturnType<typeof useRealtimeClient>;
  }
}

const q = new URLSearchParams(location.search);
const log: Window['reactLog'] = { tokens: [], renders: 0, handled: [] };
window.reactLog = log;

function Status() {
  const state = useConnectionState();
  return <p id="state">{state}</p>;
}

function Feed({ service }: { service: string }) {
  const [items, setItems] = useState<RealtimeEvent[]>([]);
  const [tick, setTick] = useState(0);
  // A new handler function on every render: the hook must not resubscribe (nor miss events).
  useRealtimeEvent(service, '*', (event) => {
    log.handled.push(`${service}:${event.id}:${tick}`);
    setItems((list) => [...list, event]);
  });
  useEffect(() => {
    const id = setInterval(() => setTick((n) => n + 1), 100);
    return () => clearInterval(id);
  }, []);
  return (
    <ul id={`feed-${service}`}>
      {items.map((e) => (
        <li key={e.id} data-id={e.id}>
          {e.service} {e.event} {JSON.stringify(e.data)}
        </li>
      ))}
    </ul>
  );
}

// The provider's client, for the test to read which services the tab asks for.
function Expose() {
  const client = useRealtimeClient();
  useEffect(() => {
    window.reactClient = client;
  }, [client]);
  return null;
}

function SubscriptionState({ service }: { service: string }) {
  const { state } = useSubscription(service);
  return <p id={`state-${service}`}>{state}</p>;
}

function Refetch() {
  const [failures, setFailures] = useState<ResumeFailure[]>([]);
  useResumeFailed((f) => setFailures((list) => [...list, f]));
  return <p id="refetch">{failures.map((f) => `${f.service}:${f.reason}`).join(',')}</p>;
}

function App() {
  const [mounted, setMounted] = useState(true);
  const [withCrm, setWithCrm] = useState(false);
  const [withHr, setWithHr] = useState(false);
  const [withHrState, setWithHrState] = useState(false);
  const [ticks, setTicks] = useState(0);
  log.renders += 1;
  useEffect(() => {
    const id = setInterval(() => setTicks((n) => n + 1), 100);
    return () => clearInterval(id);
  }, []);
  return (
    <>
      <p id="ticks">{ticks}</p>
      <button id="toggle" onClick={() => setMounted((m) => !m)}>
        toggle
      </button>
      <button id="crm" onClick={() => setWithCrm(true)}>
        crm
      </button>
      <button id="hr" onClick={() => setWithHr((h) => !h)}>
        hr
      </button>
      <button id="hr-state" onClick={() => setWithHrState((h) => !h)}>
        hr state
      </button>
      {mounted && (
        <RealtimeProvider
          url={q.get('ws') ?? ''}
          name="s6"
          services={withCrm ? ['finance', 'crm'] : ['finance']}
          reconnect={{ baseDelayMs: 200, maxDelayMs: 2000 }}
          getToken={async (request) => {
            log.tokens.push(request.reason);
            const res = await fetch(`/token?org=${q.get('org')}&user=react-user`);
            return res.text();
          }}
        >
          <Expose />
          <Status />
          <Refetch />
          <Feed service="finance" />
          {withCrm && <Feed service="crm" />}
          {/* A service the provider doesn't list: the hooks subscribe it themselves. */}
          {withHr && <Feed service="hr" />}
          {withHrState && <SubscriptionState service="hr" />}
        </RealtimeProvider>
      )}
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
