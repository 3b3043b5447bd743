import { RESERVED_PREFIX } from '../../protocol/constants.js';
import { affinityOf, keyOf, schemaFingerprint, type ColumnInfo, type TableKey } from '../../protocol/schema.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';

/** What capture needs to know about one user table, read from SQLite's own catalogue. */
export interface TableShape {
  name: string;
  columns: ColumnInfo[];
  key: TableKey;
  hash: string;
  withoutRowid: boolean;
  /**
   * The name under which the trigger reads the rowid of a table without a declared
   * key: `rowid`, unless the app has a column of that name, then `_rowid_` or `oid`.
   */
  rowidAlias?: string;
}

/** table_xinfo `hidden`: 1 marks a virtual table's hidden column; 2 and 3 are generated columns, which we capture with their value. */
const HIDDEN_VIRTUAL = 1n;
const ROWID_ALIASES = ['rowid', '_rowid_', 'oid'] as const;

type XInfoRow = {
  name: string;
  type: string;
  notnull: bigint;
  dflt_value: string | null;
  pk: bigint;
  hidden: bigint;
};

type TableListRow = {
  name: string;
  type: string;
  wr: bigint;
};

/**
 * The app's ordinary tables in the main database: not SQLite's internal tables,
 * not Syncline's own, not virtual tables (which cannot carry triggers) nor their
 * shadow tables (which the virtual table's module writes).
 */
export async function listUserTables(db: SqliteQueryable): Promise<string[]> {
  const rows = await db.all<TableListRow>("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'");
  return rows
    .filter((r) => r.type === 'table' && isUserTableName(r.name))
    .map((r) => r.name)
    .sort();
}

/** Capturing SQLite's or Syncline's own tables would make no sense (and the journal would journal itself). */
export function isUserTableName(name: string): boolean {
  return !name.toLowerCase().startsWith('sqlite_') && !name.startsWith(RESERVED_PREFIX);
}

/** The table's shape, or undefined when no such ordinary table exists. */
export async function readTableShape(db: SqliteQueryable, name: string): Promise<TableShape | undefined> {
  const listed = await db.get<TableListRow>("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", [name]);
  if (!listed || listed.type !== 'table') return undefined;
  const info = await db.all<XInfoRow>(`SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?, 'main') ORDER BY cid`, [name]);
  const columns: ColumnInfo[] = info
    .filter((c) => c.hidden !== HIDDEN_VIRTUAL)
    .map((c) => ({
      name: c.name,
      declared_type: c.type,
      affinity: affinityOf(c.type),
      pk: Number(c.pk),
      notnull: c.notnull !== 0n,
      has_default: c.dflt_value !== null,
    }));
  if (columns.length === 0) return undefined;
  const key = keyOf(columns);
  const shape: TableShape = { name, columns, key, hash: schemaFingerprint(columns), withoutRowid: listed.wr !== 0n };
  if (key.kind === 'rowid') {
    const taken = new Set(columns.map((c) => c.name.toLowerCase()));
    const alias = ROWID_ALIASES.find((a) => !taken.has(a));
    if (alias) shape.rowidAlias = alias;
  }
  return shape;
}

/** The columns the trigger reads for the key: the declared key, or the rowid alias. */
export function keyColumnsOf(shape: Pick<TableShape, 'key' | 'rowidAlias'>): string[] | undefined {
  if (shape.key.kind === 'primary_key') return shape.key.columns;
  return shape.rowidAlias ? [shape.rowidAlias] : undefined;
}
