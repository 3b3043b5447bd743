import type { WireRow, WireRowBatch } from '../../src/protocol/batch.js';
import type { ColumnInfo } from '../../src/protocol/schema.js';
import { columnsOf, wireEnvelope } from './cloud-batches.js';

/** Columns from a compact spec: [name, declared type, pk ordinal]; key columns are NOT NULL. */
export function columns(spec: readonly [name: string, declaredType: string, pk?: number][]): ColumnInfo[] {
  return columnsOf({ table: '', columns: spec.map(([name, type, pk = 0]) => ({ name, type, pk, notnull: pk > 0 })) });
}

/** A valid wire batch for tests; override any field to make it invalid on purpose. */
export function wireBatch(options: { table?: string; columns?: ColumnInfo[]; rows: WireRow[]; epoch?: string; batchId?: string }): WireRowBatch {
  const cols = options.columns ?? columns([['id', 'INTEGER', 1], ['name', 'TEXT']]);
  return wireEnvelope(options.table ?? 'items', cols, options.rows, { epoch: options.epoch, batchId: options.batchId });
}
