import type { SharedTable } from '../../protocol/shared-sync.js';
import type { TableKey } from '../../protocol/schema.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalOrigins, JournalTables, TWO_WAY_HASH_PREFIX } from '../journal/journal-schema.js';
import { slotLayout } from '../journal/journal-slots.js';
import { ensureLocalTable, missingTableError } from './local-table.js';
import type { CapturedSchemas } from './pending-view.js';
import { SharedTables } from './shared-schema.js';
import { dropGuardStatements, guardTriggerStatements } from './shared-triggers.js';
import { dropCapture, installCapture, twoWayCapture } from './twoway-journal.js';

/**
 * Installs capture for the declared shared tables, in one IMMEDIATE transaction
 * so no app write falls between "rows that exist now" and "triggers that see the
 * next ones". Every shared table is captured into the journal; one that only
 * syncs down also gets its guard, so the only entries it ever has are remote.
 * A table captured for the first time that the device may push has its existing
 * rows journaled as the app's own (a snapshot): rows an app wrote before Syncline
 * arrived (a fresh install used offline) are pushed, never wiped by the first
 * hydration. Tables whose declaration changed get new triggers; tables no longer
 * declared lose theirs.
 */
export function installSharedCapture(driver: SqliteDriver, tables: readonly SharedTable[]): Promise<void> {
  return driver.writeTransaction(async (tx) => {
    const problems: string[] = [];
    for (const table of tables) problems.push(...(await ensureLocalTable(tx, table, tables)));
    if (problems.length > 0) throw missingTableError(problems);
    const installed = new Map((await tx.all<{ name: string; declaration: string }>(`SELECT name, declaration FROM ${SharedTables.captured}`)).map((r) => [r.name, r.declaration]));
    for (const table of tables) {
      const declaration = JSON.stringify(table);
      const before = installed.get(table.name);
      installed.delete(table.name);
      if (before === declaration) continue;
      for (const sql of dropGuardStatements(table.name)) await tx.exec(sql);
      const pushes = table.direction !== 'down';
      await installCapture(tx, await twoWayCapture(tx, table), before === undefined && pushes ? JournalOrigins.local : undefined);
      if (!pushes) for (const sql of guardTriggerStatements(table)) await tx.exec(sql);
      await tx.run(`INSERT INTO ${SharedTables.captured} (name, declaration, installed_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET declaration = excluded.declaration`, [
        table.name,
        declaration,
        new Date().toISOString(),
      ]);
    }
    for (const name of installed.keys()) {
      await dropCapture(tx, name);
      for (const sql of dropGuardStatements(name)) await tx.exec(sql);
      await tx.run(`DELETE FROM ${SharedTables.captured} WHERE name = ?`, [name]);
    }
  });
}

/** The schema records of the tables a device pushes (every declaration they had), for the pending view. */
export async function pushedSchemas(db: SqliteQueryable, tables: readonly SharedTable[]): Promise<CapturedSchemas> {
  const names = tables.filter((t) => t.direction !== 'down').map((t) => t.name);
  const rows = await db.all<{ id: bigint; tbl: string; columns: string; key: string }>(
    `SELECT id, tbl, columns, key FROM ${JournalTables.schemas} WHERE tbl IN (SELECT value FROM json_each(?)) AND substr(hash, 1, ?) = ?`,
    [JSON.stringify(names), TWO_WAY_HASH_PREFIX.length, TWO_WAY_HASH_PREFIX],
  );
  return new Map(rows.map((r) => [Number(r.id), { table: r.tbl, layout: slotLayout((JSON.parse(r.columns) as { name: string }[]).map((c) => c.name), JSON.parse(r.key) as TableKey) }]));
}
