import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo } from '../../protocol/schema.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { quoteIdent } from '../capture/sql-text.js';
import { readTableShape } from '../capture/table-shape.js';

/** What the operator asked for: `TABLE` (rowid order) or `TABLE=TIME_COLUMN`. */
export interface TelemetrySpec {
  table: string;
  timeColumn?: string;
}

/** A telemetry table as the reader uses it, resolved against the file. */
export interface TelemetryTable {
  table: string;
  timeColumn: string | null;
  columns: ColumnInfo[];
  hash: string;
  /** How SQL names the rowid here (`rowid`, or `_rowid_`/`oid` when the app has a column called rowid). */
  rowid: string;
}

/** Parses `--telemetry TABLE[=TIME_COLUMN]`. */
export function parseTelemetrySpec(text: string): TelemetrySpec {
  const at = text.indexOf('=');
  const table = at < 0 ? text : text.slice(0, at);
  const timeColumn = at < 0 ? undefined : text.slice(at + 1);
  if (table === '' || timeColumn === '') throw new SynclineError('invalid_config', `--telemetry takes TABLE or TABLE=TIME_COLUMN, got ${JSON.stringify(text)}`, { field: 'telemetry' });
  return timeColumn === undefined ? { table } : { table, timeColumn };
}

const ROWID_NAMES = ['rowid', '_rowid_', 'oid'];

/**
 * Reads the table's shape and checks the order the cursor relies on survives
 * what an app does to its file. Without a time column the rowid orders rows, and
 * only an INTEGER PRIMARY KEY keeps rowids across VACUUM (SQLite may renumber
 * other tables' rowids), so any other table needs a time column.
 */
export async function resolveTelemetryTable(db: SqliteQueryable, spec: TelemetrySpec): Promise<TelemetryTable> {
  const context = { table: spec.table, field: 'telemetry' };
  const shape = await readTableShape(db, spec.table);
  if (!shape) throw new SynclineError('invalid_config', `telemetry table ${JSON.stringify(spec.table)} does not exist`, context);
  if (shape.withoutRowid) throw new SynclineError('invalid_config', `telemetry table ${JSON.stringify(spec.table)} is a WITHOUT ROWID table; the cursor needs a rowid`, context);
  const names = new Set(shape.columns.map((c) => c.name.toLowerCase()));
  const rowid = ROWID_NAMES.find((n) => !names.has(n));
  if (!rowid) throw new SynclineError('invalid_config', `telemetry table ${JSON.stringify(spec.table)} has columns named rowid, _rowid_ and oid; its rowid cannot be read`, context);
  if (spec.timeColumn !== undefined) {
    if (!shape.columns.some((c) => c.name === spec.timeColumn)) {
      throw new SynclineError('telemetry_time_column_missing', `telemetry table ${JSON.stringify(spec.table)} has no column ${JSON.stringify(spec.timeColumn)}`, context);
    }
  } else {
    const key = shape.columns.filter((c) => c.pk > 0);
    if (key.length !== 1 || key[0]!.declared_type.toUpperCase() !== 'INTEGER') {
      throw new SynclineError(
        'invalid_config',
        `telemetry table ${JSON.stringify(spec.table)} has no INTEGER PRIMARY KEY, so VACUUM may renumber its rowids: name its time column (--telemetry ${spec.table}=COLUMN)`,
        context,
      );
    }
  }
  return { table: spec.table, timeColumn: spec.timeColumn ?? null, columns: shape.columns, hash: shape.hash, rowid };
}

/**
 * The SELECT list: the rowid first, then every column in schema order, named
 * c0, c1, ... so a row's values read back in that order whatever the columns are
 * called (a column named `1` would move to the front of a JavaScript object).
 */
export function selectList(t: TelemetryTable): string {
  return [t.rowid, ...t.columns.map((c) => quoteIdent(c.name))].map((expr, i) => `${expr} AS c${i}`).join(', ');
}
