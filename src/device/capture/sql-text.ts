/**
 * Quoting for SQL that Syncline generates from names found in the app's schema.
 * Every identifier is double-quoted with "" doubling and every name used as a
 * value is single-quoted with '' doubling, so no table or column name, however
 * hostile, can end a literal early and inject SQL.
 */

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteText(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Joins expressions with `||` as a balanced tree. A flat chain is as deep as it
 * is long and SQLite refuses expressions deeper than 1000 levels, which a table
 * with a few hundred columns would reach; a balanced tree stays ~2*log2(n) deep.
 */
export function concatBalanced(parts: readonly string[]): string {
  if (parts.length === 0) return "''";
  if (parts.length === 1) return parts[0]!;
  const mid = parts.length >> 1;
  const left = parts.slice(0, mid);
  const right = parts.slice(mid);
  return `(${concatBalanced(left)})||','||(${concatBalanced(right)})`;
}

/** `quote(p."a")||','||quote(p."b")...`: a key or row as one exact, comparable text (two-way sync's dirty keys and base rows). */
export function quotedList(prefix: string, columns: readonly string[]): string {
  return concatBalanced(columns.map((c) => `quote(${prefix}${quoteIdent(c)})`));
}
