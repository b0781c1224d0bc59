/** What every check returns, and the small helpers the checks share. */
import { runCommand, type CommandError } from '../system/proc.js';

/** The outcome of one check: a ✓ or ✗ line, what was found, and for a ✗ what to do. */
export interface Check {
  readonly ok: boolean;
  /** What was checked, in a few words: `port 5999`, `local route 2001:db8:5999::/96`. */
  readonly title: string;
  /** What was found (may span lines). */
  readonly detail: string;
  /** What to do about a failure. */
  readonly fix?: string;
  /** Remarks that are not failures, such as the config file's warnings. */
  readonly notes?: readonly string[];
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Runs a program for a check; rejects with what to tell the operator. */
export async function run(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return await runCommand(cmd, args);
  } catch (err) {
    const e = err as CommandError;
    throw new Error(e.notInstalled ? `${cmd} is not installed` : e.detail, { cause: e });
  }
}
