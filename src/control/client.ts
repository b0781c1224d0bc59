import net from 'node:net';
import { FaithdError } from '../errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

/**
 * Sends one request to the daemon's control socket and returns its answer. A socket that is
 * missing or refuses means the daemon is not running (NOT_RUNNING); no answer within the
 * timeout is a failure.
 */
export function request(path: string, req: ControlRequest, timeout = 10_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let answer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeout, () => {
      socket.destroy();
      reject(new FaithdError('CONTROL', `no answer on ${path} within ${timeout / 1000} s`));
    });
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => {
      try {
        resolve(JSON.parse(answer) as ControlResponse);
      } catch {
        reject(new FaithdError('CONTROL', `unreadable answer on ${path}: ${answer.slice(0, 200)}`));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new FaithdError('NOT_RUNNING', `faithd6 is not running (no daemon on ${path})`, { cause: err }));
      } else if (err.code === 'EACCES') {
        reject(new FaithdError('NO_PERMISSION', `cannot reach ${path}: permission denied (run as the daemon's user or root)`, { cause: err }));
      } else {
        reject(new FaithdError('CONTROL', `cannot reach ${path}: ${err.message}`, { cause: err }));
      }
    });
  });
}
