import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { FaithdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

const MAX_SOCKET_PATH = 107;

/** A request line longer than this is not ours: the connection is dropped. */
const MAX_REQUEST = 64 * 1024;

export type ControlHandler = (request: ControlRequest) => Promise<ControlResponse>;

/**
 * The daemon's end of the control socket: a unix stream socket, mode 0600, one JSON request
 * line in, one JSON response line out, then the daemon closes the connection.
 */
export class ControlServer {
  private readonly server: net.Server;
  private readonly path: string;

  private constructor(server: net.Server, path: string) {
    this.server = server;
    this.path = path;
  }

  /** Listens on `path`; the socket is created with mode 0600, never world-reachable. */
  static async listen(path: string, handler: ControlHandler, log: Logger): Promise<ControlServer> {
    // sun_path holds 108 bytes with the terminating NUL; a longer path is silently cut short.
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new FaithdError('CONFIG', `the control socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter runtimeDirectory`);
    }
    const server = net.createServer((socket) => serve(socket, handler, log));
    server.on('error', (err) => log.error({ err }, 'control socket failed'));
    // The umask applies while bind() creates the socket file, so there is no moment at which
    // another user could connect; chmod afterwards states the intent for any umask.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    chmodSync(path, 0o600);
    return new ControlServer(server, path);
  }

  /** Stops listening and removes the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

function serve(socket: net.Socket, handler: ControlHandler, log: Logger): void {
  let buffer = '';
  socket.setEncoding('utf8');
  socket.setTimeout(10_000, () => socket.destroy());
  socket.on('error', () => {});
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    const newline = buffer.indexOf('\n');
    if (newline < 0) {
      if (buffer.length > MAX_REQUEST) socket.destroy();
      return;
    }
    socket.pause();
    let request: ControlRequest;
    try {
      request = JSON.parse(buffer.slice(0, newline)) as ControlRequest;
    } catch {
      socket.end(`${JSON.stringify({ ok: false, error: 'not a JSON request' })}\n`);
      return;
    }
    handler(request).then(
      (response) => socket.end(`${JSON.stringify(response)}\n`),
      (err: Error) => {
        log.error({ err }, 'control request failed');
        socket.end(`${JSON.stringify({ ok: false, error: err.message })}\n`);
      },
    );
  });
}
