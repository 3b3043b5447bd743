import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent } from '../identifiers.js';
import type { Queryable, Store } from '../store/store.js';
import { captureSql } from './capture-sql.js';
import type { SharedSyncConfig } from './declarations.js';
import { checkBusinessTable } from './business-tables.js';
import { MetaColumns as M, SHARED_SCHEMA, pgTypeOfShared, sharedTableRef, tableSchema } from './shared-columns.js';

/** Serializes provisioning between servers starting together on one PostgreSQL. */
export const PROVISION_LOCK_KEY = 7_366_571_105;

interface ExistingColumn {
  table_name: string;
  column_name: string;
  data_type: string;
  is_nullable: 'YES' | 'NO';
  column_default: string | null;
}

/**
 * Makes PostgreSQL hold every declared shared table: creates what is missing,
 * adds declared nullable columns an existing table lacks, and refuses (listing
 * every problem) when an existing table cannot hold the declaration: another
 * type, nullability or key. Foreign keys are DEFERRABLE INITIALLY DEFERRED and
 * include the scope, so a bundle may carry a graph in any order and a row can
 * never point into another user's data.
 */
export async function provisionSharedTables(store: Store, config: SharedSyncConfig, logger: Logger): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [PROVISION_LOCK_KEY]);
    const existing = await existingColumns(tx);
    const problems: string[] = [];
    for (const table of config.tables) {
      if (tableSchema(table) !== SHARED_SCHEMA) {
        problems.push(...(await checkBusinessTable(tx, table, config.tables, config.provision === true, logger)));
        continue;
      }
      const columns = existing.get(table.name);
      if (!columns) {
        await tx.exec(createTableSql(table));
        logger.info({ table: table.name }, 'shared table created');
        continue;
      }
      problems.push(...(await reconcile(tx, table, columns, logger)));
    }
    if (problems.length > 0) {
      throw new SynclineError('invalid_config', `existing shared tables in PostgreSQL do not match the declarations:\n  - ${problems.join('\n  - ')}`, { problems });
    }
    const byName = new Map(config.tables.map((t) => [t.name, t]));
    for (const table of config.tables) {
      if (tableSchema(table) === SHARED_SCHEMA) for (const ref of table.references) await ensureForeignKey(tx, table, ref, byName.get(ref.table)!);
    }
    await installCapture(tx, config);
  });
}

async function existingColumns(tx: Queryable): Promise<Map<string, Map<string, ExistingColumn>>> {
  const { rows } = await tx.query<ExistingColumn>(
    `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = $1`,
    [SHARED_SCHEMA],
  );
  const tables = new Map<string, Map<string, ExistingColumn>>();
  for (const row of rows) {
    if (!tables.has(row.table_name)) tables.set(row.table_name, new Map());
    tables.get(row.table_name)!.set(row.column_name, row);
  }
  return tables;
}

function columnSql(table: SharedTable, column: SharedTable['columns'][number]): string {
  const notNull = !column.nullable || table.key.includes(column.name);
  return `${quoteIdent(column.name)} ${pgTypeOfShared(column.type)}${notNull ? ' NOT NULL' : ''}`;
}

function createTableSql(table: SharedTable): string {
  const key = [M.scope, ...table.key].map(quoteIdent).join(', ');
  return `CREATE TABLE ${sharedTableRef(table)} (
  ${quoteIdent(M.scope)} text NOT NULL,
  ${table.columns.map((c) => columnSql(table, c)).join(',\n  ')},
  ${quoteIdent(M.key)} text NOT NULL,
  ${quoteIdent(M.version)} bigint NOT NULL,
  ${quoteIdent(M.source)} text NOT NULL,
  ${quoteIdent(M.hlc)} text NOT NULL,
  PRIMARY KEY (${key}),
  UNIQUE (${quoteIdent(M.scope)}, ${quoteIdent(M.key)})
)`;
}

