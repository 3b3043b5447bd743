import type { Store } from '../store/store.js';
import { CAPTURE_PREFIX } from './capture-sql.js';
import { PROVISION_LOCK_KEY } from './provision.js';
import { quoteIdent as q } from '../identifiers.js';

export interface UninstallResult {
  /** Tables whose capture triggers were dropped, as schema.table. */
  tables: string[];
  functions: number;
}

/**
 * Drops every capture trigger and function Syncline installed, on any table of
 * the database, and nothing else: the rows, the tables and Syncline's own
 * bookkeeping stay. Taken under the provisioning lock, so a server starting at
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
    return { tables: [...new Set(triggers.map((t) => `${t.schema}.${t.table}`))], functions: functions.length };
  });
}
