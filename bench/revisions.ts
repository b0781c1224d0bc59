// faithd6 as it was at other git revisions (`--rev REV`, repeatable), measured side by side
// with the current tree: each revision is checked out in a detached worktree of its own under
// one temp dir, with the repository's node_modules linked in, and compiled; the suite runs its
// bin/faithd6 as one more faithd6 row. run.ts resolves the revisions first (a wrong one stops
// the bench before anything is made), builds the trees before the namespace, and removes them
// again at the end, whatever the way out, as it deletes the namespace.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A revision to measure: what was asked for, the commit it names, and where it is built. */
export interface Revision {
  /** As given to `--rev`. */
  readonly requested: string;
  readonly full: string;
  /** `git rev-parse --short`: the row is `faithd6 @<short>`. */
  readonly short: string;
  /** The worktree, compiled (set once it is). */
  tree: string | null;
}

/** A `--rev` the bench cannot use: the caller exits with 64 (EX_USAGE) before making anything. */
export class RevisionUsageError extends Error {}

/** Each revision costs a row (ports 6702 + 10 × i, 7702 + 10 × i below 7001 and 8001). */
export const MAX_REVISIONS = 30;

/** `--rev REV` and `--rev=REV` taken out of `argv`; the rest goes to the suite unchanged. */
export function takeRevisionOptions(argv: readonly string[]): { revs: string[]; rest: string[] } {
  const revs: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--rev') {
      const value = argv[++i];
      if (value === undefined || value === '' || value.startsWith('--')) throw new RevisionUsageError('--rev needs a git revision, e.g. --rev HEAD~3');
      revs.push(value);
    } else if (arg.startsWith('--rev=')) {
      const value = arg.slice('--rev='.length);
      if (value === '') throw new RevisionUsageError('--rev needs a git revision, e.g. --rev=HEAD~3');
      revs.push(value);
    } else rest.push(arg);
  }
  return { revs, rest };
}

function git(root: string, args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, out: (r.stdout ?? '').trim(), err: (r.stderr || r.error?.message || '').trim() };
}

/**
 * Each of `revs` as a commit of the repository at `root` (`git rev-parse`; `^{commit}` so that a
 * tag names the commit it points to). Throws RevisionUsageError naming the first that is not
 * one. The same commit asked for twice is one row.
 */
