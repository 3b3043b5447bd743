import type { SharedTable } from '../../protocol/shared-sync.js';
import { immediate, type DeviceDb } from '../device-db.js';
import { ensureLocalTable, missingTableError } from './local-table.js';
import { SharedTables } from './shared-schema.js';
import { dropSharedTriggerStatements, markAllDirtyStatement, sharedTriggerStatements } from './shared-triggers.js';

/**
 * Installs capture for the declared shared tables, in one IMMEDIATE transaction
 * so no app write falls between "rows that exist now" and "triggers that see the
 * next ones". A table captured for the first time has its existing rows marked
 * dirty: rows an app wrote before Syncline arrived (a fresh install used offline)
 * are pushed, never wiped by the first hydration. Tables whose declaration
 * changed get new triggers; tables no longer declared lose theirs.
 */
export function installSharedCapture(db: DeviceDb, tables: readonly SharedTable[]): void {
  immediate(db, () => {
    const problems = tables.flatMap((t) => ensureLocalTable(db, t, tables));
    if (problems.length > 0) throw missingTableError(problems);
    const installed = new Map(
      (db.prepare(`SELECT name, declaration FROM ${SharedTables.captured}`).all() as { name: string; declaration: string }[]).map((r) => [r.name, r.declaration]),
    );
    for (const table of tables) {
      const declaration = JSON.stringify(table);
      const before = installed.get(table.name);
      installed.delete(table.name);
      if (before === declaration) continue;
      for (const sql of [...dropSharedTriggerStatements(table.name), ...sharedTriggerStatements(table)]) db.exec(sql);
      if (before === undefined && table.direction !== 'down') db.exec(markAllDirtyStatement(table));
      db.prepare(`INSERT INTO ${SharedTables.captured} (name, declaration, installed_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET declaration = excluded.declaration`).run(
        table.name,
        declaration,
        new Date().toISOString(),
      );
    }
    for (const name of installed.keys()) {
      for (const sql of dropSharedTriggerStatements(name)) db.exec(sql);
      db.prepare(`DELETE FROM ${SharedTables.captured} WHERE name = ?`).run(name);
    }
  });
}
