import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';

/**
 * Decodes comma-joined SQL literals as SQLite's quote() writes them: `NULL`, `123`,
 * `-1.5e-07`, `9.0e+999` (infinity), `'it''s'`, `X'00FF'`. quote() tags every value
 * with its storage class, so the decoded value keeps it: INTEGER -> bigint,
 * REAL -> number, TEXT -> string, BLOB -> Uint8Array. Two-way sync keeps keys and
 * base rows in this form, and layout-1 journals held every value in it.
 *
 * It runs once per value on those paths, so it is a hand-written scanner over char
 * codes; text is copied with slice() between quote pairs.
 */

const COMMA = 44;
const QUOTE = 39;
const MINUS = 45;
const PLUS = 43;
const DOT = 46;
const ZERO = 48;
const NINE = 57;
const LOWER_E = 101;
const UPPER_E = 69;
const UPPER_X = 88;
const LOWER_X = 120;
const UPPER_N = 78;

/** Integers with at most this many digits are exact as doubles, so they skip BigInt(string). */
const FAST_INT_DIGITS = 15;

function corrupt(text: string, at: number, why: string): SynclineError {
  return new SynclineError('journal_corrupt', `malformed SQL literal list at offset ${at}: ${why}`, {
    field: 'journal',
    excerpt: text.slice(Math.max(0, at - 20), at + 20),
  });
}

export function parseLiteralList(text: string): SqlValue[] {
  const values: SqlValue[] = [];
  const n = text.length;
  if (n === 0) return values;
  let i = 0;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = readText(text, i, values);
    } else if (c === UPPER_X || c === LOWER_X) {
      i = readBlob(text, i, values);
    } else if (c === UPPER_N) {
      if (text.startsWith('NULL', i)) {
        values.push(null);
        i += 4;
      } else {
        throw corrupt(text, i, 'expected NULL');
      }
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      i = readNumber(text, i, values);
    } else {
      throw corrupt(text, i, 'expected a literal');
    }
    if (i === n) return values;
    if (text.charCodeAt(i) !== COMMA) throw corrupt(text, i, 'expected a comma');
    i += 1;
    if (i === n) throw corrupt(text, i, 'trailing comma');
  }
}

function readText(text: string, start: number, out: SqlValue[]): number {
  let from = start + 1;
  let result = '';
  for (;;) {
    const close = text.indexOf("'", from);
    if (close < 0) throw corrupt(text, start, 'unterminated text');
    if (text.charCodeAt(close + 1) === QUOTE) {
      result += text.slice(from, close + 1);
      from = close + 2;
      continue;
    }
    out.push(result + text.slice(from, close));
    return close + 1;
  }
}

function readBlob(text: string, start: number, out: SqlValue[]): number {
  if (text.charCodeAt(start + 1) !== QUOTE) throw corrupt(text, start, 'expected X\'');
  const close = text.indexOf("'", start + 2);
  if (close < 0) throw corrupt(text, start, 'unterminated blob');
  const hex = text.slice(start + 2, close);
  if (hex.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(hex)) throw corrupt(text, start, 'blob is not hex');
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  out.push(bytes);
  return close + 1;
}

function readNumber(text: string, start: number, out: SqlValue[]): number {
  let i = start;
  const n = text.length;
  let real = false;
  let digits = 0;
  let fast = 0;
  if (text.charCodeAt(i) === MINUS) i += 1;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      digits += 1;
      fast = fast * 10 + (c - ZERO);
    } else if (c === DOT || c === LOWER_E || c === UPPER_E || c === PLUS || (c === MINUS && real)) {
      real = true;
    } else {
      break;
    }
  }
  if (digits === 0) throw corrupt(text, start, 'number without digits');
  const token = text.slice(start, i);
  if (real) {
    // quote() prints 17 significant digits, which round-trips every double; 9.0e+999
    // (its rendering of infinity) overflows to Infinity here, as intended.
    const value = Number(token);
    if (Number.isNaN(value)) throw corrupt(text, start, `bad real ${token}`);
    out.push(value);
  } else if (digits <= FAST_INT_DIGITS) {
    out.push(BigInt(text.charCodeAt(start) === MINUS ? -fast : fast));
  } else {
    out.push(BigInt(token));
  }
  return i;
}

/**
 * The inverse of parseLiteralList, rendering INTEGER, TEXT, BLOB and NULL exactly
 * as SQLite's quote() does (uppercase hex, '' doubling), so a key rendered here
 * equals the key text a trigger wrote. A REAL is rendered so it parses back to the
 * same double; quote() may spell it differently, which is why REAL keys are not allowed.
 */
export function renderLiteralList(values: readonly SqlValue[]): string {
  return values.map(renderLiteral).join(',');
}

function renderLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'number': {
      if (Object.is(value, -0)) return '-0.0';
      const text = String(value);
      return /[.eE]/.test(text) ? text : `${text}.0`;
    }
    case 'string':
      return `'${value.replaceAll("'", "''")}'`;
    default:
      // Plain Uint8Array work: this module runs in browsers too (no Buffer).
      return `X'${Array.from(value, (byte) => byte.toString(16).padStart(2, '0')).join('').toUpperCase()}'`;
  }
}
