import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

// Small readers of the process and kernel state, and the one way faithd6 runs a program.

/** The supervisor's process title; it replaces the command line, which is how it is found. */
export const SUPERVISOR_TITLE = 'faithd6: supervisor';

/** A worker's process title. */
export function workerTitle(port: number): string {
  return `faithd6: worker port ${port}`;
}

/** Whether a command line (or an ss process name) is one of faithd6's process titles. */
export function isFaithd6Title(text: string): boolean {
  return text.startsWith('faithd6');
}

/** A process's arguments (`/proc/PID/cmdline`), or none when it is gone or hidden. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a !== '');
  } catch {
    return [];
  }
}

/** A value under /proc/sys (or any one-line kernel file), trimmed; undefined when it cannot be read. */
export async function readSysctl(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** The IPv6 sysctl that lets a socket bind an address the host has only by a route (per namespace). */
export const NONLOCAL_BIND = '/proc/sys/net/ipv6/ip_nonlocal_bind';

/**
 * Whether sockets may bind IPv6 addresses the host has only by a route, not on an interface
 * (net.ipv6.ip_nonlocal_bind). A translated address is one: the local route makes connections
 * to it arrive, but bind() refuses it unless this is 1. Read each time, synchronously (a small
 * file under /proc): an operator may change it under a running daemon.
 */
export function ipv6NonlocalBind(): boolean {
  try {
    return readFileSync(NONLOCAL_BIND, 'latin1').trim() === '1';
  } catch {
    return false;
  }
}

/** A program that could not be run or exited non-zero: its stderr, and execFile's error (exit status, or ENOENT). */
export class CommandError extends Error {
  /** What the program wrote on stderr, trimmed: often empty. */
  readonly stderr: string;
  declare readonly cause: Error & { code?: number | string | null };

  constructor(message: string, stderr: string, cause: Error & { code?: number | string | null }) {
    super(message, { cause });
    this.name = 'CommandError';
    this.stderr = stderr;
  }

  /** The program is not installed (ENOENT). */
  get notInstalled(): boolean {
    return this.cause.code === 'ENOENT';
  }

  /** What went wrong, in the program's words when it said any. */
  get detail(): string {
    return this.stderr || this.cause.message;
  }
}

/** Runs a program (bounded to 10 s); resolves with its stdout, rejects with a CommandError. */
export function runCommand(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`, stderr.trim(), err));
      else resolve(stdout);
    });
  });
}
