import net from 'node:net';
import { READ_INTO } from './pump.js';

/** Idle milliseconds before TCP keepalive probes start, on both sockets of a relay. */
export const KEEPALIVE_DELAY = 60_000;

/**
 * Opens the connection to an IPv4 backend, set up as the relay needs it: half-open allowed,
 * TCP_NODELAY so that the relay adds no Nagle delay, keepalive, and reading into the relay's
 * buffers. The socket is still connecting when it is returned; the Relay given it times that.
 */
export function dial(host: string, port: number): net.Socket {
  return net.connect({
    host,
    port,
    family: 4,
    allowHalfOpen: true,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: KEEPALIVE_DELAY,
    onread: READ_INTO,
  });
}
