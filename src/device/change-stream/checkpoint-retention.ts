import { SynclineError } from '../../protocol/errors.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from '../journal/journal-schema.js';
import { readState, writeState } from '../journal/journal-state.js';

/**
 * How long the journal waits for a lagging change-stream consumer. A checkpoint is
 * honoured by pruning only while it is at most `maxEntries` seqs behind the newest
 * entry and was written within `maxAgeMs`; beyond that the publisher prunes past it
 * and the consumer gets `checkpoint_expired` when it next reads, and re-bootstraps
 * with a snapshot. Without a limit one forgotten consumer would grow the journal
 * (and the file) forever.
 *
 * The limits live in the file (`_syncline_state`), not in one process's options,
 * because whoever prunes (the agent, in its own process) must apply the same rule
 * the consumers were promised.
 */

export interface CheckpointRetention {
  maxEntries: number;
  maxAgeMs: number;
}

export const DEFAULT_CHECKPOINT_RETENTION: CheckpointRetention = {
  maxEntries: 1_000_000,
  maxAgeMs: 7 * 24 * 60 * 60 * 1000,
};

const Keys = {
  maxEntries: 'checkpoint_retention_max_entries',
  maxAgeMs: 'checkpoint_retention_max_age_ms',
} as const;

function positive(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new SynclineError('invalid_config', `${field} must be a positive whole number, got ${value}`, { field });
  return value;
}

async function stored(db: SqliteQueryable, key: string): Promise<number | undefined> {
  const text = await readState(db, key);
  const value = text === undefined ? NaN : Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

export async function readCheckpointRetention(db: SqliteQueryable): Promise<CheckpointRetention> {
  return {
    maxEntries: (await stored(db, Keys.maxEntries)) ?? DEFAULT_CHECKPOINT_RETENTION.maxEntries,
    maxAgeMs: (await stored(db, Keys.maxAgeMs)) ?? DEFAULT_CHECKPOINT_RETENTION.maxAgeMs,
  };
}

/** Stores the limits given; the others keep their current value. The journal must exist. */
export async function setCheckpointRetention(driver: SqliteDriver, retention: Partial<CheckpointRetention>): Promise<CheckpointRetention> {
  return driver.writeTransaction(async (tx) => {
    if (retention.maxEntries !== undefined) await writeState(tx, Keys.maxEntries, String(positive(retention.maxEntries, 'retention.maxEntries')));
    if (retention.maxAgeMs !== undefined) await writeState(tx, Keys.maxAgeMs, String(positive(retention.maxAgeMs, 'retention.maxAgeMs')));
    return readCheckpointRetention(tx);
  });
}

/**
 * The lowest checkpoint pruning must still honour, or undefined when none is within
 * the retention. `newestSeq` is the journal's newest seq. updated_at is written by
 * toISOString, so text comparison is time comparison.
 */
export async function lowestHonouredCheckpoint(db: SqliteQueryable, newestSeq: number, now = Date.now()): Promise<number | undefined> {
  const retention = await readCheckpointRetention(db);
  const row = await db.get<{ seq: bigint | null }>(`SELECT min(seq) AS seq FROM ${JournalTables.checkpoints} WHERE seq >= ? AND updated_at >= ?`, [
    BigInt(newestSeq - retention.maxEntries),
    new Date(now - retention.maxAgeMs).toISOString(),
  ]);
  return row!.seq === null ? undefined : Number(row!.seq);
}
