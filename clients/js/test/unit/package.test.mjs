// The package's shape: the main entry loads in a browser without a bundler (relative imports
// only, no other package), React is imported by the ./react entry alone, and package.json's
// exports point at files the build produced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

function imports(file) {
  const text = readFileSync(file, 'utf8');
  const specs = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]);
  return specs;
}

/** Every module reachable from `entry`, and every bare (package) specifier they import. */
function graph(entry) {
  const seen = new Set();
  const bare = new Set();
  const walk = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of imports(file)) {
      if (spec.startsWith('./') || spec.startsWith('../')) walk(path.resolve(path.dirname(file), spec));
      else bare.add(spec);
    }
  };
  walk(entry);
  return { files: [...seen], bare: [...bare] };
}

test('package.json names the package and declares both entries with types', () => {
  assert.equal(pkg.name, '@streamgate/client');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(Object.keys(pkg.exports), ['.', './react']);
  for (const entry of Object.values(pkg.exports)) {
    assert.ok(existsSync(path.join(root, entry.import)), `${entry.import} built`);
    assert.ok(existsSync(path.join(root, entry.types)), `${entry.types} built`);
  }
  assert.deepEqual(Object.keys(pkg.peerDependencies), ['react']);
  assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
});

test('the main entry imports no other package', () => {
  const { files, bare } = graph(path.join(root, pkg.exports['.'].import));
  assert.deepEqual(bare, []);
  assert.ok(files.length >= 5, `walked ${files.length} modules`);
  for (const file of files) assert.ok(existsSync(file), `${file} exists (import paths carry .js)`);
});

test('the react entry imports React and nothing else from outside', () => {
  const { bare } = graph(path.join(root, pkg.exports['./react'].import));
  assert.deepEqual(bare, ['react']);
});

test('the main entry exports the client', async () => {
  const mod = await import(path.join(root, pkg.exports['.'].import));
  assert.equal(typeof mod.RealtimeClient, 'function');
  assert.equal(typeof mod.Backoff, 'function');
  assert.equal(typeof mod.DedupCache, 'function');
});
