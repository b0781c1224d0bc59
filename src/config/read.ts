import { constants, type Stats } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isUtf8 } from 'node:buffer';
import { ConfigError } from '../errors.js';

/**
 * The largest config file faithd6 reads: 20 times the annotated example, room for a thousand
 * rules. yaml parses only 0.3 to 1 MiB per second (worst with many small nodes, such as a
 * file of blank lines or of tags), so a larger bound would let a file that merely looks like
 * a config take seconds to refuse; at this size the worst measured 0.2 to 0.4 s (up to 1 s
 * on a busy 2-CPU machine).
 */
export const MAX_CONFIG_BYTES = 128 * 1024;

/** S_ISVTX, which fs.constants lacks: in such a directory only a file's owner may replace it. */
const STICKY = 0o1000;

/**
 * Reads a config file as UTF-8 text, refusing at once what faithd6 must not read: anything
 * but a regular file (a FIFO would block forever, /dev/zero never ends), a file over
 * MAX_CONFIG_BYTES, a file or a directory holding it that others may write, and bytes that
 * are not UTF-8. Every refusal is a ConfigError naming the file: "cannot use FILE: why", or
 * "FILE:line:col: why" for bytes.
 */
export async function readConfigFile(file: string): Promise<string> {
  // stat before open: opening a device can have side effects (a tape rewinds, a watchdog
  // starts), and opening a FIFO wakes a writer waiting on the other end.
  refuseUnlessRegular(file, await osCall(file, () => stat(file)));
  // O_NONBLOCK: if the path became a FIFO since the stat, open() returns instead of waiting
  // for a writer; O_NOCTTY: a terminal never becomes our controlling terminal. fstat then
  // checks the file we actually hold, not whatever the path names by now.
  const handle = await osCall(file, () => open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY));
  try {
    const stats = await osCall(file, () => handle.stat());
    refuseUnlessRegular(file, stats);
    refuseIfOthersMayWrite(file, stats);
    await refuseIfDirectoriesLetOthersReplace(file);
    if (stats.size > MAX_CONFIG_BYTES) throw tooLarge(file, stats.size);
    return decode(file, await readAtMost(file, handle, MAX_CONFIG_BYTES + 1));
  } finally {
    await handle.close();
  }
}

function refuseUnlessRegular(file: string, stats: Stats): void {
  if (!stats.isFile()) throw new ConfigError(`cannot use ${file}: not a regular file (${kindOf(stats)})`);
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  // stat() follows symlinks: a block device is all that is left.
  return 'a block device';
}

/**
 * The config decides where faithd6 relays: whoever can write it makes faithd6 theirs. Like
 * sshd's StrictModes, refuse a file writable by every user, or by a group other than root's
 * and our own (the group faithd6 runs as gains nothing it does not already have).
 */
function refuseIfOthersMayWrite(file: string, stats: Stats): void {
  const writer = otherWriter(stats);
  if (writer === undefined) return;
  const fix = writer === 'every user' ? `chmod o-w ${file}` : `chmod g-w ${file}, or chgrp root ${file}`;
  throw new ConfigError(
    `cannot use ${file}: it is writable by ${writer} (mode ${modeOf(stats)}), who could then decide ` + `where faithd6 relays; fix: ${fix}`,
  );
}

/**
 * A directory that others may write lets them replace the file in it (rename over it), unless
 * the sticky bit limits that to the file's owner (as on /tmp). Checks every directory from the
 * one holding the file itself (after symlinks) up to /, and the one holding the name given.
 */
async function refuseIfDirectoriesLetOthersReplace(file: string): Promise<void> {
  const real = await osCall(file, () => realpath(file));
  const directories = new Set([dirname(resolve(file))]);
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    directories.add(dir);
    if (dir === dirname(dir)) break;
  }
  for (const dir of directories) {
    const stats = await osCall(file, () => stat(dir));
    const writer = (stats.mode & STICKY) === 0 ? otherWriter(stats) : undefined;
    if (writer === undefined) continue;
    const which = dir === dirname(real) || dir === dirname(resolve(file)) ? 'its directory' : 'the directory above it';
    const fix = writer === 'every user' ? `chmod o-w ${dir}` : `chmod g-w ${dir}`;
    throw new ConfigError(
      `cannot use ${file}: ${which} ${dir} is writable by ${writer} (mode ${modeOf(stats)}, ` +
        `no sticky bit), who could replace the file; fix: ${fix}, or move the file`,
    );
  }
}

