import t from 'tap';
import { formatDuration, parseDuration } from '../../src/config/duration.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

t.test('parses every unit and combinations of them', async (t) => {
  const cases: [string, number][] = [
    ['500ms', 500],
    ['10s', 10 * SECOND],
    ['5m', 5 * MINUTE],
    ['1h', HOUR],
    ['1d', DAY],
    ['2h4m', 2 * HOUR + 4 * MINUTE],
    ['1h30m10s', HOUR + 30 * MINUTE + 10 * SECOND],
    ['1d2h3m4s5ms', DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5],
    ['1.5s', 1500],
    ['.5s', 500],
    ['0.1h', 6 * MINUTE],
    ['0s', 0],
    ['0', 0],
    [' 10s ', 10 * SECOND],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, text);
  t.equal(parseDuration(0), 0, 'the number 0 needs no unit');
});

t.test('rejects what is not a duration, saying why', async (t) => {
  const cases: [string | number, RegExp][] = [
    [10, /^10 has no unit; write a unit, e.g\. 10s$/],
    [1.5, /has no unit/],
    ['10', /^"10" has no unit; write a unit, e.g\. 10s$/],
    ['-5s', /negative/],
    ['', /cannot be empty/],
    ['   ', /cannot be empty/],
    ['10x', /"10x" is not a duration at "10x"/],
    ['1h 30m', /is not a duration at " 30m"/],
    ['s', /is not a duration/],
    ['1h1h', /repeats a unit or puts a smaller one first/],
    ['30m1h', /repeats a unit or puts a smaller one first/],
    ['10ms5s', /repeats a unit or puts a smaller one first/],
    ['0.5ms', /not a whole number of milliseconds/],
    ['9999999999999999999d', /too long/],
  ];
  for (const [text, reason] of cases) {
    t.throws(() => parseDuration(text), reason, JSON.stringify(text));
  }
});

t.test('formats with the largest units first and reads back', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'],
    [500, '500ms'],
    [30 * SECOND, '30s'],
    [4 * MINUTE, '4m'],
    [2 * HOUR + 4 * MINUTE, '2h4m'],
    [DAY, '1d'],
    [DAY + HOUR + MINUTE + SECOND + 1, '1d1h1m1s1ms'],
    [1500, '1s500ms'],
  ];
  for (const [ms, text] of cases) {
    t.equal(formatDuration(ms), text, String(ms));
    t.equal(parseDuration(text), ms, `${text} reads back`);
  }
});

t.test('formatDuration refuses what is not whole non-negative milliseconds', async (t) => {
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => formatDuration(bad), RangeError, String(bad));
  }
});
