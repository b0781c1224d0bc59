// The baseline relay: the least a Node.js translator can do, so that every feature faithd6
// adds has a visible cost. No rules, timeouts, limits, logs or counters: listen on [::]:PORT
// (IPv6 only), take the IPv4 address in the low 32 bits of the address the client dialled,
// connect there and pipe() both ways (half-close through pipe's end(), errors destroy both).
//
//   node dist/bench/node-pipe.js PORT BACKEND_PORT
import net from 'node:net';

const port = Number(process.argv[2]);
const backendPort = Number(process.argv[3] ?? port);

/** The IPv4 address a /96 translated address embeds (e.g. 64:ff9b:1::c612:1 → 198.18.0.1). */
function embedded(address: string): string {
  const groups = address.split(':');
  const high = parseInt(groups.at(-2) || '0', 16);
  const low = parseInt(groups.at(-1) || '0', 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const backend = net.connect({ host: embedded(client.localAddress ?? ''), port: backendPort, allowHalfOpen: true, noDelay: true });
  client.pipe(backend);
  backend.pipe(client);
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
});
server.listen({ host: '::', port, ipv6Only: true, backlog: 511 }, () => {
  process.stdout.write(JSON.stringify({ msg: 'ready', port }) + '\n');
});
