import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import type { Queryable } from '../store/store.js';
import { toStoredJson } from '../type-mapping.js';

/**
 * Why rows are staged instead of materialized (the reason an operator filters on;
 * `detail` says more in words):
 * - schema_review: the lineage waits for a schema review, its outcome, or the
 *   replay of the backlog a review released;
 * - lineage_paused: the lineage is paused for another cause (a materialization
 *   failure an operator has to clear);
 * - materialization_failed: the mirror refused these very rows.
 */
export type StagingReason = 'schema_review' | 'lineage_paused' | 'materialization_failed';

/**
 * Keeps rows that were acknowledged but not materialized, exactly and in order,
 * so a later review can replay them. One statement for any number of rows.
 */
export async function stageRows(tx: Queryable, lineageId: string, batch: RowBatch, rows: readonly DecodedRow[], reason: StagingReason, detail: string | null): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO edge_staged_rows (lineage_id, batch_id, journal_epoch, seq, op, pk, row, schema_hash, reason, detail)
     SELECT $1::uuid, $2::uuid, $3, (u.s)::bigint, u.o, (u.p)::jsonb, (u.r)::jsonb, $4, $5, $6
     FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS u(s, o, p, r, n)
     ORDER BY u.n`,
    [
      lineageId,
      batch.batch_id,
      batch.journal_epoch,
      batch.schema.hash,
      reason,
      detail,
      rows.map((r) => String(r.seq)),
      rows.map((r) => r.op),
      rows.map((r) => JSON.stringify(r.pk.map(toStoredJson))),
      rows.map((r) => (r.row ? JSON.stringify(r.row.map(toStoredJson)) : null)),
    ],
  );
}
