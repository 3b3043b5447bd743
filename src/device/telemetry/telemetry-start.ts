import type { Logger } from 'pino';
import type { Transport } from '../../transport/transport.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { openCursor } from './telemetry-cursor.js';
import { JournalTables } from '../journal/journal-schema.js';
import type { PublisherOptions } from '../publisher/publisher-options.js';
import { TelemetryPublisher, type TelemetryPublisherOptions } from './telemetry-publisher.js';
import { resolveTelemetryTable, type TelemetrySpec, type TelemetryTable } from './telemetry-table.js';

/**
 * Updates and deletes of a telemetry table are not shipped (there are no
 * triggers to see them). A table that was captured as rows shows in its journal
 * whether the app changes rows it wrote; then switching loses those changes, and
 * the operator is told so.
 */
export async function changedRowsInJournal(db: SqliteQueryable, table: string): Promise<number> {
  const exists = await db.get("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?", [JournalTables.journal]);
  if (!exists) return 0;
  const row = await db.get<{ n: bigint }>(
    `SELECT count(*) AS n FROM ${JournalTables.journal} j JOIN ${JournalTables.schemas} s ON s.id = j.schema_id WHERE s.tbl = ? AND substr(j.op, 1, 1) IN ('U', 'D')`,
    [table],
  );
  return Number(row!.n);
}

/** Resolves the telemetry tables against the file and opens their cursors; a table that cannot be shipped throws here. */
export async function startTelemetry(db: SqliteDriver, specs: readonly TelemetrySpec[], transport: Transport, options: PublisherOptions, pollIntervalMs: number, log: Logger, flow: Pick<TelemetryPublisherOptions, 'isPaused' | 'onControls' | 'once' | 'onSettled'> = {}): Promise<TelemetryPublisher> {
  const tables: TelemetryTable[] = [];
  for (const spec of specs) tables.push(await resolveTelemetryTable(db, spec));
  for (const t of tables) {
    await openCursor(db, t.table, t.timeColumn);
    const changed = await changedRowsInJournal(db, t.table);
    if (changed > 0) {
      log.warn({ table: t.table, updates_and_deletes: changed }, 'this table is updated or deleted from by the app: as a telemetry table only its inserts are shipped, later updates and deletes never reach the cloud');
    }
  }
  return new TelemetryPublisher({ db, transport, tables, options, pollIntervalMs, logger: log, ...flow });
}
