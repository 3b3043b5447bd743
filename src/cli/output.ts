/**
 * What the CLI prints for people. Values come from devices and operators, so
 * control characters (a terminal escape, a newline inside a cell) are shown
 * escaped, never sent to the terminal; tables fit the terminal's width, long
 * cells cut with "…". Scripts use --json, which is never cut.
 */

// C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => NAMED[c] ?? (c.charCodeAt(0) <= 0xff ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Width to fit: the terminal's, else COLUMNS, else 160 (a wide terminal; pipes that want everything use --json). */
export function outputWidth(): number {
  if (process.stdout.isTTY && process.stdout.columns) return process.stdout.columns;
  const columns = Number(process.env.COLUMNS);
  return Number.isInteger(columns) && columns >= 40 ? columns : 160;
}

const MIN_CELL = 6;
/** A UUID: id columns up to this wide are shown whole. */
const ID_WIDTH = 36;
const length = (text: string) => [...text].length;

function cut(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(1, width - 1)).join('')}…`;
}

/**
 * The widest a cell may be so the row fits `width`; columns narrower than that
 * keep their width, and id columns (copied into the next command) are never cut.
 */
function cellCap(widths: readonly number[], width: number, whole: readonly boolean[]): number {
  const gaps = 2 * (widths.length - 1);
  const fits = (cap: number) => widths.reduce((sum, w, i) => sum + (whole[i] ? w : Math.min(w, cap)), gaps) <= width;
  let cap = Math.max(...widths);
  if (fits(cap)) return cap;
  let low = MIN_CELL;
  while (low < cap) {
    const mid = Math.ceil((low + cap) / 2);
    if (fits(mid)) low = mid;
    else cap = mid - 1;
  }
  return Math.max(MIN_CELL, low);
}

/** Renders rows as an aligned text table for people; scripts use --json instead. */
export function formatTable(rows: readonly object[], columns?: readonly string[], width = outputWidth()): string {
  if (rows.length === 0) return '(none)';
  const headers = columns ?? Object.keys(rows[0]!);
  const raw = rows.map((row) => headers.map((h) => cellText((row as Record<string, unknown>)[h])));
  const whole = headers.map((h, i) => (h === 'id' || h.endsWith('_id')) && raw.every((r) => length(r[i]!) <= ID_WIDTH));
  const cap = cellCap(headers.map((h, i) => Math.max(length(h), ...raw.map((r) => length(r[i]!)))), width, whole);
  const cells = raw.map((r) => r.map((c, i) => (whole[i] ? c : cut(c, cap))));
  const heads = headers.map((h, i) => (whole[i] ? h : cut(h, cap)));
  const widths = heads.map((h, i) => Math.max(length(h), ...cells.map((r) => length(r[i]!))));
  const line = (values: readonly string[]) => values.map((v, i) => v + ' '.repeat(widths[i]! - length(v))).join('  ').trimEnd();
  return [line(heads), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/**
 * A value in its wire form (src/protocol/values.ts) as a person reads it: a large
 * integer as its digits, an integral REAL with its ".0" (so 3.0 is not taken for
 * the integer 3), a BLOB as a SQL hex literal. --json keeps the wire form.
 */
function wireText(value: object): string | undefined {
  const keys = Object.keys(value);
  const text = (value as Record<string, unknown>)[keys[0]!];
  if (keys.length !== 1 || typeof text !== 'string') return undefined;
  if (keys[0] === '$int') return text;
  if (keys[0] === '$real') return /^-?\d+$/.test(text) ? `${text}.0` : text;
  if (keys[0] === '$blob') return `x'${Buffer.from(text, 'base64').toString('hex')}'`;
  return undefined;
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return printable(wireText(value) ?? JSON.stringify(value));
  return printable(String(value));
}

/** A field/value table of one object (lineage, replay). */
export function formatRecord(record: Record<string, unknown>): string {
  return formatTable(Object.entries(record).map(([field, value]) => ({ field, value })));
}

/**
 * The one shape rule of --json: a command about one thing prints that object;
 * a list prints `{ items, next }` (`next` is the cursor of the following page, or null).
 */
export function listJson(items: readonly unknown[], next: string | null = null): { items: readonly unknown[]; next: string | null } {
  return { items, next };
}

export function printResult(value: unknown, json: boolean, table: () => string): void {
  if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else say(table());
}

/** Free text for people (messages quoting ids, names or values that came from elsewhere). */
export function say(text: string): void {
  process.stdout.write(`${text.split('\n').map(printable).join('\n')}\n`);
}
