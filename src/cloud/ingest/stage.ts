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

/**
 * Keeps rows that were acknowledged but not materialized, exactly and in order,
 * so a later review can replay them. One statement for any number of rows.
 */
export async function stageRows(tx: Queryable, lineageId: string, batch: RowBatch, rows: readonly DecodedRow[], reason: StagingReason, detail: string | null | readonly string[]): Promise<void> {
  if (rows.length === 0) return;
  // One detail for all rows, or one per row.
  const details = typeof detail === 'string' || detail === null ? rows.map(() => detail) : detail;
  await tx.query(
    `INSERT INTO edge_staged_rows (lineage_id, batch_id, journal_epoch, seq, op, pk, row, schema_hash, reason, detail)
     SELECT $1::uuid, $2::uuid, $3, (u.s)::bigint, u.o, (u.p)::jsonb, (u.r)::jsonb, $4, $5, u.d
     FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS u(s, o, p, r, d, n)
     ORDER BY u.n`,
    [
      lineageId,
      batch.batch_id,
      batch.journal_epoch,
      batch.schema.hash,
      reason,
      rows.map((r) => String(r.seq)),
      rows.map((r) => r.op),
      rows.map((r) => JSON.stringify(r.pk.map(toStoredJson))),
      rows.map((r) => (r.row ? JSON.stringify(r.row.map(toStoredJson)) : null)),
      details,
    ],
  );
}

/** Stages rows the mirror refused as `row_rejected`, each with its own message, in seq order. */
export async function stageRejected(tx: Queryable, lineageId: string, batch: RowBatch, rejected: readonly RejectedRow[]): Promise<void> {
  if (rejected.length === 0) return;
  const sorted = [...rejected].sort((a, b) => a.row.seq - b.row.seq);
  await stageRows(tx, lineageId, batch, sorted.map((r) => r.row), 'row_rejected', sorted.map((r) => r.detail));
}
