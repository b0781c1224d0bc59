/** A duration's longest value: Node's timers fire at once (with a warning) beyond 2^31-1 ms. */
export const MAX_DURATION = '24d';

/** Milliseconds per unit, largest first: the order units must appear in within one duration. */
const UNITS: readonly (readonly [string, number])[] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

const UNIT_MS = new Map(UNITS);
const UNIT_RANK = new Map(UNITS.map(([unit], index) => [unit, index]));

// `ms` must come before `m` and `s` in the alternation, or `500ms` would read as 500m + "s".
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)/y;

/**
 * Parses a duration written with units (`500ms`, `10s`, `5m`, `1h`, `2h4m`, `1d`) into
 * milliseconds. `0` needs no unit. Throws an Error that says what is wrong.
 */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    // A bare number is ambiguous (seconds? milliseconds?), except zero, which is zero in any unit.
    if (text === 0) return 0;
    throw new Error(`${String(text)} has no unit; write a unit, e.g. 10s`);
  }
  const source = text.trim();
  if (source === '') throw new Error('a duration cannot be empty; write e.g. 10s');
  if (source.startsWith('-')) throw new Error(`"${text}" is negative; a duration cannot be negative`);
  if (/^\d+(\.\d+)?$/.test(source)) {
    if (Number(source) === 0) return 0;
    throw new Error(`"${text}" has no unit; write a unit, e.g. 10s`);
  }
  let total = 0;
  let lastRank = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < source.length) {
    const start = PART.lastIndex;
    const match = PART.exec(source);
    if (match === null) {
      throw new Error(`"${text}" is not a duration at "${source.slice(start)}" (expected numbers with units ms, s, m, h or d, e.g. 1h30m)`);
    }
    const [, amount, unit] = match as unknown as [string, string, string];
    const rank = UNIT_RANK.get(unit) as number;
    if (rank <= lastRank) {
      throw new Error(`"${text}" repeats a unit or puts a smaller one first; write e.g. 1h30m, not 30m1h`);
    }
    lastRank = rank;
    total += Number(amount) * (UNIT_MS.get(unit) as number);
  }
  // Fractions such as 1.5s are fine; fractions of a millisecond are not (timers count whole ms).
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6) {
    throw new Error(`"${text}" is not a whole number of milliseconds`);
  }
  if (!Number.isSafeInteger(rounded)) throw new Error(`"${text}" is too long`);
  return rounded;
}

/** The shortest text parseDuration reads back as the same value: `2h4m`, `30s`, `500ms`, `0s`. */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new RangeError(`cannot format ${String(ms)} as a duration (expected whole milliseconds >= 0)`);
  }
  if (ms === 0) return '0s';
  let rest = ms;
  let text = '';
  for (const [unit, size] of UNITS) {
    const count = Math.floor(rest / size);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return text;
}