/** Who besides the owner may write this, or undefined if nobody else may. */
function otherWriter(stats: Stats): string | undefined {
  if ((stats.mode & constants.S_IWOTH) !== 0) return 'every user';
  if ((stats.mode & constants.S_IWGRP) === 0 || stats.gid === 0 || stats.gid === process.getegid?.()) {
    return undefined;
  }
  return `group ${stats.gid}`;
}

function modeOf(stats: Stats): string {
  return `0${(stats.mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** `size` is undefined when the file said it was small enough and then held more (a /proc file). */
function tooLarge(file: string, size: number | undefined): ConfigError {
  const shown =
    size === undefined
      ? 'it holds more than that'
      : size >= 1024 * 1024
        ? `it is ${(size / 1024 / 1024).toFixed(1)} MiB`
        : `it is ${(size / 1024).toFixed(1)} KiB`;
  return new ConfigError(`cannot use ${file}: a config file may be at most ${MAX_CONFIG_BYTES / 1024} KiB and ${shown}`);
}

/**
 * Reads up to `limit` bytes: a file that grows after the fstat, or a /proc-style file that
 * reports size 0, still cannot make us read more than that.
 */
async function readAtMost(file: string, handle: FileHandle, limit: number): Promise<Buffer> {
  const buffer = Buffer.alloc(limit);
  let length = 0;
  while (length < limit) {
    const { bytesRead } = await osCall(file, () => handle.read(buffer, length, limit - length, null));
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  if (length > MAX_CONFIG_BYTES) throw tooLarge(file, undefined);
  return buffer.subarray(0, length);
}

/** The bytes as text; invalid UTF-8 (a binary file, Latin-1) is named at its line and column. */
function decode(file: string, bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  const offset = firstInvalidUtf8(bytes);
  const lineStart = bytes.lastIndexOf(0x0a, offset - 1) + 1;
  const line = countNewlines(bytes, lineStart) + 1;
  const col = bytes.subarray(lineStart, offset).toString('utf8').length + 1;
  const byte = (bytes[offset] as number).toString(16).padStart(2, '0');
  throw new ConfigError(`${file}:${line}:${col}: not UTF-8 text (byte 0x${byte}); is this a binary file? faithd6 reads config files as UTF-8`);
}

function countNewlines(bytes: Buffer, end: number): number {
  let count = 0;
  for (let i = bytes.indexOf(0x0a); i >= 0 && i < end; i = bytes.indexOf(0x0a, i + 1)) count++;
  return count;
}

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  let i = 0;
  for (let length = sequenceLength(bytes, 0); length > 0; length = sequenceLength(bytes, i)) i += length;
  return i;
}

/**
 * The length of the valid UTF-8 sequence at `i` (RFC 3629: no overlongs, no surrogates), or 0
 * (also at the end).
 */
function sequenceLength(bytes: Buffer, i: number): number {
  const b0 = bytes[i];
  if (b0 === undefined) return 0;
  if (b0 < 0x80) return 1;
  let length: number;
  let min: number;
  let max = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    min = b0 === 0xe0 ? 0xa0 : 0x80;
    if (b0 === 0xed) max = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    min = b0 === 0xf0 ? 0x90 : 0x80;
    if (b0 === 0xf4) max = 0x8f;
  } else {
    return 0;
  }
  const b1 = bytes[i + 1];
  if (b1 === undefined || b1 < min || b1 > max) return 0;
  for (let k = 2; k < length; k++) {
    const b = bytes[i + k];
    if (b === undefined || b < 0x80 || b > 0xbf) return 0;
  }
  return length;
}

/** Runs a file system call; its error becomes "cannot read FILE: reason". */
async function osCall<T>(file: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${osReason(err)}`, { cause: err });
  }
}

/**
 * "no such file or directory" from Node's "ENOENT: no such file or directory, open '/x'":
 * the file is named by the caller.
 */
function osReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /^[A-Z0-9_]+: (.*?), \w+( '.*')?$/.exec(message)?.[1] ?? message;
}
