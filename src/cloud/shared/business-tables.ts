import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent as q } from '../identifiers.js';
import type { Queryable } from '../store/store.js';
import { APPLYING_SETTING, BACKEND_SOURCE } from './capture-sql.js';
import { MetaColumns as M, keyTextSql, pgTypeOfShared, scopeColumn, sharedTableRef, tableSchema } from './shared-columns.js';

/** Syncline's bookkeeping columns, which a business table needs besides its own. */
export const BOOKKEEPING: readonly [string, string][] = [
  [M.key, 'text'],
  [M.version, 'bigint'],
  [M.source, 'text'],
  [M.hlc, 'text'],
];

interface Column {
  column_name: string;
  data_type: string;
  is_nullable: 'YES' | 'NO';
}

/**
 * Checks a business table of the application's own schema against its
 * declaration and returns every problem found (an empty list: it can sync). It
 * changes the table only when `provision` is set (`--provision`), and then only by
 * adding Syncline's bookkeeping columns (filled for existing rows) and the unique
 * index on (scope, key) they need; keys, scope column and foreign keys stay the
 * application's to define.
 */
export async function checkBusinessTable(tx: Queryable, table: SharedTable, all: readonly SharedTable[], provision: boolean, logger: Logger): Promise<string[]> {
  const schema = tableSchema(table);
  const scope = scopeColumn(table);
  const problems: string[] = [];
  const say = (message: string) => problems.push(`${schema}.${table.name}: ${message}`);
  const { rows } = await tx.query<Column>('SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2', [schema, table.name]);
  if (rows.length === 0) {
    say('does not exist; Syncline never creates a table in your schema (create it, or leave "schema" out to have Syncline provision one in syncline_shared)');
    return problems;
  }
  const columns = new Map(rows.map((c) => [c.column_name, c]));
  const scopeCol = columns.get(scope);
  if (!scopeCol) say(`has no scope column ${scope} (scope_column)`);
  else {
    if (scopeCol.data_type !== 'text') say(`scope column ${scope} is ${scopeCol.data_type}; it must be text`);
    if (scopeCol.is_nullable === 'YES') say(`scope column ${scope} is nullable; make it NOT NULL, so a row without a scope is refused instead of never syncing`);
  }
  for (const column of table.columns) {
    const found = columns.get(column.name);
    if (!found) say(`has no column ${column.name}`);
    else if (found.data_type !== pgTypeOfShared(column.type)) say(`column ${column.name} is ${found.data_type} but declared ${column.type} (${pgTypeOfShared(column.type)})`);
  }
  const key = await primaryKey(tx, schema, table.name);
  if (key.join(',') !== table.key.join(',') && key.join(',') !== [scope, ...table.key].join(',')) {
    say(`primary key is (${key.join(', ')}) but the declared key is (${table.key.join(', ')}), with or without ${scope} first`);
  }
  for (const ref of table.references) {
    const parent = all.find((t) => t.name === ref.table);
    if (parent) await foreignKeyProblem(tx, table, ref.columns, parent, say);
  }
  const missing = BOOKKEEPING.filter(([name]) => !columns.has(name));
  const index = `syncline_key_${createHash('sha256').update(`${schema}.${table.name}`).digest('hex').slice(0, 16)}`;
  const { rows: indexed } = await tx.query('SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2', [schema, index]);
  if (missing.length === 0 && indexed.length > 0) return problems;
  if (!provision) {
    const what = missing.length > 0 ? `Syncline's bookkeeping columns (${missing.map(([n]) => n).join(', ')}) and their unique index` : `the unique index ${index} on (${scope}, ${M.key})`;
    say(`lacks ${what}; start once with --provision to add them (the only change Syncline makes to your table)`);
  } else if (problems.length === 0) {
    await addBookkeeping(tx, table, missing, index);
    logger.info({ table: `${schema}.${table.name}` }, 'bookkeeping columns added to a business table');
  }
  return problems;
}

async function addBookkeeping(tx: Queryable, table: SharedTable, missing: readonly [string, string][], index: string): Promise<void> {
  const ref = sharedTableRef(table);
  if (missing.length > 0) {
    await tx.exec(`ALTER TABLE ${ref} ${missing.map(([name, type]) => `ADD COLUMN ${q(name)} ${type}`).join(', ')}`);
    // Rows already there become version 0: in every snapshot, never a conflict. Written with capture off, as they are no change.
    await tx.query(`SELECT set_config('${APPLYING_SETTING}', 'on', true)`);
    await tx.exec(`UPDATE ${ref} t SET ${q(M.key)} = ${keyTextSql(table, 't')}, ${q(M.version)} = 0, ${q(M.source)} = '${BACKEND_SOURCE}', ${q(M.hlc)} = '000000000000000-000000-${BACKEND_SOURCE}' WHERE t.${q(M.key)} IS NULL`);
    await tx.query(`SELECT set_config('${APPLYING_SETTING}', 'off', true)`);
    await tx.exec(`ALTER TABLE ${ref} ${missing.map(([name]) => `ALTER COLUMN ${q(name)} SET NOT NULL`).join(', ')}`);
  }
  await tx.exec(`CREATE UNIQUE INDEX IF NOT EXISTS ${q(index)} ON ${ref} (${q(scopeColumn(table))}, ${q(M.key)})`);
}

/** A declared reference needs a foreign key that includes the scope on both sides and is DEFERRABLE (bundles apply graphs in any order). */
async function foreignKeyProblem(tx: Queryable, table: SharedTable, columns: readonly string[], parent: SharedTable, say: (message: string) => void): Promise<void> {
  const { rows } = await tx.query<{ name: string; deferrable: boolean; cols: string[] }>(
    `SELECT con.conname AS name, con.condeferrable AS deferrable,
            array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols
       FROM pg_constraint con WHERE con.contype = 'f' AND con.conrelid = to_regclass($1) AND con.confrelid = to_regclass($2)`,
    [sharedTableRef(table), sharedTableRef(parent)],
  );
  const wanted = [scopeColumn(table), ...columns];
  const same = (cols: string[]) => cols.length === wanted.length && wanted.every((c) => cols.includes(c));
  const fk = rows.find((r) => same(r.cols));
  const label = `reference (${columns.join(', ')}) -> ${parent.name}`;
  if (!fk) say(`${label} has no foreign key on (${wanted.join(', ')}); add one that includes the scope, so a row can never point into another scope, DEFERRABLE INITIALLY DEFERRED`);
  else if (!fk.deferrable) say(`${label}: foreign key ${fk.name} is not DEFERRABLE; a bundle applies a graph in any order, so make it DEFERRABLE INITIALLY DEFERRED`);
}

async function primaryKey(tx: Queryable, schema: string, table: string): Promise<string[]> {
  const { rows } = await tx.query<{ column_name: string }>(
    `SELECT a.attname AS column_name
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.position`,
    [schema, table],
  );
  return rows.map((r) => r.column_name);
}
