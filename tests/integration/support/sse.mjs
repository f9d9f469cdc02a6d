// A raw-socket Server-Sent Events client for GET /v2/realtime/sse: it shows the bytes as the
// server framed them (status line, headers, chunks, fields), which EventSource hides. It
// de-chunks the body, parses text/event-stream as the HTML spec does (id, event, data, retry,
// comments), and lets a test stop reading (pause) to play a slow consumer.

import net from 'node:net';
import { ms, waitFor } from './env.mjs';
import { tokenFor } from './ws.mjs';

export const SSE_PATH = '/v2/realtime/sse';

export class SseClient {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.head = undefined; // { status, headers }
    this.bodyText = ''; // de-chunked body so far
    this.rawChunks = []; // chunk payloads as they came
    this.ended = false; // the terminating 0-size chunk arrived
    this.closed = false;
    this.messages = []; // { id?, event?, data?, retry?, comments: [] }
    this.comments = [];
    this.lastEventId = '';
    this.pending = { data: [], comments: [] };
    this.lineBuf = '';
    this.closedPromise = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  onData(d) {
    this.buffer = Buffer.concat([this.buffer, d]);
    if (!this.head) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      this.head = { status, headers, statusLine: lines[0] };
      this.buffer = this.buffer.subarray(end + 4);
    }
    if (this.head.headers['transfer-encoding'] !== 'chunked') {
      this.bodyText += this.buffer.toString('utf8');
      this.buffer = Buffer.alloc(0);
      return;
    }
    for (;;) {
      if (this.ended) return;
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) return;
      const size = parseInt(this.buffer.subarray(0, eol).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line: ${this.buffer.subarray(0, eol)}`);
      if (this.buffer.length < eol + 2 + size + 2) return;
      if (size === 0) {
        this.ended = true;
        this.buffer = this.buffer.subarray(eol + 4);
        return;
      }
      const payload = this.buffer.subarray(eol + 2, eol + 2 + size).toString('utf8');
      if (this.buffer.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') {
        throw new Error('chunk not followed by CRLF');
      }
      this.buffer = this.buffer.subarray(eol + 4 + size);
      this.rawChunks.push(payload);
      this.bodyText += payload;
      this.parse(payload);
    }
  }

  parse(text) {
    this.lineBuf += text;
    let nl;
    while ((nl = this.lineBuf.indexOf('\n')) >= 0) {
      const line = this.lineBuf.slice(0, nl);
      this.lineBuf = this.lineBuf.slice(nl + 1);
      if (line === '') {
        const p = this.pending;
        this.pending = { data: [], comments: [] };
        if (p.id !== undefined) this.lastEventId = p.id;
        if (p.data.length === 0 && p.retry === undefined && p.comments.length === 0 && p.id === undefined) continue;
        const m = { comments: p.comments };
        if (p.id !== undefined) m.id = p.id;
        if (p.event !== undefined) m.event = p.event;
        if (p.retry !== undefined) m.retry = p.retry;
        if (p.data.length) {
          m.data = p.data.join('\n');
          try {
            m.json = JSON.parse(m.data);
          } catch {
            // not JSON
          }
        }
        this.messages.push(m);
        continue;
      }
      if (line.startsWith(':')) {
        this.pending.comments.push(line.slice(1).trim());
        this.comments.push(line.slice(1).trim());
        continue;
      }
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.pending.data.push(value);
      else if (field === 'id') this.pending.id = value;
      else if (field === 'event') this.pending.event = value;
      else if (field === 'retry') this.pending.retry = Number(value);
    }
  }

  // Messages with data (events, ack, resume_failed, error).
  get dataMessages() {
    return this.messages.filter((m) => m.data !== undefined);
  }

  get events() {
    return this.messages.filter((m) => m.json?.type === 'event');
  }

  async next(pred, { timeout = ms(5000), what = 'a message', from = 0 } = {}) {
    let seen = from;
    return waitFor(
      () => {
        for (; seen < this.messages.length; seen++) if (pred(this.messages[seen])) return this.messages[seen];
        return undefined;
      },
      { timeout, what, describe: () => JSON.stringify(this.messages.slice(-5)) },
    );
  }

  async collectEvents(n, { timeout = ms(5000) } = {}) {
    await waitFor(() => this.events.length >= n, {
      timeout,
      what: `${n} events`,
      describe: () => `${this.events.length} events; ${JSON.stringify(this.messages.slice(-3))}`,
    });
    return this.events.slice(0, n);
  }

  pause() {
    this.socket.pause();
  }

  close() {
    this.socket.destroy();
    return this.closedPromise;
  }
}

// Opens GET /v2/realtime/sse?services=… on a raw socket and waits for the response head (and,
// for a refusal, its JSON body). opts: org, user, services, token (null: none), via ('query' |
// 'header'), lastEventId (header), lastEventIdQuery, origin, method, headers, query (raw extra).
export async function openSse(server, opts = {}) {
  const { org = 456, user = 'user-1', services = ['finance'], via = 'query', method = 'GET', claimOpts = {} } = opts;
  const token = opts.token === undefined ? tokenFor(server, { org, user, ...claimOpts }) : opts.token;
  const params = [];
  if (services !== null) params.push(`services=${encodeURIComponent(services.join(','))}`);
  if (token !== null && via === 'query') params.push(`access_token=${encodeURIComponent(token)}`);
  if (opts.lastEventIdQuery !== undefined) params.push(`lastEventId=${encodeURIComponent(opts.lastEventIdQuery)}`);
  if (opts.query) params.push(opts.query);
  const headers = { Host: `127.0.0.1:${server.port}`, Accept: 'text/event-stream', ...(opts.headers ?? {}) };
  if (token !== null && via === 'header') headers.Authorization = `Bearer ${token}`;
  if (opts.lastEventId !== undefined) headers['Last-Event-ID'] = opts.lastEventId;
  if (opts.origin !== undefined) headers.Origin = opts.origin;
  const socket = net.connect({ host: '127.0.0.1', port: opts.port ?? server.port });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const client = new SseClient(socket);
  const target = `${opts.path ?? SSE_PATH}?${params.join('&')}`;
  let req = `${method} ${target} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  socket.write(`${req}\r\n`);
  await waitFor(() => client.head || client.closed, { timeout: opts.timeout ?? ms(5000), what: 'the response head' });
  if (!client.head) throw new Error('connection closed before a response');
  if (client.head.status !== 200) {
    const length = Number(client.head.headers['content-length'] ?? 0);
    await waitFor(() => Buffer.byteLength(client.bodyText) >= length || client.closed, { what: 'the error body' });
    client.json = JSON.parse(client.bodyText || 'null');
    client.socket.destroy();
    return client;
  }
  return client;
}

// Opens a stream and waits for its ack; returns { client, ack } (ack: the parsed message).
export async function openSseStream(server, opts = {}) {
  const client = await openSse(server, opts);
  if (client.head.status !== 200) {
    throw new Error(`SSE refused: ${client.head.status} ${client.bodyText}`);
  }
  const ack = await client.next((m) => m.event === 'ack' || m.event === 'error', { what: 'the ack' });
  if (ack.event !== 'ack') throw new Error(`SSE answered ${JSON.stringify(ack)}`);
  return { client, ack };
}
