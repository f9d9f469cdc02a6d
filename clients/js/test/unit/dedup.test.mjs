import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DedupCache } from '../../dist/dedup.js';

test('a key is new once and a duplicate afterwards', () => {
  const d = new DedupCache(10);
  assert.equal(d.add('finance\nk-1'), true);
  assert.equal(d.add('finance\nk-1'), false);
  assert.equal(d.add('crm\nk-1'), true);
  assert.equal(d.size, 2);
});

test('size never exceeds the capacity, however many keys pass', () => {
  const d = new DedupCache(1000);
  for (let i = 0; i < 200_000; i++) d.add(`svc\ne-${i}`);
  assert.equal(d.size, 1000);
  assert.equal(d.has('svc\ne-199999'), true);
  assert.equal(d.has('svc\ne-199000'), true);
  assert.equal(d.has('svc\ne-198999'), false);
});

test('the least recently seen key is evicted first', () => {
  const d = new DedupCache(3);
  d.add('a');
  d.add('b');
  d.add('c');
  assert.equal(d.add('a'), false); // touching a makes b the eldest
  d.add('d');
  assert.equal(d.has('b'), false);
  assert.equal(d.has('a'), true);
  assert.equal(d.has('c'), true);
  assert.equal(d.has('d'), true);
});

test('capacity is at least one', () => {
  const d = new DedupCache(0);
  d.add('x');
  d.add('y');
  assert.equal(d.size, 1);
  assert.equal(d.has('y'), true);
});
