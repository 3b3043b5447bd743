import { SynclineError } from '../../protocol/errors.js';
import type { SharedColumn, SharedColumnType, SharedTable } from '../../protocol/shared-sync.js';
import { encodeValue, type SqlValue } from '../../protocol/values.js';
import { quoteIdent } from '../identifiers.js';
import { castFromText, fromColumnText, pgSafeText, readAsText, type PgType } from '../type-mapping.js';

/**
 * How a shared table's declared columns live in PostgreSQL, and how values cross
 * over: every value travels as text and is cast in SQL, as on the mirror path,
 * so no 64-bit integer or double is rounded on the way.
 */

export const SHARED_SCHEMA = 'syncline_shared';

/** Syncline's own columns in every shared table; the reserved prefix keeps them apart from declared ones. */
export const MetaColumns = {
  scope: '_syncline_scope',
  key: '_syncline_key',
  version: '_syncline_version',
  source: '_syncline_source',
  hlc: '_syncline_hlc',
} as const;

/** Where a shared table lives: your own schema for a business table, else syncline_shared. */
export function tableSchema(table: { schema?: string | undefined }): string {
  return table.schema ?? SHARED_SCHEMA;
}

export function sharedTableRef(table: { name: string; schema?: string | undefined }): string {
  return `${quoteIdent(tableSchema(table))}.${quoteIdent(table.name)}`;
}

/** The column holding a row's scope. */
export function scopeColumn(table: { scope_column?: string | undefined }): string {
  return table.scope_column ?? MetaColumns.scope;
}

const PG_TYPE: Record<SharedColumnType, string> = { INTEGER: 'bigint', REAL: 'double precision', TEXT: 'text', BLOB: 'bytea', UUID: 'uuid' };

export function pgTypeOfShared(type: SharedColumnType): string {
  return PG_TYPE[type];
}

/** The text conversion of a declared type; a uuid travels as its text. */
function textType(type: SharedColumnType): PgType {
  return type === 'UUID' ? 'text' : (PG_TYPE[type] as PgType);
}

export function castSharedFromText(expr: string, type: SharedColumnType): string {
  return type === 'UUID' ? `(${expr})::uuid` : castFromText(expr, textType(type));
}

export function readSharedAsText(expr: string, type: SharedColumnType): string {
  return type === 'UUID' ? `(${expr})::text` : readAsText(expr, textType(type));
}

export function sharedFromText(text: string | null, type: SharedColumnType): SqlValue {
  return fromColumnText(text, textType(type));
}

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_EXACT_DOUBLE = 2n ** 53n;

/**
 * The text a value is cast from, or an error saying why the column cannot hold it
 * exactly. SQLite lets an app store any value in any column; PostgreSQL does not,
 * so a mismatch is refused per row rather than coerced into something else.
 */
export function sharedToText(value: SqlValue, column: SharedColumn): string | null {
  if (value === null) {
    if (!column.nullable) throw invalidValue(column, 'is NOT NULL');
    return null;
  }
  switch (column.type) {
    case 'INTEGER':
      if (typeof value === 'bigint') return value.toString();
      break;
    case 'REAL':
      if (typeof value === 'number' && Number.isFinite(value)) return Object.is(value, -0) ? '-0' : String(value);
      if (typeof value === 'bigint' && value <= MAX_EXACT_DOUBLE && value >= -MAX_EXACT_DOUBLE) return value.toString();
      break;
    case 'TEXT':
      if (typeof value === 'string') {
        if (!pgSafeText(value)) throw invalidValue(column, 'holds text with NUL or a lone surrogate, which PostgreSQL text cannot store');
        return value;
      }
      break;
    case 'UUID':
      if (typeof value === 'string') {
        if (!CANONICAL_UUID.test(value)) throw invalidValue(column, 'is not a lowercase canonical UUID');
        return value;
      }
      break;
    case 'BLOB':
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
      break;
  }
  throw invalidValue(column, `is declared ${column.type} but holds a ${typeof value === 'bigint' ? 'INTEGER' : typeof value === 'number' ? 'REAL' : typeof value === 'string' ? 'TEXT' : 'BLOB'} value`);
}

function invalidValue(column: SharedColumn, why: string): SynclineError {
  return new SynclineError('invalid_value_encoding', `column ${column.name} ${why}`, { column: column.name });
}

/** The key's identity text: the same key values always give the same text. */
export function keyText(key: readonly SqlValue[]): string {
  return JSON.stringify(key.map(encodeValue));
}

export function keyColumns(table: SharedTable): SharedColumn[] {
  return table.key.map((name) => table.columns.find((c) => c.name === name)!);
}

/** SQL turning a column into its wire value (see protocol/values.ts); SQL NULL stays NULL, which json_build_array writes as null. */
export function wireJsonSql(expr: string, type: SharedColumnType): string {
  switch (type) {
    case 'INTEGER':
      return `CASE WHEN ${expr} BETWEEN -9007199254740991 AND 9007199254740991 THEN to_json(${expr}) WHEN ${expr} IS NOT NULL THEN json_build_object('$int', ${expr}::text) END`;
    case 'REAL':
      // Whole numbers (-0, NaN and the infinities compare equal to their trunc() in PostgreSQL) travel as text.
      return `CASE WHEN ${expr} = trunc(${expr}) THEN json_build_object('$real', ${expr}::text) ELSE to_json(${expr}) END`;
    case 'BLOB':
      return `CASE WHEN ${expr} IS NOT NULL THEN json_build_object('$blob', translate(encode(${expr}, 'base64'), E'\\n', '')) END`;
    default:
      return `${expr}::text`;
  }
}

/**
 * SQL giving the same text as keyText() for a row's key columns: the JSON of the
 * key's wire values without spaces, so a key written by SQL and one written by a
 * device name the same row.
 */
export function keyTextSql(table: SharedTable, alias: string): string {
  const parts = keyColumns(table).map((c) => {
    const e = `${alias}.${quoteIdent(c.name)}`;
    switch (c.type) {
      case 'INTEGER':
        return `CASE WHEN ${e} BETWEEN -9007199254740991 AND 9007199254740991 THEN ${e}::text ELSE '{"$int":"' || ${e}::text || '"}' END`;
      case 'BLOB':
        return `'{"$blob":"' || translate(encode(${e}, 'base64'), E'\\n', '') || '"}'`;
      default:
        return `to_json(${e}::text)::text`;
    }
  });
  return `'[' || ${parts.join(` || ',' || `)} || ']'`;
}
