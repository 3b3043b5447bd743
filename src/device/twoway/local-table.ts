import { SynclineError } from '../../protocol/errors.js';
import { affinityOf, type ColumnInfo } from '../../protocol/schema.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import type { SqlValue } from '../../protocol/values.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { quoteIdent } from '../capture/sql-text.js';

/** SQLite column types for declared types; a UUID is kept as its text. */
const LOCAL_TYPE = { INTEGER: 'INTEGER', REAL: 'REAL', TEXT: 'TEXT', BLOB: 'BLOB', UUID: 'TEXT' } as const;

/**
 * One shared table in the device's file: reads and writes by key, in declared
 * column order, on whatever connection or transaction it is handed. The SQL is
 * built once (the driver keeps the statements prepared); the app's own columns
 * beyond the declaration are left alone.
 */
export class LocalTable {
  readonly declaration: SharedTable;
  readonly #select: string;
  readonly #upsert: string;
  readonly #insert: string;
  readonly #delete: string;
  /** Result columns are aliased by position, so no column name (say `__proto__`) can upset the row object. */
  readonly #aliases: string[];

  constructor(declaration: SharedTable) {
    this.declaration = declaration;
    const t = quoteIdent(declaration.name);
    const cols = declaration.columns.map((c) => quoteIdent(c.name));
    const byKey = declaration.key.map((k) => `${quoteIdent(k)} = ?`).join(' AND ');
    const nonKey = declaration.columns.filter((c) => !declaration.key.includes(c.name)).map((c) => quoteIdent(c.name));
    const values = `(${cols.map(() => '?').join(', ')})`;
    this.#aliases = cols.map((_, i) => `c${i}`);
    this.#select = `SELECT ${cols.map((c, i) => `${c} AS c${i}`).join(', ')} FROM ${t} WHERE ${byKey}`;
    this.#insert = `INSERT INTO ${t} (${cols.join(', ')}) VALUES ${values}`;
    const onConflict = nonKey.length > 0 ? `DO UPDATE SET ${nonKey.map((c) => `${c} = excluded.${c}`).join(', ')}` : 'DO NOTHING';
    this.#upsert = `INSERT INTO ${t} (${cols.join(', ')}) VALUES ${values} ON CONFLICT (${declaration.key.map(quoteIdent).join(', ')}) ${onConflict}`;
    this.#delete = `DELETE FROM ${t} WHERE ${byKey}`;
  }

  get name(): string {
    return this.declaration.name;
  }

  /** The row at `key` in declared column order, or null. */
  async read(db: SqliteQueryable, key: readonly SqlValue[]): Promise<SqlValue[] | null> {
    const row = await db.get(this.#select, key);
    return row ? this.#aliases.map((alias) => row[alias]!) : null;
  }

  async write(db: SqliteQueryable, row: readonly SqlValue[]): Promise<void> {
    await db.run(this.#upsert, row);
  }

  /** A plain insert, for hydration into a table cleared of the keys it receives. */
  async insert(db: SqliteQueryable, row: readonly SqlValue[]): Promise<void> {
    await db.run(this.#insert, row);
  }

  async remove(db: SqliteQueryable, key: readonly SqlValue[]): Promise<void> {
    await db.run(this.#delete, key);
  }

  /** Writes the row, or removes the key when there is no row. */
  put(db: SqliteQueryable, key: readonly SqlValue[], row: readonly SqlValue[] | null): Promise<void> {
    return row ? this.write(db, row) : this.remove(db, key);
  }
}

type LocalColumn = {
  name: string;
  type: string;
  pk: bigint;
};

/** The declaration as the journal's schema record describes a table: declared columns in declared order, with their local types. */
export function declaredColumns(table: SharedTable): ColumnInfo[] {
  return table.columns.map((c) => ({
    name: c.name,
    declared_type: LOCAL_TYPE[c.type],
    affinity: affinityOf(LOCAL_TYPE[c.type]),
    pk: table.key.indexOf(c.name) + 1,
    notnull: !c.nullable || table.key.includes(c.name),
    has_default: false,
  }));
}

/** The affinity a key column needs locally, so the key values the triggers render match the ones the cloud sends. */
const KEY_AFFINITY = { INTEGER: 'INTEGER', TEXT: 'TEXT', UUID: 'TEXT', BLOB: 'BLOB', REAL: 'REAL' } as const;

/**
 * Checks that the app's table can hold the declaration (every declared column,
 * and the declared key as its primary key or a unique index), or creates it when
 * the app has not yet. Returns the problems found; none means usable.
 */
export async function ensureLocalTable(db: SqliteQueryable, table: SharedTable, all: readonly SharedTable[]): Promise<string[]> {
  const columns = await db.all<LocalColumn>(`SELECT name, type, pk FROM pragma_table_xinfo(?)`, [table.name]);
  if (columns.length === 0) {
    await db.exec(createLocalTableSql(table, all));
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
  const pk = columns.filter((c) => c.pk > 0n).map((c) => c.name).sort().join('\u0000');
  if (pk !== wanted && !(await hasUniqueIndex(db, table.name, wanted))) problems.push(`${table.name} needs (${table.key.join(', ')}) as its primary key or a unique index`);
  return problems;
}

async function hasUniqueIndex(db: SqliteQueryable, table: string, wanted: string): Promise<boolean> {
  const indexes = await db.all<{ name: string }>(`SELECT name FROM pragma_index_list(?) WHERE "unique" = 1 AND partial = 0`, [table]);
  for (const { name } of indexes) {
    const cols = await db.all<{ name: string | null }>(`SELECT name FROM pragma_index_info(?)`, [name]);
    if (cols.map((c) => c.name ?? '').sort().join('\u0000') === wanted) return true;
  }
  return false;
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
