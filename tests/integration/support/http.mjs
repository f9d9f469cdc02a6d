// HTTP helpers: publish, the JSON metrics endpoint (read once or polled), Prometheus text, and raw WebSocket
// upgrade requests that show exactly what the server answered when it refused one.

import crypto from 'node:crypto';
import http from 'node:http';
import { ms, waitFor, withTimeout } from './env.mjs';

// A fetch answer as {status, headers, text, json} (json: undefined when the body is not JSON).
export async function readResponse(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

// GET, PUT or DELETE /v2/realtime/orgs/{org}/limits; `body` is serialized unless it is already
// a string. apiKey: undefined → the server's key.
export async function orgLimits(server, method, org, body, { apiKey } = {}) {
  const headers = { authorization: `Bearer ${apiKey ?? server.apiKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.httpUrl}/v2/realtime/orgs/${encodeURIComponent(org)}/limits`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return readResponse(res);
}

// POST /v2/realtime/publish. `body` is serialized unless it is already a string.
// apiKey: undefined → the server's key; null → no Authorization header.
export async function publish(server, body, { apiKey, authorization, headers = {} } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  const key = apiKey === undefined ? server.apiKey : apiKey;
  if (authorization !== undefined) h.authorization = authorization;
  else if (key !== null) h.authorization = `Bearer ${key}`;
  const res = await fetch(`${server.httpUrl}/v2/realtime/publish`, {
    method: 'POST',
    headers: h,
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  return readResponse(res);
}

// Publishes and insists on 200 {"id"}; returns the id.
export async function publishOk(server, body) {
  const r = await publish(server, body);
  if (r.status !== 200 || !r.json || typeof r.json.id !== 'string') {
    throw new Error(`publish ${JSON.stringify(body).slice(0, 200)} → ${r.status} ${r.text.slice(0, 300)}`);
  }
  return r.json.id;
}

// Publishes until acknowledged, for tests that take a broker away (a failover, a slot migration,
// no replica for WAIT): those answers are 503. The body gets an eventId when it has none, so a
// retry of a publish that did land returns its first id instead of storing the event twice.
export async function publishRetrying(server, body, { timeout = ms(20000) } = {}) {
  const deadline = Date.now() + timeout;
  const withKey = { ...body, eventId: body.eventId ?? `retry-${crypto.randomUUID()}` };
  for (;;) {
    const r = await publish(server, withKey);
    if (r.status === 200) return r.json.id;
    if (r.status !== 503 || Date.now() > deadline) {
      throw new Error(`publish → ${r.status} ${r.text.slice(0, 200)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function get(server, path, { apiKey, headers = {} } = {}) {
  const h = { ...headers };
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  const res = await fetch(`${server.httpUrl}${path}`, { headers: h });
  return readResponse(res);
}

// GET `path` as a user: `token` as Bearer (via 'header') or access_token (via 'query');
// null/undefined sends none.
export async function getAsUser(server, path, { token, via = 'header' } = {}) {
  const headers = {};
  let url = `${server.httpUrl}${path}`;
  if (token !== null && token !== undefined) {
    if (via === 'header') headers.authorization = `Bearer ${token}`;
    else url += `${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
  }
  return readResponse(await fetch(url, { headers }));
}

// GET /v2/realtime/metrics with the API key; throws unless 200 JSON.
export async function metricsJson(server) {
  const r = await get(server, '/v2/realtime/metrics', { apiKey: server.apiKey });
  if (r.status !== 200 || !r.json) throw new Error(`metrics → ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

// Polls the JSON metrics until `check` accepts them; returns that snapshot. On timeout the
// error shows the last one.
export async function metricsUntil(server, check, what, { timeout = ms(15000) } = {}) {
  let last;
  await waitFor(
    async () => {
      last = await metricsJson(server);
      return check(last);
    },
    { what, timeout, describe: async () => JSON.stringify(last) },
  );
  return last;
}

// Parses Prometheus text exposition into {samples: Map("name{a="x",b="y"}" → number), types: Map(name → type)}.
// Label sets are normalized (sorted) so lookups don't depend on the server's label order.
export function parsePrometheus(text) {
  const samples = new Map();
  const types = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) throw new Error(`unparseable Prometheus line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;
      let lm;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2];
    }
    samples.set(sampleKey(m[1], labels), Number(m[4]));
  }
  return { samples, types };
}

export function sampleKey(name, labels = {}) {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(',')}}`;
}

export async function prometheus(server) {
  const res = await fetch(`${server.httpUrl}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics → ${res.status} ${text.slice(0, 300)}`);
  return { ...parsePrometheus(text), text, headers: res.headers };
}

// The value of one sample, 0 when absent (a counter that never moved may not be exported yet).
export async function promValue(server, name, labels = {}) {
  const { samples } = await prometheus(server);
  return samples.get(sampleKey(name, labels)) ?? 0;
}

// Sends a WebSocket upgrade request by hand and reports what came back, without letting any
// client library interpret it: {status, headers, body, json, upgraded}.
// `path` is the request target (e.g. "/v2/realtime/stream?access_token=…").
export function rawUpgrade(server, path, { headers = {}, upgrade = true, timeout = ms(5000) } = {}) {
  const h = { ...headers };
  if (upgrade) {
    Object.assign(h, {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
      'sec-websocket-version': '13',
    });
  }
  const done = new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path, method: 'GET', headers: h, agent: false });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '', json: undefined, upgraded: true });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body, json, upgraded: false });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return withTimeout(done, timeout, `answer to upgrade request ${path.slice(0, 80)}`);
}
