/** Characters COPY's text format gives a meaning of their own; each is sent backslash-escaped. */
const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One field of a row in COPY's text format. */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : value;
}

/**
 * Rows for `Queryable.copyIn` in PostgreSQL's COPY text format, from columns of
 * text (one array per column, `count` rows each): tab-separated, `\N` for NULL,
 * the four special characters escaped. Each field reaches its column's input
 * function as the very text given, so values keep the exactness of their text
 * (int8 and numeric digits, shortest round-trip doubles).
 */
export function copyText(columns: readonly (readonly (string | null)[])[], count: number): string {
  const lines = new Array<string>(count);
  for (let r = 0; r < count; r++) {
    let line = copyField(columns[0]![r]!);
    for (let c = 1; c < columns.length; c++) line += `\t${copyField(columns[c]![r]!)}`;
    lines[r] = line;
  }
  return count === 0 ? '' : `${lines.join('\n')}\n`;
}
