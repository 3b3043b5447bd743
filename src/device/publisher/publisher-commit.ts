import { advanceCursor } from '../journal/cursors.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { pruneAcked } from '../journal/journal-prune.js';
import { insertQuarantine, type QuarantineRecord } from '../journal/quarantine.js';

/**
 * The publisher's only writes. Each moves one table's cursor and prunes what it
 * passed in the same transaction, so a crash leaves either both or neither.
 */

/** The cloud holds the table's entries up to `lastSeq`. */
export async function recordAck(driver: SqliteDriver, table: string, lastSeq: number, epoch: string): Promise<void> {
  await driver.writeTransaction(async (tx) => {
    await advanceCursor(tx, table, lastSeq, epoch);
    await pruneAcked(tx, table, lastSeq);
  });
}

/** The entries of `record` will never be accepted: keep them aside with the reason and move past them. */
export async function recordRejection(driver: SqliteDriver, record: QuarantineRecord, epoch: string): Promise<void> {
  await driver.writeTransaction(async (tx) => {
    await insertQuarantine(tx, record);
    await advanceCursor(tx, record.table, record.lastSeq, epoch);
    await pruneAcked(tx, record.table, record.lastSeq);
  });
}
