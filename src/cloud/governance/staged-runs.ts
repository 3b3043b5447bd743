import type { DecodedRow, RowOp } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { Queryable } from '../store/store.js';
import { fromStoredJson } from '../type-mapping.js';

/** A staged row as it is stored: values in the stored-JSON form of type-mapping.ts. */
export interface StagedRecord {
  id: string;
  batch_id: string;
  journal_epoch: string;
  seq: string;
  op: RowOp;
  pk: unknown[];
  row: unknown[] | null;
  schema_hash: string;
}

/** Consecutive staged rows of one batch: one schema, one epoch, one batch id, so one materialize call. */
export interface StagedRun {
  schemaHash: string;
  epoch: string;
  batchId: string;
  /** Staged row ids, aligned with rows. */
  ids: string[];
  rows: DecodedRow[];
}

/** The next staged rows of a lineage after `afterId`, in staging order. */
export async function readStagedRun(tx: Queryable, lineageId: string, afterId: string, limit: number): Promise<StagedRecord[]> {
  const { rows } = await tx.query<StagedRecord>(
    `SELECT id::text AS id, batch_id::text AS batch_id, journal_epoch, seq::text AS seq, op, pk, row, schema_hash
     FROM edge_staged_rows s WHERE lineage_id = $1 AND s.id > $2::bigint ORDER BY s.id LIMIT $3`,
    [lineageId, afterId, limit],
  );
  return rows;
}

export function decodeStaged(record: StagedRecord): DecodedRow {
  if (!Array.isArray(record.pk) || (record.row !== null && !Array.isArray(record.row))) {
    throw new SynclineError('internal', 'a staged row is not in the stored form', { staged_row_id: record.id });
  }
  const pk = record.pk.map(fromStoredJson);
  const seq = Number(record.seq);
  return record.row === null ? { seq, op: record.op, pk } : { seq, op: record.op, pk, row: record.row.map(fromStoredJson) };
}

/** Groups records into runs, keeping their order. */
export function splitRuns(records: readonly StagedRecord[]): StagedRun[] {
  const runs: StagedRun[] = [];
  let current: StagedRun | undefined;
  for (const record of records) {
    if (!current || current.schemaHash !== record.schema_hash || current.epoch !== record.journal_epoch || current.batchId !== record.batch_id) {
      current = { schemaHash: record.schema_hash, epoch: record.journal_epoch, batchId: record.batch_id, ids: [], rows: [] };
      runs.push(current);
    }
    current.ids.push(record.id);
    current.rows.push(decodeStaged(record));
  }
  return runs;
}
