import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../dist/backoff.js';

// A seeded generator, so "random" sample runs are the same every time.
function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

test('window doubles from the base and stops at the cap', () => {
  const b = new Backoff({ baseMs: 500, maxMs: 30000, random: () => 0.999999 });
  const ceilings = [];
  for (let i = 0; i < 9; i++) {
    ceilings.push(b.ceiling());
    b.next();
  }
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('every delay lies in [0, window) and the extremes of random map to its ends', () => {
  const low = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
  const high = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
  const lows = [];
  const highs = [];
  for (let i = 0; i < 6; i++) {
    lows.push(low.next());
    highs.push(high.next());
  }
  assert.deepEqual(lows, [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(highs, [99, 199, 399, 799, 999, 999]);
});

test('full jitter spreads delays over the whole window', () => {
  const random = lcg(42);
  const samples = [];
  for (let i = 0; i < 2000; i++) {
    const b = new Backoff({ baseMs: 1000, maxMs: 60000, random });
    b.next();
    b.next();
    samples.push(b.next()); // third retry: window 4000
  }
  assert.ok(
    samples.every((d) => d >= 0 && d < 4000),
    'inside the window',
  );
  assert.ok(Math.min(...samples) < 200, `some retries come early (min ${Math.min(...samples)})`);
  assert.ok(Math.max(...samples) > 3800, `some come late (max ${Math.max(...samples)})`);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(Math.abs(mean - 2000) < 150, `uniform: mean ${mean} near 2000`);
  const quarters = [0, 0, 0, 0];
  for (const d of samples) quarters[Math.floor(d / 1000)] += 1;
  for (const q of quarters) assert.ok(q > 400 && q < 600, `each quarter of the window gets about 500: ${quarters}`);
});

test('reset starts again from the base window', () => {
  const b = new Backoff({ baseMs: 200, maxMs: 5000, random: () => 0.999999 });
  for (let i = 0; i < 5; i++) b.next();
  assert.equal(b.attempt, 5);
  b.reset();
  assert.equal(b.attempt, 0);
  assert.equal(b.next(), 199);
});

test('exhaust jumps to the largest window', () => {
  const b = new Backoff({ baseMs: 200, maxMs: 5000, random: () => 0.999999 });
  b.exhaust();
  assert.equal(b.ceiling(), 5000);
  assert.equal(b.next(), 4999);
});

test('a random function out of range never yields a negative or oversized delay', () => {
  for (const r of [-1, 1, 2, NaN]) {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => r });
    const d = b.next();
    assert.ok(d >= 0 && d < 100, `random ${r} gave ${d}`);
  }
});

test('many failures never overflow the window', () => {
  const b = new Backoff({ baseMs: 1, maxMs: 30000, random: () => 0.5 });
  for (let i = 0; i < 5000; i++) b.next();
  assert.equal(b.ceiling(), 30000);
  assert.equal(b.next(), 15000);
});
