// Prints one plain line, "N passed, N failed[, N skipped]", counted from the TAP output tap
// saved for each test file (.tap/test-results): every assertion once, not the lines that close
// a subtest (flat mode still reports those, marked closingTestPoint).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

const root = '.tap/test-results';
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.name.endsWith('.tap')) files.push(path);
  }
};
try {
  walk(root);
} catch {
  // no results at all: the build or the type check failed before tap ran
}

let pass = 0;
let fail = 0;
let skip = 0;
for (const file of files) {
  let asserts = 0;
  for (const [event, result] of Parser.parse(readFileSync(file, 'utf8'), { flat: true })) {
    if (event === 'assert' && !result.closingTestPoint) {
      asserts += 1;
      if (result.skip || result.todo) skip += 1;
      else if (result.ok) pass += 1;
      else fail += 1;
    } else if (event === 'bailout') {
      fail += 1;
    }
  }
  // a file that crashed before any assertion still counts as a failure
  if (asserts === 0) fail += 1;
}
// The slowest files, on stderr (the CI log), where the suite's time goes: tap ends each file's
// output with its wall time, "# time=1234.5ms".
const times = files
  .map((file) => [file.slice(root.length + 1).replace(/\.tap$/, ''), Number(/# time=([\d.]+)ms\s*$/.exec(readFileSync(file, 'utf8'))?.[1] ?? 0) / 1000])
  .sort((a, b) => b[1] - a[1]);
if (times.length > 0) {
  const total = times.reduce((sum, [, s]) => sum + s, 0);
  console.error(
    `test files: ${times.length}, ${total.toFixed(0)} s in all; slowest: ${times
      .slice(0, 12)
      .map(([f, s]) => `${f} ${s.toFixed(0)} s`)
      .join(', ')}`,
  );
}
if (files.length === 0) fail = Number(process.argv[2] ?? 1) === 0 ? 0 : 1;
console.log(`${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ''}`);
