// The peer a TypeScript team would write instead of streamgate: Node.js with the npm `ws`
// package, one process, a Map of channel → Set of sockets, JSON.stringify once per event and
// ws.send() to every socket of the channel. It speaks the subset of streamgate's protocol the
// benchmark uses (token in the query string, handshake → ack, POST /v2/realtime/publish with
// one event or an array), so the same generator adapter drives both.
//
//   node bench/peers/node-ws-server.mjs --port 0 --secret S --api-key K
//
// Prints {"message":"listening","port":N} on stderr once it accepts connections.

import crypto from 'node:crypto';
import http from 'node:http';
import { WebSocketServer } from 'ws';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, v, i, all) => (i % 2 === 0 ? [...pairs, [v.replace(/^--/, ''), all[i + 1]]] : pairs), []),
);
const secret = args.secret;
const apiKey = args['api-key'];
if (!secret || !apiKey) {
  console.error('usage: node-ws-server.mjs --port N --secret S --api-key K');
  process.exit(2);
}

const epoch = crypto.randomBytes(6).toString('hex');
const channels = new Map(); // "org:service" → Set<WebSocket>
const offsets = new Map(); // "org:service" → last offset

function verifyHs256(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const mac = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return null;
    if (claims.sub === undefined || claims.org_id === undefined) return null;
    return { org: String(claims.org_id), user: String(claims.sub) };
  } catch {
    return null;
  }
}

function publishOne(e) {
  const key = `${e.orgId}:${e.service}`;
  const offset = (offsets.get(key) ?? 0) + 1;
  offsets.set(key, offset);
  const id = `${epoch}-${offset}`;
  const message = JSON.stringify({
    type: 'event',
    service: e.service,
    id,
    event: e.event,
    data: e.data ?? null,
    timestamp: new Date().toISOString(),
  });
  const sockets = channels.get(key);
  if (sockets) for (const ws of sockets) ws.send(message);
  return id;
}

const server = http.createServer((req, res) => {
  const reply = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (req.method !== 'POST' || req.url !== '/v2/realtime/publish') return reply(404, { error: 'not_found' });
  if (req.headers.authorization !== `Bearer ${apiKey}`) return reply(401, { error: 'invalid_api_key' });
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return reply(400, { error: 'malformed_json' });
    }
    if (Array.isArray(body)) return reply(200, { ids: body.map(publishOne) });
    return reply(200, { id: publishOne(body) });
  });
});

const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const token = url.searchParams.get('access_token') ?? bearer ?? '';
  const principal = url.pathname === '/v2/realtime/stream' ? verifyHs256(token) : null;
  if (!principal) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const keys = [];
    ws.once('message', (raw) => {
      let hello;
      try {
        hello = JSON.parse(raw.toString());
      } catch {
        ws.close(1007);
        return;
      }
      const services = [...new Set(Array.isArray(hello.services) ? hello.services : [])];
      for (const service of services) {
        const key = `${principal.org}:${service}`;
        if (!channels.has(key)) channels.set(key, new Set());
        channels.get(key).add(ws);
        keys.push(key);
      }
      ws.send(JSON.stringify({ type: 'ack', seq: 0, timestamp: new Date().toISOString(), services }));
    });
    ws.on('close', () => {
      for (const key of keys) {
        const set = channels.get(key);
        set?.delete(ws);
        if (set?.size === 0) channels.delete(key);
      }
    });
    ws.on('error', () => {});
  });
});

server.listen(Number(args.port ?? 0), args.host ?? '127.0.0.1', () => {
  console.error(JSON.stringify({ message: 'listening', port: server.address().port }));
});

const stop = () => server.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 500).unref();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
