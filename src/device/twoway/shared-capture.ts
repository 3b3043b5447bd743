import type { SharedTable } from '../../protocol/shared-sync.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
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
      for (const sql of [...dropSharedTriggerStatements(table.name), ...sharedTriggerStatements(table)]) await tx.exec(sql);
      if (before === undefined && table.direction !== 'down') await tx.exec(markAllDirtyStatement(table));
      await tx.run(`INSERT INTO ${SharedTables.captured} (name, declaration, installed_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET declaration = excluded.declaration`, [
        table.name,
        declaration,
        new Date().toISOString(),
      ]);
    }
    for (const name of installed.keys()) {
      for (const sql of dropSharedTriggerStatements(name)) await tx.exec(sql);
      await tx.run(`DELETE FROM ${SharedTables.captured} WHERE name = ?`, [name]);
    }
  });
}
