// CORS on the endpoints a page calls with its user's token (presence, the room lists, upload
// progress): the --allowed-origins policy, Access-Control-Allow-Origin on answers to an allowed
// Origin (errors included, so the page can read them), and the preflight a browser sends before
// a request that carries Authorization. The producer API (API key) answers no preflight.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { closeAll, tokenFor } from './support/ws.mjs';
import { openUpload, start, startUploadServer } from './support/upload.mjs';

const ALLOWED = 'https://app.example.com';
const REFUSED = 'https://evil.example.net';

// One raw request: node's fetch would not send an Origin or an OPTIONS as a browser does.
function request(server, method, path, headers = {}) {
  const url = new URL(path, server.httpUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const preflightHeaders = (origin) => ({
  origin,
  'access-control-request-method': 'GET',
  'access-control-request-headers': 'authorization',
});

describe('CORS on the user endpoints', () => {
  let server;
  let token;
  let uploadId;
  const clients = [];

  before(async () => {
    server = await startUploadServer({ flags: { 'allowed-origins': 'https://*.example.com' } });
    token = tokenFor(server, { org: 456, user: 'cors-user' });
    const upload = await openUpload(server, { org: 456, user: 'cors-user' });
    clients.push(upload);
    const ready = await start(upload, { size: 1024 });
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    uploadId = ready.uploadId;
  });
  after(async () => {
    closeAll(clients);
    await server?.cleanup();
  });

  const paths = () => ({
    presence: '/v2/realtime/presence',
    online: '/v2/realtime/rooms/general/online',
    stats: '/v2/realtime/rooms/general/stats',
    upload: `/v2/realtime/uploads/${uploadId}`,
  });

  test('an allowed Origin gets its answer with Access-Control-Allow-Origin and Vary', async () => {
    for (const [name, path] of Object.entries(paths())) {
      const r = await request(server, 'GET', path, { origin: ALLOWED, authorization: `Bearer ${token}` });
      assert.equal(r.status, 200, `${name}: ${r.body}`);
      assert.equal(r.headers['access-control-allow-origin'], ALLOWED, name);
      assert.match(r.headers.vary ?? '', /Origin/, name);
      assert.match(r.headers['access-control-expose-headers'] ?? '', /Retry-After/, name);
    }
    const upload = await request(server, 'GET', paths().upload, { origin: ALLOWED, authorization: `Bearer ${token}` });
    assert.equal(upload.json.uploadId, uploadId);
  });

  test('errors to an allowed Origin carry the header too, so the page reads why', async () => {
    for (const [name, path] of Object.entries(paths())) {
      const r = await request(server, 'GET', path, { origin: ALLOWED });
      assert.equal(r.status, 401, name);
      assert.equal(r.json.error, 'missing_token', name);
      assert.equal(r.headers['access-control-allow-origin'], ALLOWED, name);
    }
    const missing = await request(server, 'GET', '/v2/realtime/uploads/0123456789abcdef0123456789abcdef', {
      origin: ALLOWED,
      authorization: `Bearer ${token}`,
    });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['access-control-allow-origin'], ALLOWED);
  });

  test('an Origin outside --allowed-origins gets 403 origin_not_allowed, with a good token and on preflight', async () => {
    for (const [name, path] of Object.entries(paths())) {
      const r = await request(server, 'GET', path, { origin: REFUSED, authorization: `Bearer ${token}` });
      assert.equal(r.status, 403, name);
      assert.equal(r.json.error, 'origin_not_allowed', name);
      assert.equal(r.headers['access-control-allow-origin'], undefined, name);
      const p = await request(server, 'OPTIONS', path, preflightHeaders(REFUSED));
      assert.equal(p.status, 403, name);
      assert.equal(p.headers['access-control-allow-origin'], undefined, name);
    }
  });

  test('a preflight from an allowed Origin is answered 204 without a token', async () => {
    for (const [name, path] of Object.entries(paths())) {
      const r = await request(server, 'OPTIONS', path, preflightHeaders(ALLOWED));
      assert.equal(r.status, 204, `${name}: ${r.body}`);
      assert.equal(r.body, '', name);
      assert.equal(r.headers['access-control-allow-origin'], ALLOWED, name);
      assert.match(r.headers['access-control-allow-methods'], /\bGET\b/, name);
      assert.match(r.headers['access-control-allow-headers'], /Authorization/i, name);
      assert.equal(r.headers['access-control-max-age'], '86400', name);
      assert.equal(r.headers['access-control-allow-credentials'], undefined, name);
    }
  });

  test('requests without an Origin are as before: no CORS headers, OPTIONS lists the methods', async () => {
    for (const [name, path] of Object.entries(paths())) {
      const r = await request(server, 'GET', path, { authorization: `Bearer ${token}` });
      assert.equal(r.status, 200, `${name}: ${r.body}`);
      assert.equal(r.headers['access-control-allow-origin'], undefined, name);
      const o = await request(server, 'OPTIONS', path);
      assert.equal(o.status, 204, name);
      assert.equal(o.headers.allow, 'GET, HEAD, OPTIONS', name);
    }
    const post = await request(server, 'POST', paths().presence, { origin: ALLOWED, authorization: `Bearer ${token}` });
    assert.equal(post.status, 405);
    assert.equal(post.headers['access-control-allow-origin'], ALLOWED);
  });

  test('the producer API answers no preflight: it is for backends with the API key', async () => {
    const r = await request(server, 'OPTIONS', '/v2/realtime/history?orgId=456&service=finance', preflightHeaders(ALLOWED));
    assert.equal(r.status, 405);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });
});
