import { uuidv7 } from 'uuidv7';
import { TELEMETRY_BATCH_FORMAT_VERSION } from '../../src/protocol/constants.js';
import { affinityOf, schemaFingerprint, type ColumnInfo } from '../../src/protocol/schema.js';
import { parseTelemetryBatch, type TelemetryBatch } from '../../src/protocol/telemetry-batch.js';
import { encodeValue } from '../../src/protocol/values.js';

/** A (ts INTEGER, temp REAL) telemetry table, time column ts in ms. */
export const READING_COLUMNS: ColumnInfo[] = [
  { name: 'ts', declared_type: 'INTEGER', affinity: affinityOf('INTEGER'), pk: 0, notnull: false, has_default: false },
  { name: 'temp', declared_type: 'REAL', affinity: affinityOf('REAL'), pk: 0, notnull: false, has_default: false },
];

/** A validated telemetry batch of `count` readings from seq `from`, one second apart from `startMs`; `afterSeq` as a device sends it behind an unacked batch. */
export function readingBatch(table: string, from: number, count: number, epoch: string, startMs = 1_772_000_000_000, afterSeq?: number): TelemetryBatch {
  const rows = Array.from({ length: count }, (_, i) => ({ seq: from + i, row: [encodeValue(startMs + (from + i) * 1000), encodeValue(20 + i / 4)] }));
  const wire = {
    format_version: TELEMETRY_BATCH_FORMAT_VERSION,
    batch_id: uuidv7(),
    journal_epoch: epoch,
    source_table: table,
    time_column: 'ts',
    schema: { hash: schemaFingerprint(READING_COLUMNS), columns: READING_COLUMNS },
    first_seq: from,
    last_seq: from + count - 1,
    ...(afterSeq === undefined ? {} : { after_seq: afterSeq }),
    rows,
  };
  return parseTelemetryBatch(JSON.parse(JSON.stringify(wire)));
}
