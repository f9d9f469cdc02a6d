// A TCP proxy on loopback in front of the server that cuts a connection once, at a moment the test
// picks by looking at the bytes going through: the network failing midway, reproducibly.

import net from 'node:net';

/**
 * Forwards 127.0.0.1:<port> to `target` (a port on 127.0.0.1). `cut(direction, chunk, state)` is
 * asked for each chunk before it is forwarded (`direction` 'up' client→server or 'down';
 * `state.up`/`state.down` count the bytes forwarded so far on that connection); the first time it
 * returns true the chunk is dropped and both sides are reset. Later connections are never cut.
 */
export async function startCuttingProxy(target, cut) {
  const sockets = new Set();
  const proxy = { port: 0, cuts: 0, connections: 0 };
  const server = net.createServer((client) => {
    proxy.connections += 1;
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    const state = { up: 0, down: 0 };
    const pipe = (from, to, direction) => {
      from.on('data', (chunk) => {
        if (proxy.cuts === 0 && cut(direction, chunk, state)) {
          proxy.cuts += 1;
          client.resetAndDestroy();
          upstream.resetAndDestroy();
          return;
        }
        state[direction] += chunk.length;
        to.write(chunk);
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => {
        to.destroy();
        sockets.delete(from);
      });
    };
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = server.address().port;
  proxy.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}
