// tus 1.0 over raw node:http (no client library in between): the request helper and the
// create / PATCH / HEAD steps the tus and upload-restart tests share.

import assert from 'node:assert/strict';
import http from 'node:http';
import { ms, withTimeout } from './env.mjs';

// One raw HTTP request: {status, headers, text, json}.
export function request(server, method, target, { headers = {}, body } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: server.port, method, path: target, headers, agent: false },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode, headers: res.headers, text, json });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    }),
    ms(10000),
    `${method} ${target}`,
  );
}

export function tusHeaders(token, extra = {}) {
  const h = { 'tus-resumable': '1.0.0', ...extra };
  if (token) h.authorization = `Bearer ${token}`;
  return h;
}

// POST /v2/uploads/ and insist on 201; returns the upload's URL.
export async function create(server, token, length, extra = {}) {
  const r = await request(server, 'POST', '/v2/uploads/', {
    headers: tusHeaders(token, { 'upload-length': String(length), ...extra }),
  });
  assert.equal(r.status, 201, `create → ${r.status} ${r.text}`);
  assert.match(r.headers.location, /^\/v2\/uploads\/[0-9a-f]{32}$/);
  return r.headers.location;
}

export function patch(server, token, url, offset, body, extra = {}) {
  return request(server, 'PATCH', url, {
    headers: tusHeaders(token, {
      'content-type': 'application/offset+octet-stream',
      'upload-offset': String(offset),
      ...extra,
    }),
    body,
  });
}

// HEAD and insist on 200; returns Upload-Offset.
export async function offsetOf(server, token, url) {
  const r = await request(server, 'HEAD', url, { headers: tusHeaders(token) });
  assert.equal(r.status, 200, `HEAD ${url} → ${r.status}`);
  return Number(r.headers['upload-offset']);
}

// A PATCH whose body is written by the caller (the returned ClientRequest), for bodies that are
// cut off: Content-Length announces `length` bytes from `offset`.
export function openPatch(server, token, url, offset, length, extra = {}) {
  return http.request({
    host: '127.0.0.1',
    port: server.port,
    method: 'PATCH',
    path: url,
    agent: false,
    headers: tusHeaders(token, {
      'content-type': 'application/offset+octet-stream',
      'upload-offset': String(offset),
      'content-length': String(length),
      ...extra,
    }),
  });
}
