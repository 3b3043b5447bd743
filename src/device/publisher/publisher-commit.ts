import { advanceCursor } from '../journal/cursors.js';
import { immediate, type DeviceDb } from '../journal/device-db.js';
import { pruneAcked } from '../journal/journal-prune.js';
import { insertQuarantine, type QuarantineRecord } from '../journal/quarantine.js';

/**
 * The publisher's only writes. Each moves one table's cursor and prunes what it
 * passed in the same transaction, so a crash leaves either both or neither.
 */

/** The cloud holds the table's entries up to `lastSeq`. */
export function recordAck(db: DeviceDb, table: string, lastSeq: number, epoch: string): void {
  immediate(db, () => {
    advanceCursor(db, table, lastSeq, epoch);
    pruneAcked(db, table, lastSeq);
  });
}

/** The entries of `record` will never be accepted: keep them aside with the reason and move past them. */
export function recordRejection(db: DeviceDb, record: QuarantineRecord, epoch: string): void {
  immediate(db, () => {
    insertQuarantine(db, record);
    advanceCursor(db, record.table, record.lastSeq, epoch);
    pruneAcked(db, record.table, record.lastSeq);
  });
}
