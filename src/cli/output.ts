/** Renders rows as an aligned text table for people; scripts use --json instead. */
export function formatTable(rows: readonly object[], columns?: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const headers = columns ?? Object.keys(rows[0]!);
  const cells = rows.map((row) => headers.map((h) => cellText((row as Record<string, unknown>)[h])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function printResult(value: unknown, json: boolean, table: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : table()}\n`);
}
