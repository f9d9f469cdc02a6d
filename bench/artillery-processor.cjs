// artillery processor for bench/load-test.yml: gives every virtual user its own token (one
// org, a fresh user id), minted HS256 with STREAMGATE_JWT_SECRET, in the stream URL.
'use strict';

const crypto = require('node:crypto');

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function mint(claims, secret) {
  const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

function connectWithToken(params, context, next) {
  const secret = process.env.STREAMGATE_JWT_SECRET;
  if (!secret) return next(new Error('set STREAMGATE_JWT_SECRET to the server\'s --jwt-secret'));
  const org = Number(process.env.STREAMGATE_ORG || 456);
  const token = mint(
    { sub: `artillery-${crypto.randomUUID()}`, org_id: org, exp: Math.floor(Date.now() / 1000) + 3600 },
    secret,
  );
  params.target = `${params.target.replace(/\/$/, '')}/v2/realtime/stream?access_token=${token}`;
  return next();
}

module.exports = { connectWithToken };
