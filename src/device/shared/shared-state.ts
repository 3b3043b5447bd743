import type { DeviceDb } from '../device-db.js';
import { SHARED_DDL, SharedTables } from './shared-schema.js';

/** Creates the two-way sync tables in the file (idempotent). */
export function ensureSharedSchema(db: DeviceDb): void {
  db.exec(SHARED_DDL);
}

export function readSharedState(db: DeviceDb, key: string): string | undefined {
  const row = db.prepare(`SELECT value FROM ${SharedTables.state} WHERE key = ?`).get(key) as { value: string } | undefined;
  return row?.value;
}

export function writeSharedState(db: DeviceDb, key: string, value: string): void {
  db.prepare(`INSERT INTO ${SharedTables.state} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(key, value);
}

export function deleteSharedState(db: DeviceDb, key: string): void {
  db.prepare(`DELETE FROM ${SharedTables.state} WHERE key = ?`).run(key);
}

/**
 * Runs `fn` with capture suppressed: in one IMMEDIATE transaction holding the
 * applying marker, which the triggers check. Deferred foreign keys let a bundle
 * land in any order, as on the server.
 */
export function withCaptureSuppressed<T>(db: DeviceDb, fn: () => T): T {
  return db
    .transaction(() => {
      beginSuppressed(db);
      const result = fn();
      endSuppressed(db);
      return result;
    })
    .immediate();
}

/** The parts of withCaptureSuppressed, for a transaction that awaits between statements (hydration). */
export function beginSuppressed(db: DeviceDb): void {
  db.pragma('defer_foreign_keys = ON');
  db.prepare(`INSERT INTO ${SharedTables.applying} (applying) VALUES (1)`).run();
}

export function endSuppressed(db: DeviceDb): void {
  db.prepare(`DELETE FROM ${SharedTables.applying}`).run();
}

/** Tables two-way sync captures in this file; edge capture leaves them to it. */
export function sharedTableNames(db: DeviceDb): Set<string> {
  const present = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(SharedTables.captured);
  if (!present) return new Set();
  return new Set((db.prepare(`SELECT name FROM ${SharedTables.captured}`).all() as { name: string }[]).map((r) => r.name));
}
