import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from './journal-schema.js';

/** A batch (or journal range) the cloud refused, or that could not even be built, kept with the reason. */
export interface QuarantineRecord {
  table: string;
  batchId: string;
  firstSeq: number;
  lastSeq: number;
  code: string;
  message: string;
  /** The batch as it would have been sent (JSON), or the raw entries when it could not be built. */
  payload: string;
}

/** Call inside the transaction that moves the table's cursor past the range. */
export async function insertQuarantine(tx: SqliteQueryable, record: QuarantineRecord): Promise<void> {
  await tx.run(`INSERT INTO ${JournalTables.quarantine} (tbl, batch_id, first_seq, last_seq, error_code, message, batch, quarantined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [
    record.table,
    record.batchId,
    BigInt(record.firstSeq),
    BigInt(record.lastSeq),
    record.code,
    record.message,
    record.payload,
    new Date().toISOString(),
  ]);
}

export async function countQuarantined(db: SqliteQueryable): Promise<number> {
  const row = await db.get<{ n: bigint }>(`SELECT count(*) AS n FROM ${JournalTables.quarantine}`);
  return Number(row!.n);
}
