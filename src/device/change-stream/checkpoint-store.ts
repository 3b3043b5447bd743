import { SynclineError } from '../../protocol/errors.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from '../journal/journal-schema.js';

/**
 * Named change-stream checkpoints in `_syncline_checkpoints`: the journal seq up to
 * which a consumer has acknowledged every change. Pruning keeps every entry above
 * the lowest checkpoint (within the retention, see checkpoint-retention.ts), so a
 * consumer that restarts resumes exactly where it acknowledged.
 *
 * One consumer per name: two streams writing the same checkpoint would each move
 * it past changes the other has not processed.
 */

export interface Checkpoint {
  name: string;
  seq: number;
  /** ISO time of the last write; retention ages checkpoints by it. */
  updatedAt: string;
}

const C = JournalTables.checkpoints;
const NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;
const GUARD_SUFFIX = '~bootstrap';

/** Checkpoint names are what people type on a command line; `~` is kept for Syncline's own guard rows. */
export function validCheckpointName(name: string): string {
  if (!NAME.test(name)) {
    throw new SynclineError('invalid_config', `checkpoint names are 1-128 characters of A-Z a-z 0-9 _ . : / -, got ${JSON.stringify(name).slice(0, 60)}`, { field: 'checkpoint' });
  }
  return name;
}

/**
 * The row that holds back pruning while a named consumer bootstraps from a
 * snapshot. The checkpoint itself is written only when the whole snapshot has been
 * acknowledged, so a consumer that stops halfway bootstraps again instead of
 * resuming with half a snapshot; the guard keeps the live entries after the
 * snapshot meanwhile.
 */
export function bootstrapGuardName(name: string): string {
  return `${name}${GUARD_SUFFIX}`;
}

export async function readCheckpoint(db: SqliteQueryable, name: string): Promise<Checkpoint | undefined> {
  const row = await db.get<{ name: string; seq: bigint; updated_at: string }>(`SELECT name, seq, updated_at FROM ${C} WHERE name = ?`, [name]);
  return row ? { name: row.name, seq: Number(row.seq), updatedAt: row.updated_at } : undefined;
}

export async function listCheckpoints(db: SqliteQueryable): Promise<Checkpoint[]> {
  const rows = await db.all<{ name: string; seq: bigint; updated_at: string }>(`SELECT name, seq, updated_at FROM ${C} ORDER BY name`);
  return rows.map((r) => ({ name: r.name, seq: Number(r.seq), updatedAt: r.updated_at }));
}

async function upsert(tx: SqliteQueryable, name: string, seq: number, now: number): Promise<void> {
  await tx.run(`INSERT INTO ${C} (name, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`, [
    name,
    BigInt(seq),
    new Date(now).toISOString(),
  ]);
}

export async function writeCheckpoint(driver: SqliteDriver, name: string, seq: number, now = Date.now()): Promise<void> {
  await driver.writeTransaction(async (tx) => {
    await upsert(tx, name, seq, now);
    await tx.run(`DELETE FROM ${C} WHERE name = ?`, [bootstrapGuardName(name)]);
  });
}

export async function writeBootstrapGuard(driver: SqliteDriver, name: string, seq: number, now = Date.now()): Promise<void> {
  await driver.writeTransaction((tx) => upsert(tx, bootstrapGuardName(name), seq, now));
}

export async function deleteBootstrapGuard(db: SqliteQueryable, name: string): Promise<void> {
  await db.run(`DELETE FROM ${C} WHERE name = ?`, [bootstrapGuardName(name)]);
}

export async function deleteCheckpoint(driver: SqliteDriver, name: string): Promise<boolean> {
  return driver.writeTransaction(async (tx) => {
    await deleteBootstrapGuard(tx, name);
    return (await tx.run(`DELETE FROM ${C} WHERE name = ?`, [name])).changes > 0;
  });
}
