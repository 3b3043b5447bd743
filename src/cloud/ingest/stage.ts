import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import type { RejectedRow } from './set-aside.js';
import type { Queryable } from '../store/store.js';
import { toStoredJson } from '../type-mapping.js';

/**
 * Why rows are staged instead of materialized (the reason an operator filters on;
 * `detail` says more in words):
 * - schema_review: the lineage waits for a schema review, its outcome, or the
 *   replay of the backlog a review released;
 * - lineage_paused: the lineage is paused for another cause (a materialization
 *   failure an operator has to clear);
 * - materialization_failed: the mirror itself failed (a column or table gone, a
 *   privilege revoked) and the lineage paused; rows resume with the lineage;
 * - row_rejected: the mirror refused this very row (the database's message is the
 *   detail) while the rest of its batch went in; it stays staged, the latest change
 *   of its key (a later one drops it: rejected-rows.ts), for an operator to read,
 *   retry or purge, and every replay tries it again.
 */
export type StagingReason = 'schema_review' | 'lineage_paused' | 'materialization_failed' | 'row_rejected';

/** Rows of one batch to stage, with one detail for all of them or one per row. */
export interface StagePart {
  lineageId: string;
  batch: RowBatch;
  rows: readonly DecodedRow[];
  reason: StagingReason;
  detail: string | null | readonly string[];
}

/**
 * Keeps rows that were acknowledged but not materialized, exactly and in order,
 * so a later review can replay them. One statement for any number of rows.
 */
export async function stageRows(tx: Queryable, lineageId: string, batch: RowBatch, rows: readonly DecodedRow[], reason: StagingReason, detail: string | null | readonly string[]): Promise<void> {
  await stageParts(tx, [{ lineageId, batch, rows, reason, detail }]);
}

/**
 * Stages the rows of many batches (a group's) in one statement, in the parts'
 * order then the rows'. The rows travel as one JSON document: JSON.stringify is
 * native, where node-pg builds array literals element by element in JS (that
 * escaping was the largest cost of a group's staging in the fan-in profile).
 * What a batch's rows share (lineage, batch, epoch, schema, reason) is sent once
 * per part and each row as a [seq, op, pk, row(, detail)] array: with those
 * fields in every row object, PostgreSQL's parse of the document and the
 * conversion of the fields were most of the statement's CPU (a 5-row batch's
 * part is a third of the bytes; the statement ~2x faster for 1,000 rows).
 */
export async function stageParts(tx: Queryable, parts: readonly StagePart[]): Promise<void> {
  const sent: unknown[] = [];
  for (const part of parts) {
    if (part.rows.length === 0) continue;
    const perRow = typeof part.detail !== 'string' && part.detail !== null;
    const rows = part.rows.map((r, i) => {
      const values = [r.seq, r.op, r.pk.map(toStoredJson), r.row ? r.row.map(toStoredJson) : null];
      return perRow ? [...values, (part.detail as readonly string[])[i] ?? null] : values;
    });
    sent.push({ l: part.lineageId, b: part.batch.batch_id, e: part.batch.journal_epoch, h: part.batch.schema.hash, w: part.reason, d: perRow ? null : part.detail, r: rows });
  }
  if (sent.length === 0) return;
  // A row's JSON null is SQL NULL, as the column held it before (a delete has no row).
  await tx.query(
    `INSERT INTO edge_staged_rows (lineage_id, batch_id, journal_epoch, seq, op, pk, row, schema_hash, reason, detail)
     SELECT p.l, p.b, p.e, (x.v ->> 0)::bigint, x.v ->> 1, x.v -> 2, nullif(x.v -> 3, 'null'::jsonb), p.h, p.w, coalesce(x.v ->> 4, p.d)
     FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (l uuid, b uuid, e text, h text, w text, d text, r jsonb)) WITH ORDINALITY AS p(l, b, e, h, w, d, r, n)
     CROSS JOIN LATERAL jsonb_array_elements(p.r) WITH ORDINALITY AS x(v, i)
     ORDER BY p.n, x.i`,
    [JSON.stringify(sent)],
  );
}

/** Stages rows the mirror refused as `row_rejected`, each with its own message, in seq order. */
export async function stageRejected(tx: Queryable, lineageId: string, batch: RowBatch, rejected: readonly RejectedRow[]): Promise<void> {
  if (rejected.length === 0) return;
  const sorted = [...rejected].sort((a, b) => a.row.seq - b.row.seq);
  await stageRows(tx, lineageId, batch, sorted.map((r) => r.row), 'row_rejected', sorted.map((r) => r.detail));
}
