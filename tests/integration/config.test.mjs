// --config: the real binary started from a TOML file alone (listen, services, secrets read from
// mounted files, two API keys for rotation), the environment overriding the file,
// --print-config, and a bad file refused at start-up with its line named.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unique } from './support/env.mjs';
import { publish, publishOk } from './support/http.mjs';
import { runToExit, startServer } from './support/server.mjs';
import { claims, mintHS256 } from './support/tokens.mjs';
import { connect, openStream } from './support/ws.mjs';

const SECRET = 'config-test-secret-0123456789abcdefghijklmnop';
const OLD_KEY = 'config-test-old-key-4Rk9';
const NEW_KEY = 'config-test-new-key-7Wq2';

// startServer's defaults come as flags, which would win over the file: drop them all.
const NO_DEFAULT_FLAGS = {
  listen: null,
  'jwt-secret': null,
  'api-key': null,
  workers: null,
  'log-level': null,
  'drain-period': null,
};

describe('a server configured by a TOML file', () => {
  let dir;
  let configPath;
  let server;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sg-config-'));
    const secretPath = path.join(dir, 'jwt');
    const keysPath = path.join(dir, 'api-keys');
    writeFileSync(secretPath, `${SECRET}\n`);
    writeFileSync(keysPath, `${OLD_KEY}\n${NEW_KEY}\n`);
    configPath = path.join(dir, 'streamgate.toml');
    writeFileSync(
      configPath,
      [
        '# written by config.test.mjs',
        'listen = "127.0.0.1:0"',
        `jwt-secret-file = ${JSON.stringify(secretPath)}`,
        `api-key-file = [${JSON.stringify(keysPath)}]`,
        'services = ["finance", "payroll"]',
        'workers = 2',
        'drain-period = 0',
        '',
      ].join('\n'),
    );
    server = await startServer({ flags: { ...NO_DEFAULT_FLAGS, config: configPath } });
    server.secret = SECRET;
    server.apiKey = NEW_KEY;
  });

  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('says which file it loaded', () => {
    const loaded = server.logs().find((l) => l.message === 'config loaded');
    assert.ok(loaded, `a "config loaded" log line; stderr:\n${server.stderrText.slice(0, 2000)}`);
    assert.equal(loaded.file, configPath);
  });

  test('the services list and the secret file took effect', async () => {
    const org = unique('cfg');
    const { client, ack } = await openStream(server, { org, services: ['payroll'] });
    assert.deepEqual(ack.services, ['payroll']);
    const id = await publishOk(server, { orgId: org, service: 'payroll', event: 'run.done', data: {} });
    const ev = await client.nextEvent();
    assert.equal(ev.id, id);
    await client.close();

    const outside = await connect(server, { token: mintHS256(claims({ org }), SECRET) });
    outside.send({ services: ['hr'], version: 1 });
    const err = await outside.next((m) => m.type === 'error', { what: 'an error frame' });
    assert.equal(err.code, 'unknown_service');
    assert.equal((await outside.waitClose()).code, 1008);
  });

  test('both keys of the API key file publish; any other key is refused', async () => {
    const body = { orgId: unique('cfg'), service: 'finance', event: 'x', data: {} };
    assert.equal((await publish(server, body, { apiKey: OLD_KEY })).status, 200);
    assert.equal((await publish(server, body, { apiKey: NEW_KEY })).status, 200);
    assert.equal((await publish(server, body, { apiKey: 'not-a-key' })).status, 401);
  });

  test('the environment wins over the file', async () => {
    const other = await startServer({
      flags: { ...NO_DEFAULT_FLAGS, config: configPath },
      env: { STREAMGATE_SERVICES: 'ops' },
    });
    try {
      other.secret = SECRET;
      const { client, ack } = await openStream(other, { services: ['ops'] });
      assert.deepEqual(ack.services, ['ops']);
      await client.close();
      const refused = await connect(other, { token: mintHS256(claims({}), SECRET) });
      refused.send({ services: ['finance'], version: 1 });
      const err = await refused.next((m) => m.type === 'error', { what: 'an error frame' });
      assert.equal(err.code, 'unknown_service');
    } finally {
      await other.stop();
    }
  });

  test('--print-config shows the file\'s settings, secrets redacted, and exits 0', async () => {
    const r = await runToExit({ config: configPath, 'print-config': true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^services = \["finance", "payroll"\]$/m);
    assert.match(r.stdout, /^listen = "127\.0\.0\.1:0"$/m);
    assert.match(r.stdout, /^api-key = \[\]$/m);
    for (const secret of [SECRET, OLD_KEY, NEW_KEY]) {
      assert.ok(!r.stdout.includes(secret), 'no secret in the output');
    }
  });

  test('a bad value stops start-up with exit 2, naming the file, line and key', async () => {
    const bad = path.join(dir, 'bad.toml');
    writeFileSync(bad, 'listen = "127.0.0.1:0"\nservices = ["finance"]\nhistory = 0\n');
    const r = await runToExit({ config: bad, dev: true });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`streamgate: ${bad}:3: history must be at least 1`), r.stderr);

    writeFileSync(bad, 'listen = "127.0.0.1:0"\nservics = ["finance"]\n');
    const typo = await runToExit({ config: bad, dev: true });
    assert.equal(typo.code, 2, typo.stderr);
    assert.ok(typo.stderr.includes(`streamgate: ${bad}:2: servics: unknown key`), typo.stderr);
  });
});
