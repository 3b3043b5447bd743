import { fromBase64, sameBytes, toBase64 } from './base64.js';
import { SynclineError } from './errors.js';

/**
 * A SQLite value in memory. The storage class is carried by the JS type so it is
 * never guessed: INTEGER is always a bigint (all 64 bits exact), REAL always a
 * number, TEXT a string, BLOB a Uint8Array.
 */
export type SqlValue = null | bigint | number | string | Uint8Array;

/**
 * A value on the wire (JSON). Plain JSON is used wherever it is exact; the tagged
 * objects cover what plain JSON would blur:
 *
 * | SQLite value                         | wire form                    |
 * |--------------------------------------|------------------------------|
 * | NULL                                 | `null`                       |
 * | INTEGER with abs value <= 2^53-1     | JSON number without fraction (larger plain numbers are refused) |
 * | INTEGER beyond that                  | `{"$int": "-9223372036854775808"}` |
 * | REAL that is not integral            | JSON number (shortest round-trip form) |
 * | REAL that is integral, or -0.0       | `{"$real": "2"}`, `{"$real": "-0"}` |
 * | TEXT                                 | JSON string                  |
 * | BLOB                                 | `{"$blob": "<base64>"}`      |
 *
 * NaN and infinities have no faithful PostgreSQL mirror; they travel as
 * `{"$real": "Infinity"}` so the cloud can reject them with
 * `invalid_number_encoding` instead of silently storing something else.
 */
export type WireValue = null | number | string | { $int: string } | { $real: string } | { $blob: string };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = -SAFE_MAX;

export function encodeValue(value: SqlValue): WireValue {
  if (value === null) return null;
  switch (typeof value) {
    case 'bigint':
      return value >= SAFE_MIN && value <= SAFE_MAX ? Number(value) : { $int: value.toString() };
    case 'number':
      if (Number.isInteger(value) || Object.is(value, -0) || !Number.isFinite(value)) return { $real: String(Object.is(value, -0) ? '-0' : value) };
      return value;
    case 'string':
      return value;
    default:
      return { $blob: toBase64(value) };
  }
}

const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;
const REAL_TEXT = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

function invalid(message: string, field?: string): SynclineError {
  return new SynclineError('invalid_value_encoding', message, field ? { field } : {});
}

/** Decodes one wire value; `field` names it in the error (for example `rows[3].row[1]`). */
export function decodeValue(wire: unknown, field?: string): SqlValue {
  if (wire === null) return null;
  if (typeof wire === 'string') return wire;
  if (typeof wire === 'number') {
    if (!Number.isFinite(wire)) throw new SynclineError('invalid_number_encoding', 'non-finite number', field ? { field } : {});
    if (!Number.isInteger(wire)) return wire;
    // Past 2^53 a JSON number no longer names one integer (1e20, 9223372036854775807 parse to the nearest double).
    if (!Number.isSafeInteger(wire)) {
      throw new SynclineError('invalid_number_encoding', `${field ?? 'a value'}: the plain JSON number ${wire} is outside ±(2^53-1); send integers that large as {"$int": "<decimal>"}`, field ? { field } : {});
    }
    return BigInt(wire);
  }
  if (typeof wire !== 'object' || Array.isArray(wire)) throw invalid(`unsupported value of type ${Array.isArray(wire) ? 'array' : typeof wire}`, field);
  const keys = Object.keys(wire);
  if (keys.length !== 1) throw invalid('a tagged value has exactly one key', field);
  const tagged = wire as Record<string, unknown>;
  const text = tagged[keys[0]!];
  if (typeof text !== 'string') throw invalid(`${keys[0]} must carry a string`, field);
  switch (keys[0]) {
    case '$int': {
      if (!INTEGER_TEXT.test(text)) throw invalid(`$int is not a decimal integer: ${text.slice(0, 40)}`, field);
      const n = BigInt(text);
      if (n < INT64_MIN || n > INT64_MAX) throw invalid('$int is outside the 64-bit range', field);
      return n;
    }
    case '$real': {
      if (text === 'Infinity' || text === '-Infinity' || text === 'NaN') {
        throw new SynclineError('invalid_number_encoding', `REAL value ${text} cannot be mirrored`, field ? { field } : {});
      }
      if (!REAL_TEXT.test(text)) throw invalid(`$real is not a decimal number: ${text.slice(0, 40)}`, field);
      const n = Number(text);
      if (!Number.isFinite(n)) throw new SynclineError('invalid_number_encoding', 'REAL value overflows a double', field ? { field } : {});
      return n;
    }
    case '$blob':
      if (!BASE64_TEXT.test(text) || text.length % 4 !== 0) throw invalid('$blob is not base64', field);
      return fromBase64(text);
    default:
      throw invalid(`unknown value tag ${keys[0]!.slice(0, 20)}`, field);
  }
}

/** Two values are equal when storage class and content are equal (-0.0 differs from 0.0). */
export function sameValue(a: SqlValue, b: SqlValue): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && sameBytes(a, b);
  }
  return Object.is(a, b);
}

/** The SQLite storage class of a value, as `typeof()` would name it. */
export function storageClass(value: SqlValue): 'null' | 'integer' | 'real' | 'text' | 'blob' {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'bigint':
      return 'integer';
    case 'number':
      return 'real';
    case 'string':
      return 'text';
    default:
      return 'blob';
  }
}