export function resolveRevisions(root: string, revs: readonly string[]): Revision[] {
  const found = new Map<string, Revision>();
  for (const requested of revs) {
    // `--end-of-options`: a revision that looks like an option is not taken as one.
    const full = git(root, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${requested}^{commit}`]);
    const short = git(root, ['rev-parse', '--verify', '--quiet', '--short', '--end-of-options', `${requested}^{commit}`]);
    if (!full.ok || !short.ok || full.out === '' || short.out === '') {
      throw new RevisionUsageError(`--rev ${requested}: not a commit in ${root}${full.err ? ` (${full.err})` : ''}; try git log --oneline to find one`);
    }
    if (!found.has(full.out)) found.set(full.out, { requested, full: full.out, short: short.out, tree: null });
  }
  if (found.size > MAX_REVISIONS) throw new RevisionUsageError(`--rev: at most ${MAX_REVISIONS} revisions (a row each), not ${found.size}`);
  return [...found.values()];
}

/**
 * A step of a build, in a process group of its own: `signal` (aborted on SIGINT/SIGTERM) stops
 * the whole group, by its id, and the step ends once the group is gone. npx does not pass
 * SIGTERM on to tsc, which would go on writing into a tree that is being removed.
 */
function step(command: string, args: string[], cwd: string, signal: AbortSignal): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('interrupted'));
    const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (text: string): void => void (output = (output + text).slice(-8192)); // the end says why
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    const group = child.pid;
    const kill = (sig: NodeJS.Signals): boolean => {
      try {
        if (group !== undefined) process.kill(-group, sig);
        return true;
      } catch {
        return false; // no process left in it
      }
    };
    const onAbort = (): void => void kill('SIGTERM');
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      if (!signal.aborted) return resolve({ code, output: output.trim() });
      // Interrupted: the compile's process group is stopped before the run gives up.
      void (async () => {
        for (let i = 0; i < 50 && kill('SIGTERM'); i++) await sleep(100);
        kill('SIGKILL');
        reject(new Error('interrupted'));
      })();
    });
  });
}

/** The worktrees of one bench run, all under one temp dir. */
export class Worktrees {
  /** The temp dir they are in, once made. */
  private parent: string | null = null;
  private readonly made: string[] = [];
  private removed = false;

  constructor(private readonly root: string) {}

  /**
   * Checks out `rev` in a detached worktree (`git worktree add --detach`), links the repository's
   * node_modules into it and compiles it (`npx tsc -p tsconfig.build.json`, in the tree, and
   * its native addon where it has one: without it, a revision with the native data plane would
   * relay on the JavaScript one and be measured as such); sets `rev.tree`. Throws naming the revision when any of it fails: an old revision may lack what
   * the build needs.
   */
  async add(rev: Revision, signal: AbortSignal, say: (line: string) => void): Promise<void> {
    const what = `--rev ${rev.requested} (${rev.short})`;
    if (this.parent === null) {
      this.parent = mkdtempSync(join(os.tmpdir(), 'faithd6-bench-revs-'));
      // mkdtemp makes it 0700; faithd6 started as root runs its workers as another user
      // (`faithd6` or nobody), who must reach the tree to load dist/src/worker/process.js.
      chmodSync(this.parent, 0o755);
    }
    const tree = join(this.parent, rev.short);
    this.made.push(tree); // before the add: a half-made worktree is removed too
    say(`bench: ${what}: git worktree add --detach ${tree}`);
    const add = await step('git', ['-C', this.root, 'worktree', 'add', '--detach', tree, rev.full], this.root, signal);
    if (add.code !== 0) throw new Error(`${what}: git worktree add failed: ${add.output}`);
    symlinkSync(join(this.root, 'node_modules'), join(tree, 'node_modules'), 'dir');
    if (!existsSync(join(tree, 'tsconfig.build.json')))
      throw new Error(`${what}: the revision has no tsconfig.build.json, so the bench cannot build it (too old?)`);
    say(`bench: ${what}: npx tsc -p tsconfig.build.json`);
    const build = await step('npx', ['tsc', '-p', 'tsconfig.build.json'], tree, signal);
    if (build.code !== 0) {
      const tail = build.output.split('\n').slice(-10).join('\n  ');
      throw new Error(
        `${what}: npx tsc -p tsconfig.build.json failed in ${tree} (exit ${build.code}); it may need what that revision lacks, or node_modules differ:\n  ${tail}`,
      );
    }
    if (existsSync(join(tree, 'native', 'binding.gyp'))) {
      say(`bench: ${what}: npx node-gyp rebuild -C native`);
      const addon = await step('npx', ['node-gyp', 'rebuild', '-C', 'native'], tree, signal);
      if (addon.code !== 0)
        throw new Error(`${what}: its native addon did not build in ${tree} (exit ${addon.code}):\n  ${addon.output.split('\n').slice(-10).join('\n  ')}`);
    }
    if (!existsSync(join(tree, 'bin', 'faithd6'))) throw new Error(`${what}: the revision has no bin/faithd6, so the bench cannot run it (too old?)`);
    rev.tree = tree;
  }

  /**
   * Removes every worktree it made (`git worktree remove --force`, then `git worktree prune`)
   * and the temp dir, once; synchronous, so that it can run on 'exit' too. The node_modules
   * link goes first, by itself: nothing may follow it into the repository's own.
   */
  remove(say: (line: string) => void): void {
    if (this.removed || this.parent === null) return;
    this.removed = true;
    for (const tree of this.made) {
      const link = join(tree, 'node_modules');
      try {
        if (lstatSync(link).isSymbolicLink()) unlinkSync(link);
      } catch {
        // never linked
      }
      git(this.root, ['worktree', 'remove', '--force', tree]);
    }
    rmSync(this.parent, { recursive: true, force: true });
    git(this.root, ['worktree', 'prune']);
    const listed = git(this.root, ['worktree', 'list', '--porcelain']).out;
    const left = this.made.filter((tree) => listed.split('\n').includes(`worktree ${tree}`) || existsSync(tree));
    say(
      left.length > 0
        ? `bench: WARNING: could not remove worktree${left.length === 1 ? '' : 's'} ${left.join(', ')}`
        : `bench: worktree${this.made.length === 1 ? '' : 's'} removed (${this.made.join(', ')})`,
    );
  }
}