async function reconcile(tx: Queryable, table: SharedTable, columns: Map<string, ExistingColumn>, logger: Logger): Promise<string[]> {
  const problems: string[] = [];
  const say = (message: string) => problems.push(`${SHARED_SCHEMA}.${table.name}: ${message}`);
  for (const meta of Object.values(M)) if (!columns.has(meta)) say(`lacks Syncline's column ${meta}; it was not created by Syncline`);
  for (const column of table.columns) {
    const found = columns.get(column.name);
    const wanted = pgTypeOfShared(column.type);
    const notNull = !column.nullable || table.key.includes(column.name);
    if (!found) {
      if (notNull) say(`column ${column.name} is declared NOT NULL but missing; add it with a default by hand, then restart`);
      else {
        await tx.exec(`ALTER TABLE ${sharedTableRef(table)} ADD COLUMN ${columnSql(table, column)}`);
        logger.info({ table: table.name, column: column.name }, 'shared column added');
      }
      continue;
    }
    if (found.data_type !== wanted) say(`column ${column.name} is ${found.data_type} but declared ${column.type} (${wanted})`);
    if ((found.is_nullable === 'NO') !== notNull) say(`column ${column.name} is ${found.is_nullable === 'NO' ? 'NOT NULL' : 'nullable'} but declared ${notNull ? 'NOT NULL' : 'nullable'}`);
  }
  const declared = new Set<string>([...table.columns.map((c) => c.name), ...Object.values(M)]);
  for (const column of columns.values()) {
    if (!declared.has(column.column_name) && column.is_nullable === 'NO' && column.column_default === null) {
      say(`column ${column.column_name} is not declared and is NOT NULL without a default, so no synced row could be written`);
    }
  }
  const key = await primaryKey(tx, table.name);
  const wantedKey = [M.scope, ...table.key];
  if (key.join(',') !== wantedKey.join(',')) say(`primary key is (${key.join(', ')}) but the declaration needs (${wantedKey.join(', ')})`);
  return problems;
}

async function primaryKey(tx: Queryable, table: string): Promise<string[]> {
  const { rows } = await tx.query<{ column_name: string }>(
    `SELECT a.attname AS column_name
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
      ORDER BY k.position`,
    [SHARED_SCHEMA, table],
  );
  return rows.map((r) => r.column_name);
}

function foreignKeyName(table: SharedTable, ref: SharedTable['references'][number]): string {
  const digest = createHash('sha256').update(JSON.stringify([table.name, ref.columns, ref.table])).digest('hex');
  return `syncline_fk_${digest.slice(0, 20)}`;
}

async function ensureForeignKey(tx: Queryable, table: SharedTable, ref: SharedTable['references'][number], parent: SharedTable): Promise<void> {
  const name = foreignKeyName(table, ref);
  const { rows } = await tx.query('SELECT 1 FROM pg_constraint WHERE conname = $1', [name]);
  if (rows.length > 0) return;
  const withScope = (columns: readonly string[]) => [M.scope, ...columns].map(quoteIdent).join(', ');
  await tx.exec(`ALTER TABLE ${sharedTableRef(table)} ADD CONSTRAINT ${quoteIdent(name)}
    FOREIGN KEY (${withScope(ref.columns)}) REFERENCES ${sharedTableRef(parent)} (${withScope(parent.key)})
    DEFERRABLE INITIALLY DEFERRED`);
}

/** Capture triggers on every synced table, and the retention they prune by. */
async function installCapture(tx: Queryable, config: SharedSyncConfig): Promise<void> {
  const { rows } = await tx.query<{ schema: string }>('SELECT current_schema() AS schema');
  const meta = rows[0]!.schema;
  for (const table of config.tables) await tx.exec(captureSql(table, { schema: tableSchema(table), name: table.name }, meta));
  await tx.query('DELETE FROM sync_retention');
  await tx.query('INSERT INTO sync_retention (scope, keep) SELECT * FROM unnest($1::text[], $2::int[])', [
    ['', ...Object.keys(config.retention.scopes)],
    [config.retention.bundles, ...Object.values(config.retention.scopes)],
  ]);
}
