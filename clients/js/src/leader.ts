// Leader election among the tabs of one origin that share a client name: exactly one tab holds the
// WebSocket. With the Web Locks API the browser does the work: the lock's holder is the leader, and
// when its tab closes or crashes the browser grants the lock to the next waiting tab at once.
// Without it, tabs elect over the BroadcastChannel: the leader sends heartbeats, a follower that
// misses them for `timeoutMs` claims leadership, and of concurrent claimants the smallest tab id wins.

import type { LockManagerLike, Platform } from './platform.js';

export type ElectionKind = 'auto' | 'locks' | 'broadcast' | 'none';

export interface Election {
  readonly isLeader: boolean;
  /** Starts campaigning; `onChange(true)` follows when this tab becomes leader (maybe at once). */
  start(): void;
  /** Gives up leadership or candidacy. `onChange(false)` follows if this tab was leader. */
  stop(): void;
  /** Election messages from the BroadcastChannel (types starting with `el-`). */
  handle(message: ElectionMessage): void;
}

export type ElectionMessage =
  | { t: 'el-hb'; tab: string }
  | { t: 'el-who'; tab: string }
  | { t: 'el-claim'; tab: string }
  | { t: 'el-resign'; tab: string };

/** Timing of the BroadcastChannel election, in milliseconds. */
export interface ElectionTiming {
  /** Leader heartbeat period. */
  heartbeatMs: number;
  /** Silence after which followers presume the leader dead. Must exceed `heartbeatMs` comfortably. */
  timeoutMs: number;
  /** How long a claimant waits for objections before taking over. */
  claimMs: number;
  /** How long a starting tab listens for an existing leader before claiming. */
  discoverMs: number;
}

// Takeover after a crash takes at most timeoutMs + claimMs = 0.95 s, leaving a second to connect
// within the 2 s the client promises. A live leader whose hidden tab has its timers throttled
// (to 1 s, or far slower after minutes in the background) misses heartbeats but still answers
// every claim at once, because message delivery is not throttled: a claim it answers is withdrawn.
export const DEFAULT_TIMING: ElectionTiming = {
  heartbeatMs: 300,
  timeoutMs: 800,
  claimMs: 150,
  discoverMs: 200,
};

export class SoloElection implements Election {
  private leader = false;
  constructor(private readonly onChange: (leader: boolean) => void) {}
  get isLeader(): boolean {
    return this.leader;
  }
  start(): void {
    if (this.leader) return;
    this.leader = true;
    this.onChange(true);
  }
  stop(): void {
    if (!this.leader) return;
    this.leader = false;
    this.onChange(false);
  }
  handle(): void {}
}

export class LockElection implements Election {
  private leader = false;
  private generation = 0;
  private abort: AbortController | null = null;
  private release: (() => void) | null = null;

  constructor(
    private readonly locks: LockManagerLike,
    private readonly name: string,
    private readonly onChange: (leader: boolean) => void,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    if (this.abort) return;
    const generation = ++this.generation;
    const abort = new AbortController();
    this.abort = abort;
    this.locks
      .request(this.name, { signal: abort.signal }, () => {
        // Granted after stop() (or for an earlier start): hand the lock straight back.
        if (generation !== this.generation) return undefined;
        return new Promise<void>((resolve) => {
          this.release = resolve;
          this.leader = true;
          this.onChange(true);
        });
      })
      .catch(() => {
        // AbortError after stop() while still waiting: expected.
      });
  }

  stop(): void {
    if (!this.abort) return;
    this.generation += 1;
    this.abort.abort();
    this.abort = null;
    const release = this.release;
    this.release = null;
    if (this.leader) {
      this.leader = false;
      this.onChange(false);
    }
    release?.();
  }

  handle(): void {}
}

type Role = 'stopped' | 'follower' | 'candidate' | 'leader';

export class BroadcastElection implements Election {
  private role: Role = 'stopped';
  private timer: unknown = null;
  private heartbeat: unknown = null;

  constructor(
    private readonly tab: string,
    private readonly post: (message: ElectionMessage) => void,
    private readonly platform: Pick<Platform, 'setTimeout' | 'clearTimeout' | 'random'>,
    private readonly onChange: (leader: boolean) => void,
    private readonly timing: ElectionTiming = DEFAULT_TIMING,
  ) {}

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  start(): void {
    if (this.role !== 'stopped') return;
    this.role = 'follower';
    this.post({ t: 'el-who', tab: this.tab });
    this.watch(this.timing.discoverMs);
  }

  stop(): void {
    if (this.role === 'stopped') return;
    const wasLeader = this.role === 'leader';
    this.role = 'stopped';
    this.clearTimers();
    if (wasLeader) {
      this.post({ t: 'el-resign', tab: this.tab });
      this.onChange(false);
    }
  }

  handle(message: ElectionMessage): void {
    if (this.role === 'stopped' || message.tab === this.tab) return;
    switch (message.t) {
      case 'el-hb':
        if (this.role === 'leader') {
          // Two leaders (a partition healed, or claims crossed): the smaller id keeps the role.
          if (message.tab < this.tab) this.stepDown();
          else this.beat();
        } else {
          this.role = 'follower';
          this.watch(this.timing.timeoutMs);
        }
        break;
      case 'el-who':
        if (this.role === 'leader') this.beat();
        break;
      case 'el-claim':
        if (this.role === 'leader') {
          this.beat();
        } else if (message.tab < this.tab) {
          // A better-placed claimant: stand back (or stay back) and let it take over; if it
          // never does, the watchdog brings us back.
          this.role = 'follower';
          this.watch(this.timing.timeoutMs);
        }
        break;
      case 'el-resign':
        if (this.role === 'follower') {
          // Everyone left claims now; a little jitter lets the smallest id's claim arrive first.
          this.watch(Math.floor(this.platform.random() * 50));
        }
        break;
    }
  }

  private stepDown(): void {
    this.clearTimers();
    this.role = 'follower';
    this.watch(this.timing.timeoutMs);
    this.onChange(false);
  }

  private watch(ms: number): void {
    if (this.timer !== null) this.platform.clearTimeout(this.timer);
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (this.role === 'follower') this.claim();
    }, ms);
  }

  private claim(): void {
    this.role = 'candidate';
    this.post({ t: 'el-claim', tab: this.tab });
    this.timer = this.platform.setTimeout(() => {
      this.timer = null;
      if (this.role !== 'candidate') return;
      this.role = 'leader';
      this.beat();
      this.onChange(true);
    }, this.timing.claimMs);
  }

  private beat(): void {
    if (this.heartbeat !== null) this.platform.clearTimeout(this.heartbeat);
    this.post({ t: 'el-hb', tab: this.tab });
    this.heartbeat = this.platform.setTimeout(() => {
      this.heartbeat = null;
      if (this.role === 'leader') this.beat();
    }, this.timing.heartbeatMs);
  }

  private clearTimers(): void {
    if (this.timer !== null) this.platform.clearTimeout(this.timer);
    if (this.heartbeat !== null) this.platform.clearTimeout(this.heartbeat);
    this.timer = null;
    this.heartbeat = null;
  }
}
