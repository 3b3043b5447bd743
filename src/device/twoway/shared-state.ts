import type { DeviceDb } from '../journal/device-db.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { SHARED_DDL, SharedTables } from './shared-schema.js';

/** Creates the two-way sync tables in the file (idempotent). */
export async function ensureSharedSchema(db: SqliteQueryable): Promise<void> {
  await db.exec(SHARED_DDL);
}

export async function readSharedState(db: SqliteQueryable, key: string): Promise<string | undefined> {
  const row = await db.get<{ value: string }>(`SELECT value FROM ${SharedTables.state} WHERE key = ?`, [key]);
  return row?.value;
}

export async function writeSharedState(db: SqliteQueryable, key: string, value: string): Promise<void> {
  await db.run(`INSERT INTO ${SharedTables.state} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
}

export async function deleteSharedState(db: SqliteQueryable, key: string): Promise<void> {
  await db.run(`DELETE FROM ${SharedTables.state} WHERE key = ?`, [key]);
}

/**
 * Runs `fn` with capture suppressed: in one IMMEDIATE transaction holding the
 * applying marker, which the triggers check. Deferred foreign keys let a bundle
 * land in any order, as on the server.
 */
export function withCaptureSuppressed<T>(driver: SqliteDriver, fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
  return driver.writeTransaction(async (tx) => {
    await beginSuppressed(tx);
    const result = await fn(tx);
    await endSuppressed(tx);
    return result;
  });
}

async function beginSuppressed(tx: SqliteQueryable): Promise<void> {
  await tx.exec('PRAGMA defer_foreign_keys = ON');
  await tx.run(`INSERT INTO ${SharedTables.applying} (applying) VALUES (1)`);
}

async function endSuppressed(tx: SqliteQueryable): Promise<void> {
  await tx.run(`DELETE FROM ${SharedTables.applying}`);
}

/** Tables two-way sync captures in this file; edge capture (still on the synchronous connection) leaves them to it. */
export function sharedTableNames(db: DeviceDb): Set<string> {
  const present = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(SharedTables.captured);
  if (!present) return new Set();
  return new Set((db.prepare(`SELECT name FROM ${SharedTables.captured}`).all() as { name: string }[]).map((r) => r.name));
}
