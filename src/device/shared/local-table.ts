import type Database from 'better-sqlite3';
import { SynclineError } from '../../protocol/errors.js';
import { affinityOf } from '../../protocol/schema.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import type { SqlValue } from '../../protocol/values.js';
import type { DeviceDb } from '../device-db.js';
import { quoteIdent } from '../sql-text.js';

/** SQLite column types for declared types; a UUID is kept as its text. */
const LOCAL_TYPE = { INTEGER: 'INTEGER', REAL: 'REAL', TEXT: 'TEXT', BLOB: 'BLOB', UUID: 'TEXT' } as const;

/** better-sqlite3 binds Buffers, not plain Uint8Arrays. */
export function bindable(value: SqlValue): SqlValue | Buffer {
  return value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
}

function fromSqlite(value: unknown): SqlValue {
  return Buffer.isBuffer(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : (value as SqlValue);
}

/**
 * One shared table in the device's file: reads and writes by key, in declared
 * column order. Statements are prepared once; the app's own columns beyond the
 * declaration are left alone.
 */
export class LocalTable {
  readonly declaration: SharedTable;
  readonly #select: Database.Statement;
  readonly #upsert: Database.Statement;
  readonly #insert: Database.Statement;
  readonly #delete: Database.Statement;
  /** Only a table with BLOB columns needs its values converted before binding. */
  readonly #hasBlobs: boolean;

  constructor(db: DeviceDb, declaration: SharedTable) {
    this.declaration = declaration;
    const t = quoteIdent(declaration.name);
    const cols = declaration.columns.map((c) => quoteIdent(c.name));
    const byKey = declaration.key.map((k) => `${quoteIdent(k)} = ?`).join(' AND ');
    const nonKey = declaration.columns.filter((c) => !declaration.key.includes(c.name)).map((c) => quoteIdent(c.name));
    const values = `(${cols.map(() => '?').join(', ')})`;
    this.#select = db.prepare(`SELECT ${cols.join(', ')} FROM ${t} WHERE ${byKey}`).raw(true);
    this.#insert = db.prepare(`INSERT INTO ${t} (${cols.join(', ')}) VALUES ${values}`);
    const onConflict = nonKey.length > 0 ? `DO UPDATE SET ${nonKey.map((c) => `${c} = excluded.${c}`).join(', ')}` : 'DO NOTHING';
    this.#upsert = db.prepare(`INSERT INTO ${t} (${cols.join(', ')}) VALUES ${values} ON CONFLICT (${declaration.key.map(quoteIdent).join(', ')}) ${onConflict}`);
    this.#delete = db.prepare(`DELETE FROM ${t} WHERE ${byKey}`);
    this.#hasBlobs = declaration.columns.some((c) => c.type === 'BLOB');
  }

  get name(): string {
    return this.declaration.name;
  }

  /** The row at `key` in declared column order, or null. */
  read(key: readonly SqlValue[]): SqlValue[] | null {
    const row = this.#select.get(...key.map(bindable)) as unknown[] | undefined;
    return row ? row.map(fromSqlite) : null;
  }

  write(row: readonly SqlValue[]): void {
    this.#upsert.run(...row.map(bindable));
  }

  /** A plain insert, for hydration into a table cleared of the keys it receives. */
  insert(row: readonly SqlValue[]): void {
    this.#insert.run(this.#hasBlobs ? row.map(bindable) : row);
  }

  remove(key: readonly SqlValue[]): void {
    this.#delete.run(...key.map(bindable));
  }

  /** Writes the row, or removes the key when there is no row. */
  put(key: readonly SqlValue[], row: readonly SqlValue[] | null): void {
    if (row) this.write(row);
    else this.remove(key);
  }
}

interface ColumnInfo {
  name: string;
  type: string;
  pk: number;
}

/** The affinity a key column needs locally, so the key values the triggers render match the ones the cloud sends. */
const KEY_AFFINITY = { INTEGER: 'INTEGER', TEXT: 'TEXT', UUID: 'TEXT', BLOB: 'BLOB', REAL: 'REAL' } as const;

/**
 * Checks that the app's table can hold the declaration (every declared column,
 * and the declared key as its primary key or a unique index), or creates it when
 * the app has not yet. Returns the problems found; none means usable.
 */
export function ensureLocalTable(db: DeviceDb, table: SharedTable, all: readonly SharedTable[]): string[] {
  const columns = db.prepare(`SELECT name, type, pk FROM pragma_table_xinfo(?)`).all(table.name) as ColumnInfo[];
  if (columns.length === 0) {
    db.exec(createLocalTableSql(table, all));
    return [];
  }
  const problems: string[] = [];
  const names = new Set(columns.map((c) => c.name));
  for (const column of table.columns) if (!names.has(column.name)) problems.push(`${table.name} has no column ${column.name}`);
  for (const key of table.key) {
    const declared = table.columns.find((c) => c.name === key)!;
    const local = columns.find((c) => c.name === key);
    if (local && affinityOf(local.type) !== KEY_AFFINITY[declared.type]) {
      problems.push(`${table.name}.${key} is a ${declared.type} key but the local column is declared ${JSON.stringify(local.type)} (${affinityOf(local.type)} affinity)`);
    }
  }
  const wanted = [...table.key].sort().join('\u0000');
  const pk = columns.filter((c) => c.pk > 0).map((c) => c.name).sort().join('\u0000');
  if (pk !== wanted && !hasUniqueIndex(db, table.name, wanted)) problems.push(`${table.name} needs (${table.key.join(', ')}) as its primary key or a unique index`);
  return problems;
}

function hasUniqueIndex(db: DeviceDb, table: string, wanted: string): boolean {
  const indexes = db.prepare(`SELECT name FROM pragma_index_list(?) WHERE "unique" = 1 AND partial = 0`).all(table) as { name: string }[];
  return indexes.some(({ name }) => {
    const cols = db.prepare(`SELECT name FROM pragma_index_info(?)`).all(name) as { name: string | null }[];
    return cols.map((c) => c.name ?? '').sort().join('\u0000') === wanted;
  });
}

function createLocalTableSql(table: SharedTable, all: readonly SharedTable[]): string {
  const parts = table.columns.map((c) => `${quoteIdent(c.name)} ${LOCAL_TYPE[c.type]}${c.nullable && !table.key.includes(c.name) ? '' : ' NOT NULL'}`);
  parts.push(`PRIMARY KEY (${table.key.map(quoteIdent).join(', ')})`);
  for (const ref of table.references) {
    const parent = all.find((t) => t.name === ref.table);
    if (!parent) continue;
    parts.push(`FOREIGN KEY (${ref.columns.map(quoteIdent).join(', ')}) REFERENCES ${quoteIdent(parent.name)} (${parent.key.map(quoteIdent).join(', ')}) DEFERRABLE INITIALLY DEFERRED`);
  }
  return `CREATE TABLE ${quoteIdent(table.name)} (${parts.join(', ')})`;
}

export function missingTableError(problems: readonly string[]): SynclineError {
  return new SynclineError('capture_failed', `shared tables on this device do not match the server's declarations:\n  - ${problems.join('\n  - ')}`, { problems });
}
