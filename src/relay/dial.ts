import net from 'node:net';
import { READ_INTO } from './pump.js';

/** Idle milliseconds before TCP keepalive probes start, on both sockets of a relay. */
export const KEEPALIVE_DELAY = 60_000;

/**
 * Opens the connection to an IPv4 backend (or, for the FTP gateway's active mode, to an IPv6
 * client), set up as the relay needs it: half-open allowed, TCP_NODELAY so that the relay adds
 * no Nagle delay, keepalive, and reading into the relay's buffers. The socket is still
 * connecting when it is returned; the Relay given it times that.
 *
 * With a `source`, the socket is bound to that address first. Node offers only that (libuv's
 * bind with port 0, then connect); it has no IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
 * ephemeral port at bind(), among the ports free on that address whatever the destination.
 */
export function dial(host: string, port: number, source: string | null, family: 4 | 6 = 4): net.Socket {
  return net.connect({
    host,
    port,
    family,
    ...(source === null ? {} : { localAddress: source }),
    allowHalfOpen: true,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: KEEPALIVE_DELAY,
    onread: READ_INTO,
  });
}
