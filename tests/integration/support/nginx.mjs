// A private nginx (Debian's nginx-light, installed by scripts/install-deps.sh) in front of test
// nodes: started with a configuration the test writes, in a temporary prefix, and proven up by
// proxying /healthz before it is used.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ms, waitFor, withTimeout } from './env.mjs';
import { freePort } from './redis.mjs';

function findNginx() {
  if (process.env.STREAMGATE_TEST_NGINX) return process.env.STREAMGATE_TEST_NGINX;
  const dirs = (process.env.PATH || '').split(':').concat(['/usr/sbin', '/usr/local/sbin']);
  for (const dir of dirs) {
    const candidate = path.join(dir, 'nginx');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

// The nginx binary, or undefined (the tests that need it skip, saying so).
export const NGINX = findNginx();

// A whole nginx.conf for a prefix `dir`: one foreground process, every path (pid, logs, temp
// files) inside `dir`, and `http` as the http block's content.
export function nginxMain(dir, http, { connections = 1024 } = {}) {
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${connections}; }
http {
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${http}}
`;
}

// `configFor(dir, port)` returns nginx.conf for a prefix `dir` listening on `port`.
export async function startNginx(configFor) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sg-itest-nginx-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'nginx.conf'), configFor(dir, port));
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeout: ms(10000), what: 'nginx to proxy /healthz' },
  );
  return {
    port,
    dir,
    async stop() {
      child.kill('SIGTERM');
      await withTimeout(exited, ms(5000), 'nginx to exit').catch(() => child.kill('SIGKILL'));
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
