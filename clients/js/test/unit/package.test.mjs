// The package's shape: the main entry loads in a browser without a bundler (relative imports
// only, no other package) and stays small, React is imported by the ./react entry alone, the
// single-file minified build works on its own, package.json's exports point at files the build
// produced, and `npm pack` ships exactly the built files, the sources, the README and the licence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

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

// The budget for what a page pays for the main entry, minified and gzipped.
const MAX_MAIN_GZIP_BYTES = 12 * 1024;

test('package.json names the package and declares its entries with types', () => {
  assert.equal(pkg.name, '@streamgate/client');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.license, 'Apache-2.0');
  assert.match(readFileSync(path.join(root, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  assert.deepEqual(Object.keys(pkg.exports), ['.', './react', './min', './package.json']);
  assert.equal(pkg.types, pkg.exports['.'].types);
  for (const [name, entry] of Object.entries(pkg.exports)) {
    if (typeof entry === 'string') continue;
    assert.deepEqual(Object.keys(entry), ['types', 'import'], `${name}: types first, as TypeScript wants`);
    assert.ok(existsSync(path.join(root, entry.import)), `${entry.import} built`);
    assert.ok(existsSync(path.join(root, entry.types)), `${entry.types} built`);
  }
  assert.deepEqual(Object.keys(pkg.peerDependencies), ['react']);
  assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
});

test(`the main entry is at most ${MAX_MAIN_GZIP_BYTES} bytes minified and gzipped`, async () => {
  // What a page loads when it imports the entry: the entry's chunk and every chunk it imports
  // statically. Code behind a dynamic import (the upload, loaded on first use) is not counted.
  const out = await build({
    entryPoints: [path.join(root, pkg.exports['.'].import)],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    splitting: true,
    outdir: path.join(root, 'size-check'),
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  const outputs = out.metafile.outputs;
  const files = new Map(out.outputFiles.map((f) => [path.relative(process.cwd(), f.path), f.contents]));
  const entry = Object.keys(outputs).find((k) => outputs[k].entryPoint);
  const loaded = new Set([entry]);
  for (const file of loaded) {
    for (const dep of outputs[file].imports) if (dep.kind === 'import-statement') loaded.add(dep.path);
  }
  assert.ok(Object.keys(outputs).length > loaded.size, 'the upload code is split off');
  let gzipped = 0;
  for (const file of loaded) gzipped += gzipSync(files.get(file), { level: 9 }).length;
  assert.ok(gzipped <= MAX_MAIN_GZIP_BYTES, `${gzipped} bytes`);
});

test('the single-file minified build stands alone and exports what the main entry does', async () => {
  const file = path.join(root, pkg.exports['./min'].import);
  assert.deepEqual(imports(file), [], 'no imports at all');
  const min = await import(pathToFileURL(file).href);
  const main = await import(pathToFileURL(path.join(root, pkg.exports['.'].import)).href);
  assert.deepEqual(Object.keys(min).sort(), Object.keys(main).sort());
});

test('npm pack ships the build, the sources, the README and the licence, and nothing else', () => {
  // --ignore-scripts: the test reads the build that is there instead of rebuilding it.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const files = JSON.parse(out)[0].files.map((f) => f.path);
  for (const required of ['package.json', 'README.md', 'LICENSE', 'dist/streamgate.min.js']) {
    assert.ok(files.includes(required), `${required} packed`);
  }
  for (const entry of Object.values(pkg.exports)) {
    const target = typeof entry === 'string' ? entry : entry.import;
    assert.ok(files.includes(path.posix.normalize(target)), `${target} packed`);
    if (typeof entry !== 'string')
      assert.ok(files.includes(path.posix.normalize(entry.types)), `${entry.types} packed`);
  }
  const stray = files.filter((f) => !/^(dist|src)\//.test(f) && !['package.json', 'README.md', 'LICENSE'].includes(f));
  assert.deepEqual(stray, []);
  assert.ok(!files.some((f) => f.startsWith('src/') && !f.endsWith('.ts')), 'only .ts sources');
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
