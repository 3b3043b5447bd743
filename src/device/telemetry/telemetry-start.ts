import type { Logger } from 'pino';
import type { Transport } from '../../transport/transport.js';
import type { DeviceDb } from '../journal/device-db.js';
import { JournalTables } from '../journal/journal-schema.js';
import type { PublisherOptions } from '../publisher/publisher-options.js';
import { TelemetryPublisher, type TelemetryPublisherOptions } from './telemetry-publisher.js';
import { resolveTelemetryTable, type TelemetrySpec } from './telemetry-table.js';

/**
 * Updates and deletes of a telemetry table are not shipped (there are no
 * triggers to see them). A table that was captured as rows shows in its journal
 * whether the app changes rows it wrote; then switching loses those changes, and
 * the operator is told so.
 */
export function changedRowsInJournal(db: DeviceDb, table: string): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(JournalTables.journal);
  if (!exists) return 0;
  const n = db
    .prepare(`SELECT count(*) FROM ${JournalTables.journal} j JOIN ${JournalTables.schemas} s ON s.id = j.schema_id WHERE s.tbl = ? AND substr(j.op, 1, 1) IN ('U', 'D')`)
    .pluck(true)
    .get(table) as bigint;
  return Number(n);
}

export function startTelemetry(db: DeviceDb, specs: readonly TelemetrySpec[], transport: Transport, options: PublisherOptions, pollIntervalMs: number, log: Logger, flow: Pick<TelemetryPublisherOptions, 'isPaused' | 'onControls'> = {}): TelemetryPublisher {
  const tables = specs.map((spec) => resolveTelemetryTable(db, spec));
  for (const t of tables) {
    const changed = changedRowsInJournal(db, t.table);
    if (changed > 0) {
      log.warn({ table: t.table, updates_and_deletes: changed }, 'this table is updated or deleted from by the app: as a telemetry table only its inserts are shipped, later updates and deletes never reach the cloud');
    }
  }
  return new TelemetryPublisher({ db, transport, tables, options, pollIntervalMs, logger: log, ...flow });
}
