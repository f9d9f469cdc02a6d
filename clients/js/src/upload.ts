// `client.upload(file)`: a document over the upload WebSocket (docs/protocol.md, "Uploading
// documents"). Each upload opens its own socket from the calling tab: uploads are bulk binary
// transfers of one tab's file, and relaying them through the leader tab would copy every byte
// across the BroadcastChannel for nothing. A dropped connection is resumed from the offset the
// server says it stored; the SHA-256 goes in `start`, so the server refuses a file that arrived
// corrupted, and the client checks the digest the server reports at the end.

import { Backoff } from './backoff.js';
import type { Platform, SocketLike } from './platform.js';
import { Sha256 } from './sha256.js';
import { UploadError } from './upload_error.js';
import type { TokenRequest } from './types.js';

export interface UploadOptions {
  /** Called when the server reports bytes stored (durably), and once when it says where to start. */
  onProgress?: (progress: UploadProgress) => void;
  /** Aborts the upload: the socket closes and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Shown back by the server; default the File's name. Never used as a path. */
  filename?: string;
  /** Default the Blob's type. */
  contentType?: string;
  /** Continue an upload started earlier (its `uploadId`, e.g. saved before a reload). */
  uploadId?: string;
  /** Hash the file and have the server check it. Default true. */
  sha256?: boolean;
  /** Consecutive connections that may fail without storing a byte before the upload gives up. Default 5. */
  maxRetries?: number;
  /**
   * The upload socket's URL (default: the client's URL with `/stream` replaced by `/upload`), or
   * with `protocol: 'tus'` the tus creation URL (default: `http(s)://<host>/v2/uploads/`).
   */
  url?: string;
  /** `websocket` (default), or `tus`: tus 1.0 over HTTP (fetch), e.g. where WebSockets are blocked. */
  protocol?: 'websocket' | 'tus';
}

export interface UploadProgress {
  uploadId: string;
  /** Bytes the server has stored durably. */
  received: number;
  total: number;
  /** `received / total` as a percentage, two decimals at most. */
  percent: number;
}

export interface UploadResult {
  uploadId: string;
  size: number;
  /**
   * The stored file's SHA-256 (hex): the server's over the upload socket; over tus the client's
   * (every 1 MiB piece checked by the server), empty with `sha256: false`.
   */
  sha256: string;
}

export interface UploadContext {
  url: string;
  getToken: (request: TokenRequest) => Promise<string> | string;
  platform: Platform;
}

interface UploadSocket extends Omit<SocketLike, 'send'> {
  binaryType: string;
  send(data: string | ArrayBuffer): void;
}

// At most this much sent ahead of what the server has stored: the server reports progress at
// least every 1 MiB or 250 ms, so the pipe stays full while the browser never buffers more.
const WINDOW_BYTES = 4 << 20;
// The server's default --max-message-bytes.
const CHUNK_BYTES = 64 << 10;
// Silence while the server owes an answer (ready, progress): the connection is dead.
const IDLE_MS = 30000;
// WebCrypto's one-shot digest holds the whole file in memory; above this the client hashes slice
// by slice in JavaScript (slower, constant memory).
const ONE_SHOT_MAX = 32 << 20;
const HASH_SLICE = 1 << 20;

// Errors after which the upload is still resumable (docs/protocol.md, the upload error table).
const RESUMABLE = new Set([
  'handshake_timeout',
  'token_expired',
  'refresh_mismatch',
  'shutting_down',
  'offset_mismatch',
]);

export function uploadUrl(streamUrl: string): string {
  return streamUrl.replace(/\/stream(?=[?#]|$)/, '/upload');
}

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('upload aborted', 'AbortError');
}

async function hashFile(file: Blob, signal: AbortSignal | undefined): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle && file.size <= ONE_SHOT_MAX) {
    const digest = new Uint8Array(await subtle.digest('SHA-256', await file.arrayBuffer()));
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  const hash = new Sha256();
  for (let at = 0; at < file.size; at += HASH_SLICE) {
    aborted(signal);
    hash.update(new Uint8Array(await file.slice(at, at + HASH_SLICE).arrayBuffer()));
  }
  return hash.hex();
}

export function tusUrl(streamUrl: string): string {
  const url = new URL(streamUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.replace(/\/realtime\/stream$/, '/uploads/');
  url.search = '';
  url.hash = '';
  return url.href;
}

function sleep(platform: Platform, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = () => {
      platform.clearTimeout(timer);
      resolve();
    };
    const timer = platform.setTimeout(() => {
      signal?.removeEventListener('abort', wake);
      resolve();
    }, ms);
    signal?.addEventListener('abort', wake, { once: true });
  });
}

const base64 = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

