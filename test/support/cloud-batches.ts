import { uuidv7 } from 'uuidv7';
import { parseRowBatch, type RowBatch, type RowOp, type WireRow, type WireRowBatch } from '../../src/protocol/batch.js';
import { ROW_BATCH_FORMAT_VERSION } from '../../src/protocol/constants.js';
import { affinityOf, keyOf, schemaFingerprint, type ColumnInfo } from '../../src/protocol/schema.js';
import { encodeValue, type SqlValue } from '../../src/protocol/values.js';

/** A source table as a test describes it: a name and its columns (declared type, pk position). */
export interface TableSpec {
  table: string;
  columns: { name: string; type?: string; pk?: number; notnull?: boolean; has_default?: boolean }[];
}

export interface RowSpec {
  seq: number;
  op: RowOp;
  pk: SqlValue[];
  /** Required except for deletes; aligned with the spec's columns. */
  row?: SqlValue[];
}

export function columnsOf(spec: TableSpec): ColumnInfo[] {
  return spec.columns.map((c) => {
    const declared = c.type ?? '';
    return { name: c.name, declared_type: declared, affinity: affinityOf(declared), pk: c.pk ?? 0, notnull: c.notnull ?? false, has_default: c.has_default ?? false };
  });
}

/** A batch envelope around rows already in wire form; the one place tests assemble a batch. */
export function wireEnvelope(table: string, columns: ColumnInfo[], rows: WireRow[], options: { epoch?: string; batchId?: string } = {}): WireRowBatch {
  return {
    format_version: ROW_BATCH_FORMAT_VERSION,
    batch_id: options.batchId ?? uuidv7(),
    journal_epoch: options.epoch ?? uuidv7(),
    source_table: table,
    key: keyOf(columns),
    schema: { hash: schemaFingerprint(columns), columns },
    first_seq: rows[0]?.seq ?? 1,
    last_seq: rows[rows.length - 1]?.seq ?? 1,
    rows,
  };
}

/** The batch exactly as a device would send it (JSON-ready wire values). */
export function wireBatch(spec: TableSpec, rows: readonly RowSpec[], options: { epoch: string; batchId?: string }): WireRowBatch {
  const wireRows = rows.map((r) => ({ seq: r.seq, op: r.op, pk: r.pk.map(encodeValue), ...(r.row ? { row: r.row.map(encodeValue) } : {}) }));
  return wireEnvelope(spec.table, columnsOf(spec), wireRows, options);
}

/** The batch after the same JSON round trip and validation the server applies. */
export function rowBatch(spec: TableSpec, rows: readonly RowSpec[], options: { epoch: string; batchId?: string }): RowBatch {
  return parseRowBatch(JSON.parse(JSON.stringify(wireBatch(spec, rows, options))));
}
