import type { Affinity, ColumnInfo } from '../../protocol/schema.js';
import { pgTypeFor, type PgType } from '../type-mapping.js';

/**
 * The PostgreSQL types a column of each SQLite affinity may be mirrored as: those
 * that hold every value of the affinity's storage class exactly (type-mapping.ts),
 * so a `mirror_as` type change never turns a device's values into NULLs. The
 * default type of the affinity is always first; jsonb keeps any value's own class.
 */
export const SAFE_CASTS: { readonly [A in Affinity]: readonly PgType[] } = {
  INTEGER: ['bigint', 'numeric', 'jsonb'],
  REAL: ['double precision', 'jsonb'],
  NUMERIC: ['numeric', 'jsonb'],
  TEXT: ['text', 'jsonb'],
  BLOB: ['bytea', 'jsonb'],
};

/** The types a column may be mirrored as: its default first (jsonb for an untyped column). */
export function safeTypesFor(column: Pick<ColumnInfo, 'affinity' | 'declared_type'>): PgType[] {
  const preferred = pgTypeFor(column);
  return [preferred, ...SAFE_CASTS[column.affinity].filter((t) => t !== preferred)];
}

export function isSafeCast(column: Pick<ColumnInfo, 'affinity' | 'declared_type'>, type: PgType): boolean {
  return safeTypesFor(column).includes(type);
}
