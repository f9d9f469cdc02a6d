// Starts the real streamgate binary on 127.0.0.1:0 and learns its port from the
// {"message":"listening",...,"port":N} log line. Keeps everything it writes, so tests can
// inspect logs (and check that no secret ever appears in them).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ms, withTimeout } from './env.mjs';
import { DEFAULT_API_KEY, DEFAULT_SECRET } from './tokens.mjs';

// Default: this checkout's build (the browser client's tests import this module too).
export const BIN =
  process.env.STREAMGATE_BIN || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/streamgate');

// Servers still running when this process ends are killed, so an interrupted or timed-out
// run (ctest's TIMEOUT, Ctrl-C) leaves no orphaned streamgate behind.
const live = new Set();
function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);
for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.once(sig, () => {
    killAll();
    process.exit(code);
  });
}

// Turns {history: 5, 'jwt-leeway': 0, dev: true} into ['--history','5','--jwt-leeway','0','--dev'].
// A null/undefined value drops the flag (used to leave out a default such as --jwt-secret).
function toArgs(flags) {
  const args = [];
  for (const [name, value] of Object.entries(flags)) {
    if (value === null || value === undefined || value === false) continue;
    args.push(`--${name}`);
    if (value !== true) args.push(String(value));
  }
  return args;
}

// The environment for the child: ours minus every STREAMGATE_* variable, because the server
// reads STREAMGATE_<NAME> as settings and ctest sets STREAMGATE_BIN/STREAMGATE_SANITIZED.
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('STREAMGATE_')) env[k] = v;
  }
  return { ...env, ...extra };
}

export class Server {
  constructor(child, { secret, apiKey, args }) {
    this.child = child;
    this.secret = secret;
    this.apiKey = apiKey;
    this.args = args;
    this.stderrText = '';
    this.stdoutText = '';
    this.port = undefined;
    this.address = undefined;
    this.exitInfo = undefined;
    this.killed = false;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
    child.stderr.setEncoding('utf8');
    child.stdout.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      this.stderrText += d;
    });
    child.stdout.on('data', (d) => {
      this.stdoutText += d;
    });
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v2/realtime/stream`;
  }

  // Every stderr line that parses as a JSON object.
  logs() {
    const out = [];
    for (const line of this.stderrText.split('\n')) {
      const t = line.trim();
      if (!t.startsWith('{')) continue;
      try {
        out.push(JSON.parse(t));
      } catch {
        // not a log line (e.g. a sanitizer report)
      }
    }
    return out;
  }

  // Sanitizer or UBSan reports in the output, if any.
  sanitizerReport() {
    const text = this.stderrText;
    const markers = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:', 'ERROR: ThreadSanitizer'];
    const hit = markers.find((m) => text.includes(m));
    if (!hit) return null;
    const at = text.indexOf(hit);
    return text.slice(Math.max(0, at - 200), at + 8000);
  }

  // Sends `sig`. After SIGKILL the server is `killed`: its exit is the test's doing, so a
  // teardown need not stop it (see stopCluster).
  signal(sig) {
    if (sig === 'SIGKILL') this.killed = true;
    this.child.kill(sig);
  }

  // Waits for the process to exit on its own (after a signal sent by the caller).
  async waitExit(timeout = ms(10000)) {
    return withTimeout(this.exited, timeout, 'streamgate to exit');
  }

  // SIGTERM, wait for a clean exit; SIGKILL if it hangs. Throws if the server did not exit
  // with code 0 (the contract for SIGTERM; a crash shows here too) or a sanitizer complained,
  // so an `after` hook calling stop() fails the file.
  async stop({ timeout = ms(10000) } = {}) {
    if (!this.exitInfo) {
      this.child.kill('SIGTERM');
      try {
        await withTimeout(this.exited, timeout, 'streamgate to exit after SIGTERM');
      } catch (e) {
        this.child.kill('SIGKILL');
        await this.exited;
        throw e;
      }
    }
    const report = this.sanitizerReport();
    if (report) throw new Error(`sanitizer report in server output:\n${report}`);
    if (this.exitInfo.code !== 0) {
      throw new Error(
        `streamgate did not exit cleanly: ${JSON.stringify(this.exitInfo)}; stderr tail:\n${this.stderrText.slice(-2000)}`,
      );
    }
    return this.exitInfo;
  }
}

// Starts a server. `flags` add or override command-line flags (see toArgs). Resolves once the
// "listening" line names the port; rejects (with the server's output) if it exits first.
export async function startServer({ flags = {}, env = {}, timeout = ms(10000) } = {}) {
  if (!existsSync(BIN)) throw new Error(`streamgate binary not found at ${BIN} (set STREAMGATE_BIN)`);
  const merged = {
    listen: '127.0.0.1:0',
    'jwt-secret': DEFAULT_SECRET,
    'api-key': DEFAULT_API_KEY,
    workers: 2,
    'log-level': 'info',
    // The old immediate shutdown, so that stop() in every file's teardown doesn't wait out the
    // 10 s default drain; drain.test.mjs sets a period.
    'drain-period': 0,
    ...flags,
  };
  const args = toArgs(merged);
  const child = spawn(BIN, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const server = new Server(child, {
    secret: merged['jwt-secret'] ?? undefined,
    apiKey: String(merged['api-key'] ?? '').split(',')[0],
    args,
  });

  const listening = new Promise((resolve, reject) => {
    const check = () => {
      for (const line of server.logs()) {
        if (line.message === 'listening') {
          resolve(line);
          return true;
        }
      }
      return false;
    };
    child.stderr.on('data', () => {
      check();
    });
    child.on('error', reject);
    server.exited.then((info) => {
      if (!check()) {
        reject(
          new Error(
            `streamgate exited (${JSON.stringify(info)}) before listening; args ${JSON.stringify(args)}\n` +
              `stderr:\n${server.stderrText.slice(0, 4000)}`,
          ),
        );
      }
    });
  });

  let line;
  try {
    line = await withTimeout(listening, timeout, 'the "listening" log line');
  } catch (e) {
    child.kill('SIGKILL');
    if (server.exitInfo) throw e;
    throw new Error(`${e.message}\nstderr so far:\n${server.stderrText.slice(0, 4000)}`);
  }
  if (!Number.isInteger(line.port) || line.port <= 0) {
    child.kill('SIGKILL');
    throw new Error(`"listening" line has no usable integer "port": ${JSON.stringify(line)}`);
  }
  server.port = line.port;
  server.address = line.address;
  return server;
}

// Runs the binary to completion (for start-up validation tests). Resolves {code, signal, stderr, stdout}.
export async function runToExit(flags, { timeout = ms(10000) } = {}) {
  if (!existsSync(BIN)) throw new Error(`streamgate binary not found at ${BIN}`);
  const child = spawn(BIN, toArgs(flags), { env: childEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d;
  });
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d;
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  try {
    const info = await withTimeout(exited, timeout, 'streamgate to exit by itself');
    return { ...info, stderr, stdout };
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${e.message}; stderr:\n${stderr.slice(0, 2000)}`);
  }
}
