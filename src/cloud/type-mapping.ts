import type { ColumnInfo } from '../protocol/schema.js';
import { SynclineError } from '../protocol/errors.js';
import { decodeValue, encodeValue, type SqlValue, type WireValue } from '../protocol/values.js';
import { isWellFormed } from './identifiers.js';

/**
 * How SQLite values live in PostgreSQL mirror columns, exactly.
 *
 * Every value travels to and from PostgreSQL as text (array parameters in, `::text`
 * out) so no driver ever turns a 64-bit integer or a double into something else.
 * SQLite lets any column hold any storage class; a value the column's PostgreSQL
 * type cannot hold exactly is written as NULL there and kept, in its stored-JSON
 * form, in the row's `_syncline_overflow` object instead.
 */
export type PgType = 'bigint' | 'double precision' | 'text' | 'numeric' | 'bytea' | 'jsonb';

export const PG_TYPES: readonly PgType[] = ['bigint', 'double precision', 'text', 'numeric', 'bytea', 'jsonb'];

export function isPgType(value: string): value is PgType {
  return (PG_TYPES as readonly string[]).includes(value);
}

/** The mirror column type for a source column, from its affinity. */
export function pgTypeFor(column: Pick<ColumnInfo, 'affinity' | 'declared_type'>): PgType {
  switch (column.affinity) {
    case 'INTEGER':
      return 'bigint';
    case 'REAL':
      return 'double precision';
    case 'TEXT':
      return 'text';
    case 'NUMERIC':
      return 'numeric';
    case 'BLOB':
      // No declared type at all means "anything": jsonb keeps each value's own class.
      return column.declared_type.trim() === '' ? 'jsonb' : 'bytea';
  }
}

/**
 * The JSON kept in jsonb columns, overflow and staged rows: the wire encoding,
 * except for strings PostgreSQL cannot hold in text or jsonb (NUL, lone
 * surrogates), which become `{"$utf16": base64 of their UTF-16LE code units}`.
 */
export type StoredJson = WireValue | { $utf16: string };

/** PostgreSQL text and jsonb hold a string exactly when it has no NUL and no lone surrogate. */
export function pgSafeText(text: string): boolean {
  return !text.includes('\u0000') && isWellFormed(text);
}

export function toStoredJson(value: SqlValue): StoredJson {
  if (typeof value === 'string' && !pgSafeText(value)) return { $utf16: Buffer.from(value, 'utf16le').toString('base64') };
  return encodeValue(value);
}

export function fromStoredJson(json: unknown): SqlValue {
  if (typeof json === 'object' && json !== null && !Array.isArray(json) && Object.keys(json).length === 1 && '$utf16' in json) {
    const text = (json as { $utf16: unknown }).$utf16;
    if (typeof text !== 'string') throw new SynclineError('invalid_value_encoding', '$utf16 must carry a string');
    return Buffer.from(text, 'base64').toString('utf16le');
  }
  return decodeValue(json);
}

/** Marks a value the column's type cannot hold exactly. */
export const OVERFLOW = Symbol('overflow');

const PLAIN_DECIMAL = /^-?[0-9]+\.[0-9]+$/;

function doubleText(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/**
 * The text PostgreSQL casts into a column of type `type`, or OVERFLOW.
 * A NUMERIC column holds integers, and doubles written as a plain decimal with a
 * fraction (that is how they are told apart when read back).
 */
export function toColumnText(value: SqlValue, type: PgType): string | null | typeof OVERFLOW {
  if (value === null) return null;
  switch (type) {
    case 'bigint':
      return typeof value === 'bigint' ? value.toString() : OVERFLOW;
    case 'double precision':
      return typeof value === 'number' && Number.isFinite(value) ? doubleText(value) : OVERFLOW;
    case 'text':
      return typeof value === 'string' && pgSafeText(value) ? value : OVERFLOW;
    case 'numeric': {
      if (typeof value === 'bigint') return value.toString();
      if (typeof value !== 'number' || !Number.isFinite(value)) return OVERFLOW;
      const text = String(value);
      return PLAIN_DECIMAL.test(text) ? text : OVERFLOW;
    }
    case 'bytea':
      return value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') : OVERFLOW;
    case 'jsonb':
      return JSON.stringify(toStoredJson(value));
  }
}

const INTEGER_TEXT = /^-?[0-9]+$/;
const DOUBLE_TEXT = /^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
const HEX_TEXT = /^([0-9a-f]{2})*$/;

function badText(type: PgType, text: string): SynclineError {
  return new SynclineError('invalid_value_encoding', `not a ${type} text: ${JSON.stringify(text.slice(0, 40))}`);
}

/** The inverse of toColumnText, for text read with `readAsText`. */
export function fromColumnText(text: string | null, type: PgType): SqlValue {
  if (text === null) return null;
  switch (type) {
    case 'bigint':
      if (!INTEGER_TEXT.test(text)) throw badText(type, text);
      return BigInt(text);
    case 'double precision':
      if (!DOUBLE_TEXT.test(text)) throw badText(type, text);
      return Number(text);
    case 'text':
      return text;
    case 'numeric':
      if (INTEGER_TEXT.test(text)) return BigInt(text);
      if (!PLAIN_DECIMAL.test(text)) throw badText(type, text);
      return Number(text);
    case 'bytea':
      if (!HEX_TEXT.test(text)) throw badText(type, text);
      return new Uint8Array(Buffer.from(text, 'hex'));
    case 'jsonb': {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw badText(type, text);
      }
      return fromStoredJson(json);
    }
  }
}

/** SQL turning a text expression (a parameter or unnest column) into `type`. */
export function castFromText(expr: string, type: PgType): string {
  return type === 'bytea' ? `decode(${expr}, 'hex')` : `(${expr})::${type}`;
}

/**
 * Column texts sent as one array parameter: typed where PostgreSQL's input function
 * for the type reads the text (the same function a cast from text calls, run once
 * while parsing the array), text[] for bytea, whose text is hex.
 */
export function textArrayParam(placeholder: string, type: PgType): string {
  return type === 'bytea' ? `${placeholder}::text[]` : `${placeholder}::${type}[]`;
}

/** An element of a textArrayParam array as a value of `type`. */
export function fromTextArrayElement(expr: string, type: PgType): string {
  return type === 'bytea' ? `decode(${expr}, 'hex')` : expr;
}

/** SQL reading a column of `type` as the text fromColumnText expects. */
export function readAsText(expr: string, type: PgType): string {
  return type === 'bytea' ? `encode(${expr}, 'hex')` : type === 'text' ? expr : `(${expr})::text`;
}