// tus 1.0 (docs/protocol.md, "tus uploads"): create, then PATCH 1 MiB at a time with each piece's
// SHA-256 in Upload-Checksum, which the server checks (a damaged piece is rolled back and sent
// again); after a failed request HEAD says where to continue. tus reports no digest of the whole
// file, and the progress API that does answers no cross-origin request, so the result carries the
// client's own digest of the file.
async function tus(
  file: Blob,
  options: UploadOptions,
  context: UploadContext,
  sha256: string | undefined,
  backoff: Backoff,
): Promise<UploadResult> {
  const { signal } = options;
  const total = file.size;
  const base = options.url ?? tusUrl(context.url);
  let uploadId = options.uploadId;
  let offset = -1; // unknown: ask with HEAD
  let reason: TokenRequest['reason'] = 'initial';
  const report = (received: number) =>
    options.onProgress?.({
      uploadId: uploadId!,
      received,
      total,
      percent: total === 0 ? 100 : Math.floor((received / total) * 10000) / 100,
    });
  for (;;) {
    aborted(signal);
    const token = await context.getToken({ reason, forceRefresh: reason === 'expired', attempt: backoff.attempt });
    const headers = (extra: Record<string, string>) => ({
      authorization: `Bearer ${token}`,
      'tus-resumable': '1.0.0',
      ...extra,
    });
    let progressed = false;
    try {
      if (uploadId === undefined) {
        const name = options.filename ?? (file as { name?: string }).name ?? 'upload';
        const type = options.contentType ?? (file.type || 'application/octet-stream');
        const enc = (v: string) => base64(new TextEncoder().encode(v).buffer as ArrayBuffer);
        const res = await fetch(base, {
          method: 'POST',
          headers: headers({
            'upload-length': String(total),
            'upload-metadata': `filename ${enc(name)},filetype ${enc(type)}`,
          }),
          signal,
        });
        await expect(res, 201);
        uploadId = (res.headers.get('location') ?? '').split('/').pop()!;
        offset = 0;
        report(0);
      }
      const at = new URL(uploadId, base).href;
      if (offset < 0) {
        const res = await fetch(at, { method: 'HEAD', headers: headers({}), signal });
        await expect(res, 200);
        offset = Number(res.headers.get('upload-offset'));
        report(offset);
      }
      while (offset < total) {
        const body = await file.slice(offset, offset + (1 << 20)).arrayBuffer();
        const digest = await globalThis.crypto?.subtle?.digest('SHA-256', body);
        const res = await fetch(at, {
          method: 'PATCH',
          headers: headers({
            'content-type': 'application/offset+octet-stream',
            'upload-offset': String(offset),
            ...(digest ? { 'upload-checksum': `sha256 ${base64(digest)}` } : {}),
          }),
          body,
          signal,
        });
        if (res.status === 409 || res.status === 460) {
          offset = -1; // someone else moved it on, or the piece arrived damaged: ask again
          break;
        }
        await expect(res, 204);
        offset = Number(res.headers.get('upload-offset'));
        progressed = true;
        report(offset);
      }
      if (offset === total) return { uploadId, size: total, sha256: sha256 ?? '' };
    } catch (error) {
      // fetch's TypeError: the request failed on the network. Anything else is final.
      if (!(error instanceof TypeError || error instanceof Unauthorized)) throw error;
      offset = -1;
      reason = error instanceof Unauthorized ? 'expired' : 'reconnect';
    }
    if (progressed) backoff.reset();
    if (backoff.attempt >= (options.maxRetries ?? 5)) {
      throw new UploadError('connection_lost', `no progress after ${backoff.attempt + 1} attempts`);
    }
    await sleep(context.platform, backoff.next(), signal);
  }

  async function expect(res: Response, status: number): Promise<void> {
    if (res.status === status) return;
    const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
    if (res.status === 401) throw new Unauthorized();
    throw new UploadError(body.error ?? `http_${res.status}`, body.message ?? res.statusText);
  }
}

class Unauthorized extends Error {}

function withToken(url: string, token: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
}

type Outcome = { result: UploadResult } | { progressed: boolean; opened: boolean; expired: boolean };

