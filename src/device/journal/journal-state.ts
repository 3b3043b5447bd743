import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { JOURNAL_DDL, JOURNAL_LAYOUT_VERSION, JournalTables, StateKeys } from './journal-schema.js';
import { MAX_SLOTS, SLOT_PREFIX, slotName } from './journal-slots.js';

/**
 * Syncline's tables in the file and the journal epoch. The epoch names one
 * continuous run of journal seqs: the cloud keys what it has seen by (epoch, seq),
 * so whenever seqs could repeat or go back (the journal was recreated, the file
 * was restored from a backup) the device must start a new epoch.
 */

export interface JournalStatus {
  epoch: string;
  /** The journal table was missing although Syncline had been here before: a new epoch was started and every table will be snapshotted again. */
  recreated: boolean;
}

const OWN_TABLES = Object.values(JournalTables);

async function existingTables(db: SqliteQueryable): Promise<Set<string>> {
  const rows = await db.all<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${OWN_TABLES.map(() => '?').join(', ')})`, OWN_TABLES);
  return new Set(rows.map((r) => r.name));
}

export async function readState(db: SqliteQueryable, key: string): Promise<string | undefined> {
  const row = await db.get<{ value: string }>(`SELECT value FROM ${JournalTables.state} WHERE key = ?`, [key]);
  return row?.value;
}

export async function writeState(db: SqliteQueryable, key: string, value: string): Promise<void> {
  await db.run(`INSERT INTO ${JournalTables.state} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
}

export async function readEpoch(db: SqliteQueryable): Promise<string> {
  const epoch = await readState(db, StateKeys.journalEpoch);
  if (!epoch) throw new SynclineError('capture_failed', 'the journal has no epoch; capture is not installed', {});
  return epoch;
}

/** Creates whatever of Syncline's tables is missing and returns the epoch, starting a new one when the journal was lost. */
export async function ensureJournal(driver: SqliteDriver): Promise<JournalStatus> {
  if ((await existingTables(driver)).size === OWN_TABLES.length) {
    const epoch = await readState(driver, StateKeys.journalEpoch);
    const layout = await readState(driver, StateKeys.layoutVersion);
    if (epoch && layout === String(JOURNAL_LAYOUT_VERSION) && !(await journalBehindCursors(driver))) return { epoch, recreated: false };
  }
  return driver.writeTransaction(async (tx) => {
    const before = await existingTables(tx);
    await tx.exec(JOURNAL_DDL);
    const layout = await readState(tx, StateKeys.layoutVersion);
    if (layout !== undefined && Number(layout) > JOURNAL_LAYOUT_VERSION) {
      throw new SynclineError('capture_failed', `the file was set up by a newer Syncline (journal layout ${layout}, this agent knows ${JOURNAL_LAYOUT_VERSION})`, {});
    }
    await writeState(tx, StateKeys.layoutVersion, String(JOURNAL_LAYOUT_VERSION));
    const epoch = before.has(JournalTables.state) ? await readState(tx, StateKeys.journalEpoch) : undefined;
    // Pruning always keeps the newest entry, so a journal whose newest seq is below an
    // acked cursor was truncated behind our back and its seqs are being reused.
    const hadJournal = before.has(JournalTables.journal) && !(await journalBehindCursors(tx));
    if (epoch && hadJournal) return { epoch, recreated: false };
    const recreated = epoch !== undefined || before.has(JournalTables.tables);
    const fresh = uuidv7();
    await writeState(tx, StateKeys.journalEpoch, fresh);
    if (recreated) {
      // Seqs restart in a new journal table, so old cursors would hide new entries, and
      // every table is captured again (with a snapshot) so the new epoch is complete.
      await tx.exec(`DELETE FROM ${JournalTables.cursors}; DELETE FROM ${JournalTables.tables};`);
      await tx.exec(`DELETE FROM ${JournalTables.journal} WHERE schema_id NOT IN (SELECT id FROM ${JournalTables.schemas})`);
    }
    return { epoch: fresh, recreated };
  });
}

/** Starts a new epoch over the same journal; the caller appends the snapshots that make it complete. Call inside a transaction. */
export async function startNewEpoch(tx: SqliteQueryable): Promise<string> {
  const epoch = uuidv7();
  await writeState(tx, StateKeys.journalEpoch, epoch);
  await tx.run(`UPDATE ${JournalTables.cursors} SET journal_epoch = ?, updated_at = ?`, [epoch, new Date().toISOString()]);
  return epoch;
}

export async function journalBehindCursors(db: SqliteQueryable): Promise<boolean> {
  const row = await db.get<{ acked: bigint | null }>(`SELECT max(acked_seq) AS acked FROM ${JournalTables.cursors}`);
  return row!.acked !== null && (await maxJournalSeq(db)) < Number(row!.acked);
}

export async function maxJournalSeq(db: SqliteQueryable): Promise<number> {
  const row = await db.get<{ seq: bigint | null }>(`SELECT max(seq) AS seq FROM ${JournalTables.journal}`);
  return row!.seq === null ? 0 : Number(row!.seq);
}

/** Widens the journal to at least `count` value slots (ALTER TABLE ADD COLUMN only touches the schema, not the rows). Call inside a write transaction. */
export async function ensureJournalSlots(tx: SqliteQueryable, count: number, table: string): Promise<void> {
  if (count > MAX_SLOTS) {
    throw new SynclineError('capture_failed', `table needs ${count} journal value slots, more than the ${MAX_SLOTS} a SQLite table can have (turn off before-images for it)`, { table });
  }
  const have = (await journalColumns(tx)).filter((name) => name.startsWith(SLOT_PREFIX)).length;
  for (let i = have; i < count; i++) await tx.exec(`ALTER TABLE ${JournalTables.journal} ADD COLUMN ${slotName(i)}`);
}

/** The journal table's column names, in table order. */
export async function journalColumns(db: SqliteQueryable): Promise<string[]> {
  const rows = await db.all<{ name: string }>(`SELECT name FROM pragma_table_info('${JournalTables.journal}')`);
  return rows.map((r) => r.name);
}
