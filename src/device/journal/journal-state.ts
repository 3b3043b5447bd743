import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { immediate, type DeviceDb } from './device-db.js';
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

function existingTables(db: DeviceDb): Set<string> {
  const rows = db
    .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${OWN_TABLES.map(() => '?').join(', ')})`)
    .all(...OWN_TABLES) as { name: string }[];
  return new Set(rows.map((r) => r.name));
}

export function readState(db: DeviceDb, key: string): string | undefined {
  const row = db.prepare(`SELECT value FROM ${JournalTables.state} WHERE key = ?`).get(key) as { value: string } | undefined;
  return row?.value;
}

export function writeState(db: DeviceDb, key: string, value: string): void {
  db.prepare(`INSERT INTO ${JournalTables.state} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(key, value);
}

export function readEpoch(db: DeviceDb): string {
  const epoch = readState(db, StateKeys.journalEpoch);
  if (!epoch) throw new SynclineError('capture_failed', 'the journal has no epoch; capture is not installed', {});
  return epoch;
}

/** Creates whatever of Syncline's tables is missing and returns the epoch, starting a new one when the journal was lost. */
export function ensureJournal(db: DeviceDb): JournalStatus {
  if (existingTables(db).size === OWN_TABLES.length) {
    const epoch = readState(db, StateKeys.journalEpoch);
    const layout = readState(db, StateKeys.layoutVersion);
    if (epoch && layout === String(JOURNAL_LAYOUT_VERSION) && !journalBehindCursors(db)) return { epoch, recreated: false };
  }
  return immediate(db, () => {
    const before = existingTables(db);
    db.exec(JOURNAL_DDL);
    const layout = readState(db, StateKeys.layoutVersion);
    if (layout !== undefined && Number(layout) > JOURNAL_LAYOUT_VERSION) {
      throw new SynclineError('capture_failed', `the file was set up by a newer Syncline (journal layout ${layout}, this agent knows ${JOURNAL_LAYOUT_VERSION})`, {});
    }
    writeState(db, StateKeys.layoutVersion, String(JOURNAL_LAYOUT_VERSION));
    const epoch = before.has(JournalTables.state) ? readState(db, StateKeys.journalEpoch) : undefined;
    // Pruning always keeps the newest entry, so a journal whose newest seq is below an
    // acked cursor was truncated behind our back and its seqs are being reused.
    const hadJournal = before.has(JournalTables.journal) && !journalBehindCursors(db);
    if (epoch && hadJournal) return { epoch, recreated: false };
    const recreated = epoch !== undefined || before.has(JournalTables.tables);
    const fresh = uuidv7();
    writeState(db, StateKeys.journalEpoch, fresh);
    if (recreated) {
      // Seqs restart in a new journal table, so old cursors would hide new entries, and
      // every table is captured again (with a snapshot) so the new epoch is complete.
      db.exec(`DELETE FROM ${JournalTables.cursors}; DELETE FROM ${JournalTables.tables};`);
      db.exec(`DELETE FROM ${JournalTables.journal} WHERE schema_id NOT IN (SELECT id FROM ${JournalTables.schemas})`);
    }
    return { epoch: fresh, recreated };
  });
}

/** Starts a new epoch over the same journal; the caller appends the snapshots that make it complete. Call inside a transaction. */
export function startNewEpoch(db: DeviceDb): string {
  const epoch = uuidv7();
  writeState(db, StateKeys.journalEpoch, epoch);
  db.prepare(`UPDATE ${JournalTables.cursors} SET journal_epoch = ?, updated_at = ?`).run(epoch, new Date().toISOString());
  return epoch;
}

export function journalBehindCursors(db: DeviceDb): boolean {
  const row = db.prepare(`SELECT max(acked_seq) AS acked FROM ${JournalTables.cursors}`).get() as { acked: bigint | null };
  return row.acked !== null && maxJournalSeq(db) < Number(row.acked);
}

export function maxJournalSeq(db: DeviceDb): number {
  const row = db.prepare(`SELECT max(seq) AS seq FROM ${JournalTables.journal}`).get() as { seq: bigint | null };
  return row.seq === null ? 0 : Number(row.seq);
}

/** Widens the journal to at least `count` value slots (ALTER TABLE ADD COLUMN only touches the schema, not the rows). */
export function ensureJournalSlots(db: DeviceDb, count: number, table: string): void {
  if (count > MAX_SLOTS) {
    throw new SynclineError('capture_failed', `table needs ${count} journal value slots, more than the ${MAX_SLOTS} a SQLite table can have (turn off before-images for it)`, { table });
  }
  const have = journalColumns(db).filter((name) => name.startsWith(SLOT_PREFIX)).length;
  for (let i = have; i < count; i++) db.exec(`ALTER TABLE ${JournalTables.journal} ADD COLUMN ${slotName(i)}`);
}

/** The journal table's column names, in table order. */
export function journalColumns(db: DeviceDb): string[] {
  return db.prepare(`SELECT name FROM pragma_table_info('${JournalTables.journal}')`).pluck().all() as string[];
}
