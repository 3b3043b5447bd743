import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import { pgSafeText, toStoredJson } from '../type-mapping.js';

export type PointKind = 'numeric' | 'text' | 'boolean';
export type TimeUnit = 'auto' | 's' | 'ms' | 'us';

export const POINT_KINDS: readonly PointKind[] = ['numeric', 'text', 'boolean'];
export const TIME_UNITS: readonly TimeUnit[] = ['auto', 's', 'ms', 'us'];

/** One value as the store's columns take it (text for numeric, so no digit is lost). */
export interface StoredValue {
  num: string | null;
  text: string | null;
  bool: boolean | null;
}

/** Seconds, milliseconds and microseconds since 1970 are told apart by size under `auto` (years 1970-5138 in seconds). */
const AUTO_SECONDS_BELOW = 100_000_000_000;
const AUTO_MILLIS_BELOW = 100_000_000_000_000;
/** PostgreSQL's timestamptz range ends in 294276 AD; we keep well inside it. */
const MAX_MICROS = 253_402_300_800_000_000n;

/**
 * A row's time in microseconds since 1970, from the time column's value:
 * numbers in the mapping's unit (`auto` guesses by size), text as ISO 8601 (or
 * what Date.parse reads). Anything else is refused, naming the row.
 */
export function timeMicros(value: SqlValue, unit: TimeUnit, field: string): bigint {
  let micros: bigint;
  if (typeof value === 'bigint' || typeof value === 'number') {
    const magnitude = typeof value === 'bigint' ? (value < 0n ? -value : value) : Math.abs(value);
    const u = unit !== 'auto' ? unit : magnitude < AUTO_SECONDS_BELOW ? 's' : magnitude < AUTO_MILLIS_BELOW ? 'ms' : 'us';
    const factor = u === 's' ? 1_000_000 : u === 'ms' ? 1000 : 1;
    if (typeof value === 'number' && !Number.isFinite(value)) throw badTime(field, 'is not finite');
    micros = typeof value === 'bigint' ? value * BigInt(factor) : BigInt(Math.round(value * factor));
  } else if (typeof value === 'string') {
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw badTime(field, `${JSON.stringify(value.slice(0, 40))} is not an ISO 8601 time`);
    micros = BigInt(ms) * 1000n;
  } else throw badTime(field, value === null ? 'is NULL' : 'is a BLOB');
  if (micros > MAX_MICROS || micros < -MAX_MICROS) throw badTime(field, 'is out of range');
  return micros;
}

function badTime(field: string, why: string): SynclineError {
  return new SynclineError('telemetry_bad_time', `the time ${why}`, { field });
}

/** ISO text with microseconds, which PostgreSQL casts to timestamptz exactly. */
export function microsToIso(micros: bigint): string {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = Number(micros - ms * 1000n);
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`;
}

function hex(bytes: Uint8Array): string {
  return `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

/**
 * Where a value goes for a point of a kind. Values are never refused: a value
 * that does not fit its point's kind (text in a numeric point) is kept as text,
 * so it can be read back even if it cannot be averaged. Doubles keep their
 * shortest round-trip text (numeric holds it exactly); -0.0 becomes 0.
 */
export function storedValue(value: SqlValue, kind: PointKind): StoredValue | undefined {
  if (value === null) return undefined;
  if (value instanceof Uint8Array) return { num: null, text: hex(value), bool: null };
  if (kind === 'boolean') {
    if (value === 0n || value === 0 || value === 'false') return { num: null, text: null, bool: false };
    if (value === 1n || value === 1 || value === 'true') return { num: null, text: null, bool: true };
  }
  if (kind !== 'text' && typeof value !== 'string') {
    if (typeof value === 'number' && !Number.isFinite(value)) return { num: null, text: String(value), bool: null };
    return { num: typeof value === 'bigint' ? value.toString() : String(value), text: null, bool: null };
  }
  const text = typeof value === 'string' ? value : String(value);
  // PostgreSQL text cannot hold NUL or lone surrogates: such text is kept in its stored-JSON form.
  return { num: null, text: pgSafeText(text) ? text : JSON.stringify(toStoredJson(text)), bool: null };
}

/** The kind a column gets under `--schema-policy auto`, from its declared type. */
export function defaultKind(declaredType: string, affinity: string): PointKind {
  if (/BOOL/i.test(declaredType)) return 'boolean';
  return affinity === 'TEXT' ? 'text' : 'numeric';
}
