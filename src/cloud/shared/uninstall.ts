import type { Store } from '../store/store.js';
import { CAPTURE_PREFIX } from './capture-sql.js';
import { BOOKKEEPING } from './business-tables.js';
import { PROVISION_LOCK_KEY } from './provision.js';
import { MetaColumns as M, SHARED_SCHEMA } from './shared-columns.js';
import { quoteIdent as q } from '../identifiers.js';

export interface UninstallResult {
  /** Tables whose capture triggers were dropped, as schema.table. */
  tables: string[];
  functions: number;
  /** Business tables (outside syncline_shared) whose bookkeeping columns were dropped, as schema.table. */
  bookkeeping_removed: string[];
}

/**
 * Drops every capture trigger and function Syncline installed, on any table of
 * the database, and the bookkeeping columns (`_syncline_key`, `_version`,
 * `_source`, `_hlc`, with their unique index) `--provision` added to business
 * tables in the application's own schemas: those tables are left as they were
 * before Syncline, every row and column of the application kept. Tables Syncline
 * created in syncline_shared keep theirs (they are Syncline's tables). Taken under the provisioning lock, so a server starting at
 * the same moment does not interleave; a server started later installs capture
 * again.
 */
export async function uninstallCapture(store: Store): Promise<UninstallResult> {
  return store.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [PROVISION_LOCK_KEY]);
    const { rows: triggers } = await tx.query<{ schema: string; table: string; trigger: string }>(
      `SELECT n.nspname AS schema, c.relname AS table, t.tgname AS trigger
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND starts_with(t.tgname, $1) ORDER BY 1, 2, 3`,
      [CAPTURE_PREFIX],
    );
    for (const t of triggers) await tx.exec(`DROP TRIGGER ${q(t.trigger)} ON ${q(t.schema)}.${q(t.table)}`);
    const { rows: functions } = await tx.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE starts_with(p.proname, $1)`,
      [CAPTURE_PREFIX],
    );
    for (const f of functions) await tx.exec(`DROP FUNCTION ${q(f.schema)}.${q(f.name)}()`);
    // A business table is recognized by the key column; dropping the columns drops their index with them.
    const { rows: business } = await tx.query<{ schema: string; table: string }>(
      `SELECT c.table_schema AS schema, c.table_name AS table FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
        WHERE c.column_name = $1 AND c.table_schema <> $2 ORDER BY 1, 2`,
      [M.key, SHARED_SCHEMA],
    );
    for (const t of business) {
      await tx.exec(`ALTER TABLE ${q(t.schema)}.${q(t.table)} ${BOOKKEEPING.map(([name]) => `DROP COLUMN IF EXISTS ${q(name)}`).join(', ')}`);
    }
    return {
      tables: [...new Set(triggers.map((t) => `${t.schema}.${t.table}`))],
      functions: functions.length,
      bookkeeping_removed: business.map((t) => `${t.schema}.${t.table}`),
    };
  });
}
