import { SynclineError } from '../../protocol/errors.js';
import { immediate, type DeviceDb } from '../journal/device-db.js';
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

export function readCheckpoint(db: DeviceDb, name: string): Checkpoint | undefined {
  const row = db.prepare(`SELECT name, seq, updated_at FROM ${C} WHERE name = ?`).get(name) as { name: string; seq: bigint; updated_at: string } | undefined;
  return row ? { name: row.name, seq: Number(row.seq), updatedAt: row.updated_at } : undefined;
}

export function listCheckpoints(db: DeviceDb): Checkpoint[] {
  const rows = db.prepare(`SELECT name, seq, updated_at FROM ${C} ORDER BY name`).all() as { name: string; seq: bigint; updated_at: string }[];
  return rows.map((r) => ({ name: r.name, seq: Number(r.seq), updatedAt: r.updated_at }));
}

function upsert(db: DeviceDb, name: string, seq: number, now: number): void {
  db.prepare(`INSERT INTO ${C} (name, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`).run(
    name,
    BigInt(seq),
    new Date(now).toISOString(),
  );
}

/** Sets the checkpoint to `seq` (also backwards: `from` may rewind it) and drops its bootstrap guard, in one transaction. */
export function writeCheckpoint(db: DeviceDb, name: string, seq: number, now = Date.now()): void {
  immediate(db, () => {
    upsert(db, name, seq, now);
    db.prepare(`DELETE FROM ${C} WHERE name = ?`).run(bootstrapGuardName(name));
  });
}

/** Holds back pruning above `seq` while `name` bootstraps. */
export function writeBootstrapGuard(db: DeviceDb, name: string, seq: number, now = Date.now()): void {
  immediate(db, () => upsert(db, bootstrapGuardName(name), seq, now));
}

export function deleteBootstrapGuard(db: DeviceDb, name: string): void {
  db.prepare(`DELETE FROM ${C} WHERE name = ?`).run(bootstrapGuardName(name));
}

/** Forgets a consumer: its entries become prunable. Returns whether it existed. */
export function deleteCheckpoint(db: DeviceDb, name: string): boolean {
  return immediate(db, () => {
    deleteBootstrapGuard(db, name);
    return db.prepare(`DELETE FROM ${C} WHERE name = ?`).run(name).changes > 0;
  });
}
