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

/** Stages the rows of many batches (a group's) in one statement, in the parts' order then the rows'. */
export async function stageParts(tx: Queryable, parts: readonly StagePart[]): Promise<void> {
  const columns = { lineage: [] as string[], batch: [] as string[], epoch: [] as string[], hash: [] as string[], reason: [] as string[], seq: [] as string[], op: [] as string[], pk: [] as string[], row: [] as (string | null)[], detail: [] as (string | null)[] };
  for (const part of parts) {
    part.rows.forEach((r, i) => {
      columns.lineage.push(part.lineageId);
      columns.batch.push(part.batch.batch_id);
      columns.epoch.push(part.batch.journal_epoch);
      columns.hash.push(part.batch.schema.hash);
      columns.reason.push(part.reason);
      columns.seq.push(String(r.seq));
      columns.op.push(r.op);
      columns.pk.push(JSON.stringify(r.pk.map(toStoredJson)));
      columns.row.push(r.row ? JSON.stringify(r.row.map(toStoredJson)) : null);
      columns.detail.push(typeof part.detail === 'string' || part.detail === null ? part.detail : (part.detail[i] ?? null));
    });
  }
  if (columns.seq.length === 0) return;
  await tx.query(
    `INSERT INTO edge_staged_rows (lineage_id, batch_id, journal_epoch, seq, op, pk, row, schema_hash, reason, detail)
     SELECT u.l, u.b, u.e, u.s, u.o, (u.p)::jsonb, (u.r)::jsonb, u.h, u.w, u.d
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS u(l, b, e, s, o, p, r, h, w, d, n)
     ORDER BY u.n`,
    [columns.lineage, columns.batch, columns.epoch, columns.seq, columns.op, columns.pk, columns.row, columns.hash, columns.reason, columns.detail],
  );
}

/** Stages rows the mirror refused as `row_rejected`, each with its own message, in seq order. */
export async function stageRejected(tx: Queryable, lineageId: string, batch: RowBatch, rejected: readonly RejectedRow[]): Promise<void> {
  if (rejected.length === 0) return;
  const sorted = [...rejected].sort((a, b) => a.row.seq - b.row.seq);
  await stageRows(tx, lineageId, batch, sorted.map((r) => r.row), 'row_rejected', sorted.map((r) => r.detail));
}
