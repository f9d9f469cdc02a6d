// Timing and size knobs shared by every integration test.
//
// Under ASan/UBSan (STREAMGATE_SANITIZED=1, set by ctest in the sanitized build) the server
// is about three times slower, so every timeout is multiplied by SCALE and every loop size
// divided by it. STREAMGATE_TIMEOUT_SCALE overrides the factor (e.g. on a loaded machine).

import { setTimeout as delay } from 'node:timers/promises';

const sanitized = ['1', 'true', 'on', 'yes'].includes(
  String(process.env.STREAMGATE_SANITIZED ?? '').toLowerCase(),
);

export const SANITIZED = sanitized;
export const SCALE = Number(process.env.STREAMGATE_TIMEOUT_SCALE) || (sanitized ? 3 : 1);

// A timeout in milliseconds, scaled for slow builds.
export function ms(base) {
  return Math.ceil(base * SCALE);
}

// A loop size, shrunk for slow builds but never below `min`.
export function loops(base, min = 1) {
  return Math.max(min, Math.round(base / SCALE));
}

// Polls `probe` (sync or async) until it returns a truthy value, and returns that value.
// Polling a condition is not sleeping for it: the interval only paces the probes. On timeout
// the error names `what` and the last value the probe saw (via `describe`, if given).
export async function waitFor(probe, { timeout = ms(5000), interval = 20, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() >= deadline) {
      let detail = '';
      if (describe) {
        try {
          detail = `; last seen: ${await describe()}`;
        } catch (e) {
          detail = `; describe failed: ${e.message}`;
        }
      }
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
    }
    await delay(interval);
  }
}

// Races a promise against a timeout that rejects with a message naming `what`.
export function withTimeout(promise, timeout, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Runs `fn` over `items` with at most `width` calls in flight; results keep input order.
export async function inBatches(items, width, fn) {
  const results = new Array(items.length);
  for (let i = 0; i < items.length; i += width) {
    const slice = items.slice(i, i + width);
    const done = await Promise.all(slice.map((item, j) => fn(item, i + j)));
    done.forEach((r, j) => {
      results[i + j] = r;
    });
  }
  return results;
}

// RFC 3339 date-time (as the wire uses for "timestamp").
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

// "<epoch>-<offset>": epoch 1..32 chars of [0-9a-z], offset a positive decimal.
export const EVENT_ID = /^([0-9a-z]{1,32})-([1-9][0-9]*)$/;

export function parseEventId(id) {
  const m = EVENT_ID.exec(id);
  if (!m) throw new Error(`not an event id: ${JSON.stringify(id)}`);
  return { epoch: m[1], offset: Number(m[2]) };
}

// A unique-enough suffix so tests sharing a server never share an org or user by accident.
let counter = 0;
export function unique(prefix) {
  counter += 1;
  return `${prefix}${process.pid}x${counter}`;
}
