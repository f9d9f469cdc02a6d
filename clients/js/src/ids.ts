// Event ids are `<epoch>-<offset>` (docs/protocol.md): the epoch names one life of a channel's
// history and the offset grows by one per event. Offsets are compared as decimal strings so ids
// past 2^53 still order correctly.

const EVENT_ID = /^([0-9a-z]{1,32})-(0|[1-9][0-9]*)$/;
const SERVICE = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface EventId {
  epoch: string;
  offset: string;
}

export function parseEventId(id: string): EventId | null {
  const m = EVENT_ID.exec(id);
  return m ? { epoch: m[1]!, offset: m[2]! } : null;
}

export function isServiceName(name: unknown): name is string {
  return typeof name === 'string' && SERVICE.test(name);
}

function compareOffsets(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether `id` may follow `last` in one service's stream. Ids of another epoch (history was lost
 * and started again) always may; unparsable ids are left to the dedup cache.
 */
export function isAfter(id: string, last: string): boolean {
  const a = parseEventId(id);
  const b = parseEventId(last);
  if (!a || !b || a.epoch !== b.epoch) return true;
  return compareOffsets(a.offset, b.offset) > 0;
}

/** The earlier of two resume positions: `mine` unless `other` is in the same epoch and older. */
export function earlier(mine: string, other: string): string {
  const a = parseEventId(mine);
  const b = parseEventId(other);
  if (!a || !b || a.epoch !== b.epoch) return mine;
  return compareOffsets(b.offset, a.offset) < 0 ? other : mine;
}
