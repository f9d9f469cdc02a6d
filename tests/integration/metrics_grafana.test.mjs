// examples/grafana/streamgate.json: every metric name its PromQL queries use (panels and
// template variables) exists in a live /metrics scrape of the real binary, and the dashboard
// covers what an operator looks at first.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { prometheus } from './support/http.mjs';
import { startServer } from './support/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DASHBOARD = path.resolve(here, '../../examples/grafana/streamgate.json');

const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset',
  'inf', 'nan', 'Inf', 'NaN',
]);

// The metric names a PromQL expression reads: identifiers that are not functions, keywords,
// label names (inside {…}, by (…), without (…)), strings, durations or Grafana variables.
export function metricNames(expr) {
  let e = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // range and subquery selectors
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\$\{?\w+\}?/g, ''); // Grafana variables ($__rate_interval, ${datasource})
  const names = new Set();
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;
  let m;
  while ((m = re.exec(e)) !== null) {
    const name = m[0];
    const before_ = e[m.index - 1];
    if (before_ && /[0-9.]/.test(before_)) continue; // part of a number such as 1e-3
    if (/^\s*\(/.test(e.slice(m.index + name.length))) continue; // a function
    if (KEYWORDS.has(name)) continue;
    names.add(name);
  }
  return names;
}

// Every query of the dashboard: panel targets (rows' nested panels too) and template variables.
function queries(dashboard) {
  const out = [];
  const walk = (panels = []) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (v.type !== 'query' || !q) continue;
    // label_values(metric, label) and friends: the first argument is a series selector.
    const lv = /^\s*(?:label_values|query_result|series)\s*\((.*)\)\s*$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: lv ? lv[1].split(',')[0] : q });
  }
  return out;
}

describe('Grafana dashboard', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('the name extraction reads metrics, not functions, labels or variables', () => {
    assert.deepEqual(
      [...metricNames('histogram_quantile(0.99, sum by (le, code) (rate(a_bucket{instance=~"$instance",x="y(z)"}[$__rate_interval]))) / on (instance) group_left b_total offset 5m + 1e-3')].sort(),
      ['a_bucket', 'b_total'],
    );
  });

  test('every metric its queries use exists in a live /metrics scrape', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    assert.equal(dashboard.title, 'streamgate');
    const { text } = await prometheus(server);
    const scraped = new Set(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)[0]),
    );
    const used = new Map();
    for (const { where, expr } of queries(dashboard)) {
      for (const name of metricNames(expr)) used.set(name, [...(used.get(name) ?? []), where]);
    }
    assert.ok(used.size >= 10, `metrics used: ${[...used.keys()]}`);
    const missing = [...used.entries()].filter(([name]) => !scraped.has(name));
    assert.deepEqual(missing, [], 'metrics the dashboard queries but /metrics lacks');

    // What the dashboard is for: each of these is queried somewhere.
    for (const name of [
      'streamgate_connections_active',
      'streamgate_events_delivered_total',
      'streamgate_publish_latency_seconds_bucket',
      'streamgate_http_requests_total',
      'streamgate_slow_consumer_closes_total',
      'streamgate_broker_up',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(used.has(name), `the dashboard queries ${name}`);
    }
    const exprs = queries(dashboard).map((q) => q.expr).join('\n');
    assert.match(exprs, /histogram_quantile\(0\.5, [^\n]*streamgate_publish_latency_seconds_bucket/);
    assert.match(exprs, /histogram_quantile\(0\.99, [^\n]*streamgate_publish_latency_seconds_bucket/);
    assert.match(exprs, /sum by \(code\) \(rate\(streamgate_http_requests_total/);
  });
});
