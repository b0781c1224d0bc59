import net from 'node:net';
import { FaithdError } from '../errors.js';

// BIRD's control socket, the one birdc talks to: line-based. On connecting BIRD greets with
// `0001 BIRD 2.0.12 ready.`; each command is one line, and its reply is lines of a four-digit
// code and a `-` (more follows), a space (the last line), or a line that starts with a space
// (more of the code before). `0000` ends a reply that was all data; codes from 8000 are runtime
// errors and from 9000 parse errors (BIRD's doc/reply_codes). What faithd6 uses of it:
//
//   enable NAME   -> 0011 NAME: enabled    | 0010 NAME: already enabled
//   disable NAME  -> 0009 NAME: disabled   | 0008 NAME: already disabled
//   show protocols NAME -> 2002 (the header), 1002 NAME Proto Table State Since Info
//   show route protocol NAME -> 1007 the routes (`Table master6:`, then ` PREFIX ...`)
//   an unknown NAME -> 9001 syntax error, unexpected CF_SYM_UNDEFINED ...
//
// Each command gets a connection of its own: BIRD may have restarted since the last.

/** How long one command may take, connection included. */
export const BIRD_TIMEOUT = 3_000;

/** BIRD's reply: the code of its last line and the text of every line. */
export interface BirdReply {
  readonly code: number;
  readonly lines: readonly { readonly code: number; readonly text: string }[];
}

/** A command BIRD could not be asked, or answered with an error; `message` says which for the log. */
export class BirdError extends FaithdError {
  constructor(message: string) {
    super('BIRD', message);
    this.name = 'BirdError';
  }
}

/** What an errno on connecting to the socket means to an operator. */
function connectProblem(socket: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return `no BIRD control socket at ${socket} (is BIRD running, with this socket?)`;
    case 'ECONNREFUSED':
      return `nothing answers on ${socket} (BIRD is not running)`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${socket} (faithd6 must be allowed to use BIRD's control socket)`;
    default:
      return `cannot reach BIRD on ${socket}: ${err.code ?? err.message}`;
  }
}

/**
 * A connection to BIRD's control socket, greeted and idle, for a process that cannot open one
 * itself (a worker, which runs unprivileged and gets it over IPC) to send one command later.
 */
export function birdLink(socket: string, timeout = BIRD_TIMEOUT): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    const timer = setTimeout(() => conn.destroy(new Error(`no greeting within ${timeout} ms`)), timeout);
    conn.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new BirdError(connectProblem(socket, err)));
    });
    let greeting = '';
    const onData = (chunk: Buffer): void => {
      greeting += chunk.toString('latin1');
      if (!greeting.includes('\n')) return;
      clearTimeout(timer);
      conn.off('data', onData);
      conn.pause();
      if (greeting.startsWith('0001 ')) resolve(conn);
      else {
        conn.destroy();
        reject(new BirdError(`${socket} is not BIRD's control socket (it greeted with "${greeting.trim()}")`));
      }
    };
    conn.on('data', onData);
  });
}

/**
 * Sends `disable NAME` on a link from birdLink() and waits (bounded) for BIRD's answer: the
 * last thing a worker does when its supervisor is gone. Resolves in any case.
 */
export function withdrawOverLink(link: net.Socket, protocol: string, timeout = 1_000): Promise<string> {
  return new Promise((resolve) => {
    let reply = '';
    const done = (outcome: string): void => {
      clearTimeout(timer);
      link.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done(`no answer within ${timeout} ms`), timeout);
    link.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      const last = /^(\d{4}) (.*)$/m.exec(reply);
      if (last !== null) done(reply.trim().split('\n')[0] ?? '');
    });
    link.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    link.once('close', () => done('BIRD closed the connection'));
    link.resume();
    link.write(`disable ${protocol}\n`);
  });
}

/** Sends one command and resolves with BIRD's whole reply; rejects with a BirdError. */
export function birdCommand(socket: string, command: string, timeout = BIRD_TIMEOUT): Promise<BirdReply> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    conn.setEncoding('utf8');
    let buffered = '';
    let greeted = false;
    let lastCode = 0;
    const lines: { code: number; text: string }[] = [];
    const fail = (message: string): void => {
      clearTimeout(timer);
      conn.destroy();
      reject(new BirdError(message));
    };
    const timer = setTimeout(() => fail(`BIRD on ${socket} did not answer "${command}" within ${timeout} ms`), timeout);
    conn.on('error', (err: NodeJS.ErrnoException) => fail(greeted ? `BIRD on ${socket}: ${err.code ?? err.message}` : connectProblem(socket, err)));
    conn.on('close', () => fail(`BIRD on ${socket} closed the connection before answering "${command}"`));
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        const m = /^(\d{4})([ -])(.*)$/.exec(line);
        const code = m === null ? lastCode : Number(m[1]);
        const text = m === null ? line.replace(/^ /, '') : (m[3] as string);
        if (!greeted) {
          if (code !== 1) return fail(`${socket} is not BIRD's control socket (it greeted with "${line}")`);
          greeted = true;
          conn.write(`${command}\n`);
          continue;
        }
        lastCode = code;
        lines.push({ code, text });
        if (m !== null && m[2] === ' ') {
          clearTimeout(timer);
          conn.removeAllListeners('close');
          conn.end();
          if (code >= 8000) reject(new BirdError(`BIRD on ${socket} refused "${command}": ${text}`));
          else resolve({ code, lines });
          return;
        }
      }
    });
  });
}

/** Enables (true) or disables the protocol; resolves with whether BIRD changed anything. */
export async function setProtocol(socket: string, protocol: string, enabled: boolean): Promise<boolean> {
  const reply = await birdCommand(socket, `${enabled ? 'enable' : 'disable'} ${protocol}`);
  const codes = reply.lines.map((l) => l.code);
  if (codes.includes(enabled ? 11 : 9)) return true;
  if (codes.includes(enabled ? 10 : 8)) return false;
  throw new BirdError(
    `BIRD on ${socket} answered "${enabled ? 'enable' : 'disable'} ${protocol}" with ${reply.lines.map((l) => `${l.code} ${l.text}`).join('; ')}`,
  );
}

/** One protocol as `show protocols` lists it. */
export interface BirdProtocol {
  readonly name: string;
  /** `Static`, `BGP`, `Kernel`, ... */
  readonly proto: string;
  /** `up`, `down`, `start`, ... */
  readonly state: string;
}

/** The protocol's type and state, or undefined when BIRD has no protocol of that name. */
export async function showProtocol(socket: string, protocol: string): Promise<BirdProtocol | undefined> {
  let reply: BirdReply;
  try {
    reply = await birdCommand(socket, `show protocols ${protocol}`);
  } catch (err) {
    if (err instanceof BirdError && /CF_SYM_UNDEFINED|No protocols match/.test(err.message)) return undefined;
    throw err;
  }
  const row = reply.lines.find((l) => l.code === 1002);
  if (row === undefined) return undefined;
  const [name, proto, , state] = row.text.trim().split(/\s+/);
  return { name: name ?? protocol, proto: proto ?? '', state: state ?? '' };
}

/** The prefixes of the routes the protocol holds (`show route protocol NAME`). */
export async function protocolRoutes(socket: string, protocol: string): Promise<string[]> {
  const reply = await birdCommand(socket, `show route protocol ${protocol}`);
  return reply.lines.filter((l) => l.code === 1007 && /^\S+\//.test(l.text.trim())).map((l) => l.text.trim().split(/\s+/)[0] as string);
}
