// Preloaded into artillery (`node -r`, or NODE_OPTIONS="-r <this file>" so its workers get it
// too) so that a benchmark run never contacts an outside address. artillery 2.0.21 sends
// telemetry through posthog-node even when ARTILLERY_DISABLE_TELEMETRY is set (it only strips
// the properties), so:
//   1. `require('posthog-node')` returns a client that does nothing;
//   2. as a backstop, every TCP connect and DNS lookup to anything but loopback fails at once
//      and is reported on stderr, so a new phone-home in some dependency shows up instead of
//      leaking.
'use strict';

const Module = require('node:module');
const net = require('node:net');
const dns = require('node:dns');

process.env.ARTILLERY_DISABLE_TELEMETRY = 'true';

class QuietPostHog {
  capture() {}
  identify() {}
  alias() {}
  flush() { return Promise.resolve(); }
  shutdown() { return Promise.resolve(); }
  shutdownAsync() { return Promise.resolve(); }
  on() { return this; }
}

const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request === 'posthog-node') return { PostHog: QuietPostHog, default: QuietPostHog };
  return originalLoad.call(this, request, parent, isMain);
};

function isLoopback(host) {
  if (host === undefined || host === null || host === '') return true; // net defaults to localhost
  const h = String(host).replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h.startsWith('127.') || h === '::ffff:127.0.0.1';
}

function blocked(host) {
  process.stderr.write(`telemetry-off: blocked a connection to ${host}\n`);
  const err = new Error(`blocked by bench/telemetry-off.cjs: ${host} is not a loopback address`);
  err.code = 'ECONNREFUSED';
  return err;
}

const originalConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  let options = args[0];
  if (Array.isArray(options)) options = options[0]; // internal normalized form
  let host;
  if (options && typeof options === 'object') {
    if (options.path) return originalConnect.apply(this, args); // unix socket
    host = options.host;
  } else if (typeof args[1] === 'string') {
    host = args[1];
  }
  if (!isLoopback(host)) {
    const err = blocked(host);
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return originalConnect.apply(this, args);
};

const originalLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  const cb = typeof options === 'function' ? options : callback;
  if (!isLoopback(hostname)) {
    const err = blocked(hostname);
    err.code = 'ENOTFOUND';
    process.nextTick(() => cb(err));
    return {};
  }
  return originalLookup.call(this, hostname, options, callback);
};
const originalPromiseLookup = dns.promises.lookup;
dns.promises.lookup = function lookup(hostname, options) {
  if (!isLoopback(hostname)) {
    const err = blocked(hostname);
    err.code = 'ENOTFOUND';
    return Promise.reject(err);
  }
  return originalPromiseLookup.call(this, hostname, options);
};
