// Child processes of the bench (each stopped by its own pid, never by name) and what /proc
// says about a process tree: its resident memory and its CPU time.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';

/** A JSON line a child printed, or `{ raw }` for one that is not JSON. */
export type Message = Record<string, unknown>;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<Child>();
// Whatever path the orchestrator leaves by, nothing it started outlives it.
process.on('exit', () => {
  for (const child of live) child.signal('SIGKILL');
});

/** The children that have not exited yet (a fresh relay, a load generator caught by a signal). */
export function liveChildren(): Child[] {
  return [...live];
}

/** What a child printed on stdout: how many lines, and the first ones. */
export interface Printed {
  readonly count: number;
  readonly first: readonly Message[];
}

function parseLine(line: string): Message {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Message) : { raw: line };
  } catch {
    return { raw: line };
  }
}

/**
 * A process we started: its stdout as JSON lines, read in order with `next()`, or, with
 * `stdoutFile`, written to that file (a relay's log: read by nobody while it runs, as journald
 * reads it in its own process, not in the bench's).
 */
export class Child {
  readonly pid: number;
  readonly lines: Message[] = [];
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;
  stderr = '';
  private read = 0;
  private printedFile: Printed | undefined;
  private wake: (() => void) | null = null;
  private readonly child: ChildProcess;

  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    env: Readonly<Record<string, string>> = {},
    private readonly stdoutFile?: string,
  ) {
    const out = stdoutFile === undefined ? 'pipe' : openSync(stdoutFile, 'a');
    try {
      this.child = spawn(command, args, { stdio: ['pipe', out, 'pipe'], env: { ...process.env, ...env } });
    } finally {
      if (typeof out === 'number') closeSync(out);
    }
    if (this.child.pid === undefined) throw new Error(`${label}: cannot start ${command}`);
    this.pid = this.child.pid;
    live.add(this);
    let partial = '';
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (text: string) => {
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl).trim();
        partial = partial.slice(nl + 1);
        if (line !== '') this.lines.push(parseLine(line));
      }
      this.wake?.();
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => {
      if (this.stderr.length < 16 * 1024) this.stderr += text; // bounded: a chatty child
    });
    this.child.stdin!.on('error', () => {}); // it may exit before reading
    this.child.on('error', () => {}); // reported through the exit below
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        this.wake?.();
        resolve(this.exit);
      });
    });
  }

  /** The next line it prints; rejects if it exits first or `timeout` ms pass. */
  next(timeout: number, what: string): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.label}: no ${what} within ${timeout} ms${this.tail()}`)), timeout);
      const finish = (err: Error | null, line?: Message): void => {
        clearTimeout(timer);
        this.wake = null;
        if (err) reject(err);
        else resolve(line!);
      };
      const check = (): void => {
        const line = this.lines[this.read];
        if (line !== undefined) {
          this.read++;
          finish(null, line);
        } else if (this.exit) finish(new Error(`${this.label} exited (${JSON.stringify(this.exit)}) before ${what}${this.tail()}`));
      };
      this.wake = check;
      check();
    });
  }

  /** What it printed on stdout so far: the lines read, or those in its `stdoutFile` (read once it exited). */
  printed(): Printed {
    if (this.stdoutFile === undefined) return { count: this.lines.length, first: this.lines.slice(0, 20) };
    if (this.printedFile !== undefined) return this.printedFile;
    // Made when it was spawned: a file gone is the bench's own mistake, and fails it.
    const lines = readFileSync(this.stdoutFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    const printed = { count: lines.length, first: lines.slice(0, 20).map(parseLine) };
    if (this.exit) this.printedFile = printed;
    return printed;
  }

  private tail(): string {
    return this.stderr ? `; stderr: ${this.stderr.slice(-1000).trim()}` : '';
  }

  /** Write a line to its stdin. */
  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Send a signal to this process, by its pid. */
  signal(sig: NodeJS.Signals): void {
    if (this.exit) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `grace` ms. */
  async stop(grace = 5000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), grace)));
    const exit = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (exit) return exit;
    this.signal('SIGKILL');
    return this.exited;
  }
}

/** Fields 3… of /proc/PID/stat (after the command name, which may hold spaces), or null. */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null; // exited meanwhile
  }
}

/** `root` and all its descendants (faithd6's supervisor and workers; socat and its forks). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    tree.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return tree;
}

export interface Memory {
  /** Summed VmRSS (pages shared between processes count once per process). */
  rssKiB: number;
  /** Summed Pss (shared pages split between their sharers): fairer for forking relays. */
  pssKiB: number;
  processes: number;
}

function kiB(text: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** Resident memory of a process tree, from /proc/PID/status and smaps_rollup. */
export function treeMemory(root: number): Memory {
  const memory: Memory = { rssKiB: 0, pssKiB: 0, processes: 0 };
  for (const pid of processTree(root)) {
    try {
      memory.rssKiB += kiB(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      memory.pssKiB += kiB(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      memory.processes++;
    } catch {
      // exited meanwhile
    }
  }
  return memory;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds (user + system, reaped children included) of a process tree so far. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const f = statFields(pid);
    // utime, stime, cutime, cstime: fields 14–17, i.e. 11–14 counted from field 3
    if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks / CLOCK_TICKS;
}