/** Uploads `file`; resolves once the server has stored all of it and confirmed its digest. */
export async function upload(file: Blob, options: UploadOptions, context: UploadContext): Promise<UploadResult> {
  const { signal } = options;
  const { platform } = context;
  aborted(signal);
  const sha256 = options.sha256 === false ? undefined : await hashFile(file, signal);
  const backoff = new Backoff({ baseMs: 250, maxMs: 5000, random: () => platform.random() });
  if (options.protocol === 'tus') return tus(file, options, context, sha256, backoff);
  const maxRetries = options.maxRetries ?? 5;
  let uploadId = options.uploadId;
  let reason: TokenRequest['reason'] = 'initial';
  for (;;) {
    aborted(signal);
    const token = await context.getToken({
      reason,
      forceRefresh: reason === 'expired' || reason === 'rejected',
      attempt: backoff.attempt,
    });
    aborted(signal);
    const outcome = await new Promise<Outcome>((resolve, reject) => {
      const Socket = platform.WebSocket as unknown as (new (url: string) => UploadSocket) | undefined;
      if (!Socket) throw new UploadError('socket_error', 'no WebSocket in this environment');
      const ws = new Socket(withToken(options.url ?? uploadUrl(context.url), token));
      ws.binaryType = 'arraybuffer';
      const total = file.size;
      let opened = false;
      let ready = false;
      let sent = 0;
      let stored = -1;
      let firstStored = -1;
      let pumping = false;
      let error: { code: string; message: string } | null = null;
      let over = false;
      let idle: unknown = null;
      const finish = (outcome: Outcome | Error, code = 1000) => {
        if (over) return;
        over = true;
        platform.clearTimeout(idle);
        signal?.removeEventListener('abort', onAbort);
        ws.onmessage = ws.onclose = ws.onopen = ws.onerror = null;
        try {
          ws.close(code);
        } catch {
          // Already closed.
        }
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const retry = (expired = false) =>
        finish({ progressed: firstStored >= 0 && stored > firstStored, opened, expired }, 4000);
      const watch = () => {
        platform.clearTimeout(idle);
        idle = platform.setTimeout(() => retry(), IDLE_MS);
      };
      const onAbort = () => finish(signal?.reason ?? new DOMException('upload aborted', 'AbortError'));
      signal?.addEventListener('abort', onAbort);
      const report = () => {
        if (uploadId === undefined) return;
        const percent = total === 0 ? 100 : Math.floor((stored / total) * 10000) / 100;
        try {
          options.onProgress?.({ uploadId, received: stored, total, percent });
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      };
      const pump = async () => {
        if (pumping) return;
        pumping = true;
        while (!over && ready && sent < total && sent - stored < WINDOW_BYTES) {
          const end = Math.min(total, sent + CHUNK_BYTES);
          let bytes: ArrayBuffer;
          try {
            bytes = await file.slice(sent, end).arrayBuffer();
          } catch (error) {
            // The file changed or vanished on disk since it was picked: nothing to resume with.
            finish(new UploadError('file_unreadable', error instanceof Error ? error.message : String(error)));
            break;
          }
          if (over) break;
          try {
            ws.send(bytes);
          } catch {
            break; // closing: onclose decides
          }
          sent = end;
        }
        pumping = false;
      };
      ws.onopen = () => {
        opened = true;
        const hello =
          uploadId !== undefined
            ? { type: 'resume', uploadId }
            : {
                type: 'start',
                filename: options.filename ?? (file as { name?: string }).name ?? 'upload',
                size: total,
                contentType: options.contentType ?? (file.type || 'application/octet-stream'),
                ...(sha256 === undefined ? {} : { sha256 }),
              };
        ws.send(JSON.stringify(hello));
        watch();
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(ev.data) as Record<string, unknown>;
        } catch {
          return;
        }
        watch();
        if (m.type === 'ready' && typeof m.uploadId === 'string' && typeof m.offset === 'number') {
          uploadId = m.uploadId;
          ready = true;
          sent = stored = firstStored = m.offset;
          report();
          void pump();
        } else if (m.type === 'progress' && typeof m.received === 'number' && m.received > stored) {
          stored = m.received;
          report();
          void pump();
        } else if (m.type === 'complete' && typeof m.sha256 === 'string') {
          if (stored < total) {
            stored = total;
            report();
          }
          if (sha256 !== undefined && m.sha256 !== sha256) {
            finish(new UploadError('checksum_mismatch', `server stored ${m.sha256}, file is ${sha256}`));
          } else {
            finish({ result: { uploadId: uploadId!, size: total, sha256: m.sha256 } });
          }
        } else if (m.type === 'error') {
          error = { code: String(m.code), message: typeof m.message === 'string' ? m.message : '' };
        }
      };
      ws.onclose = (ev) => {
        if (error && !RESUMABLE.has(error.code)) finish(new UploadError(error.code, error.message));
        else retry(ev.code === 4001 || error?.code === 'token_expired');
      };
    });
    if ('result' in outcome) return outcome.result;
    if (outcome.progressed) backoff.reset();
    if (backoff.attempt >= maxRetries) {
      throw new UploadError('connection_lost', `no progress after ${backoff.attempt + 1} connections`);
    }
    reason = outcome.expired ? 'expired' : outcome.opened ? 'reconnect' : 'rejected';
    await sleep(platform, backoff.next(), signal);
  }
}
