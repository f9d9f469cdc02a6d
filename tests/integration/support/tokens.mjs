// JWT minting for tests with node:crypto only: HS256, RS256, ES256, plus deliberately broken
// tokens for the auth failure cases. Nothing here trusts the server's own minting code.

import crypto from 'node:crypto';

export const DEFAULT_SECRET = 'itest-secret-0123456789abcdefghijklmnopqrstuvwxyz';
export const DEFAULT_API_KEY = 'itest-api-key-Zq8vR2mN5pL7xK3w';

export function b64url(input) {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
  return buf.toString('base64url');
}

export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

// Standard claims for one user of one org; `extra` overrides or adds (undefined deletes).
export function claims({ org = 456, user = 'user-1', ttl = 3600, services, ...extra } = {}) {
  const c = { sub: user, org_id: org, iat: nowSeconds(), exp: nowSeconds() + ttl };
  if (services !== undefined) c.services = services;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return c;
}

function encodeParts(header, payload) {
  const h = typeof header === 'string' ? header : JSON.stringify(header);
  const p = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return `${b64url(h)}.${b64url(p)}`;
}

// HS256 over `payload` (object or raw JSON text) with `secret`. `header` overrides the JOSE
// header (e.g. to lie about alg while still signing with HMAC-SHA256).
export function mintHS256(payload, secret = DEFAULT_SECRET, header = { alg: 'HS256', typ: 'JWT' }) {
  const signingInput = encodeParts(header, payload);
  const sig = crypto.createHmac('sha256', secret).update(signingInput).digest();
  return `${signingInput}.${b64url(sig)}`;
}

// HMAC with another hash, under the header the caller picks (HS384/HS512 cases).
export function mintHmac(payload, secret, hash, header) {
  const signingInput = encodeParts(header, payload);
  const sig = crypto.createHmac(hash, secret).update(signingInput).digest();
  return `${signingInput}.${b64url(sig)}`;
}

export function mintRS256(payload, privateKey, header = { alg: 'RS256', typ: 'JWT' }) {
  const signingInput = encodeParts(header, payload);
  const sig = crypto.sign('sha256', Buffer.from(signingInput), privateKey);
  return `${signingInput}.${b64url(sig)}`;
}

// JWS ES256 signatures are the raw 64-byte r||s, not DER.
export function mintES256(payload, privateKey, header = { alg: 'ES256', typ: 'JWT' }) {
  const signingInput = encodeParts(header, payload);
  const sig = crypto.sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${b64url(sig)}`;
}

// alg "none" with an empty signature part, the classic downgrade.
export function mintNone(payload) {
  return `${encodeParts({ alg: 'none', typ: 'JWT' }, payload)}.`;
}

export function rsaKeyPair() {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export function ecKeyPair() {
  return crypto.generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

// Replaces the payload of a signed token, keeping its header and signature.
export function withPayload(token, payload) {
  const [h, , s] = token.split('.');
  return `${h}.${b64url(JSON.stringify(payload))}.${s}`;
}
