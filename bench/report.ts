// Medians, spreads and the table: rows are systems, columns are figures, each cell the
// median over the rounds, its min–max, and (for throughput and connection rate) its ratio to
// direct's median.

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median, min and max of the finite values, or null when there are none. */
export function spread(values: readonly (number | null | undefined)[]): Spread | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

export interface Column {
  readonly key: string;
  readonly title: string;
  readonly digits: number;
  /** Whether the cell shows the ratio to direct's median. */
  readonly ratio: boolean;
}

export interface Row {
  readonly name: string;
  /** Shown across the whole row instead of figures ("not installed", "failed: …"). */
  readonly unavailable: string | null;
  readonly figures: Readonly<Record<string, Spread | null>>;
}

function num(x: number, digits: number): string {
  return x.toFixed(digits);
}

function cell(s: Spread | null | undefined, column: Column, direct: Spread | null | undefined): string {
  if (!s) return '—';
  let text = `${num(s.median, column.digits)} (${num(s.min, column.digits)}–${num(s.max, column.digits)})`;
  if (column.ratio && direct && direct.median > 0) text += `  ${(s.median / direct.median).toFixed(2)}×`;
  return text;
}

/** The table as text lines. */
export function table(columns: readonly Column[], rows: readonly Row[]): string[] {
  const directRow = rows.find((r) => r.name === 'direct');
  const cells = rows.map((row) =>
    row.unavailable !== null ? [row.name, row.unavailable] : [row.name, ...columns.map((c) => cell(row.figures[c.key], c, directRow?.figures[c.key]))],
  );
  const header = ['system', ...columns.map((c) => c.title)];
  // Rows of an unavailable system (two cells) do not widen the figure columns.
  const full = cells.filter((r) => r.length === header.length);
  const widths = header.map((h, i) => Math.max(h.length, ...(i === 0 ? cells : full).map((r) => r[i]!.length)));
  const line = (parts: string[]): string =>
    parts
      .map((p, i) => (i === parts.length - 1 ? p : p.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w)))];
  for (const r of cells) out.push(line(r));
  return out;
}
