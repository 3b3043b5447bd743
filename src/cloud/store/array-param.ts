/** A JSON escape PostgreSQL's array input does not read the same way (control characters, lone surrogates); `\"` and `\\` it does. */
const JSON_ONLY_ESCAPE = /\\[bfnrtu]/;

/**
 * A one-dimensional array parameter (`$1::uuid[]`, `unnest($2::text[], ...)`)
 * as PostgreSQL's array literal, `{"a","b",null}`, when JSON.stringify writes
 * exactly that between its brackets: strings quoted with `"` and `\` escaped as
 * PostgreSQL reads them, integers bare, null read as NULL. node-pg builds the
 * literal element by element in JS (a type check, two regex replaces and a
 * concatenation each), which for a group's set-based statements was ~5% of the
 * server's time at fan-in and the largest share of the bytes it allocated; JSON
 * is native. Arrays holding a string JSON escapes differently (a control
 * character) are passed as they are, for node-pg (or PGlite) to convert.
 * Numbers must be integers (as bigint/integer columns take them).
 */
export function arrayParam(values: readonly (string | number | null)[]): string | readonly (string | number | null)[] {
  const json = JSON.stringify(values);
  return JSON_ONLY_ESCAPE.test(json) ? values : `{${json.slice(1, -1)}}`;
}
