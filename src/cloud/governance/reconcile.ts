import type { Logger } from 'pino';
import { lockLineageById, setLineageState } from '../ingest/lineage.js';
import { loadSchema } from '../ingest/mirror-schema.js';
import { transactionWithRetry, type Store } from '../store/store.js';
import { startReplay } from './replay-intents.js';
import { openReview, openReviewOf, reviewReason, SYSTEM_ACTOR } from './reviews.js';
import { compareToLineage } from './lineage-schema.js';

/**
 * Gives every lineage waiting for a review a review to wait for. Lineages paused
 * for a schema before reviews existed (a database migrated from schema version 1)
 * have none; neither would one whose review vanished by hand. The review is for
 * the schema of the newest staged row, the one the device sends now; when that is
 * the bound schema after all, the staged rows are simply replayed.
 */
export async function reconcileReviews(store: Store, logger?: Logger): Promise<number> {
  const { rows } = await store.query<{ id: string }>(
    `SELECT l.id FROM edge_table_lineages l WHERE l.pause_cause = 'schema_review'
       AND NOT EXISTS (SELECT 1 FROM edge_schema_reviews r WHERE r.lineage_id = l.id AND r.status IN ('queued', 'in_review'))`,
  );
  let opened = 0;
  for (const { id } of rows) {
    await transactionWithRetry(store, async (tx) => {
      const lineage = await lockLineageById(tx, id);
      if (!lineage || lineage.pause_cause !== 'schema_review' || (await openReviewOf(tx, id))) return;
      const newest = await tx.query<{ schema_hash: string }>('SELECT schema_hash FROM edge_staged_rows WHERE lineage_id = $1 ORDER BY id DESC LIMIT 1', [id]);
      const hash = newest.rows[0]?.schema_hash ?? lineage.schema_hash;
      if (hash === null || hash === undefined) return;
      if (hash === lineage.schema_hash) {
        await startReplay(tx, lineage, { reviewId: null, actor: SYSTEM_ACTOR });
        return;
      }
      const schema = await loadSchema(tx, id, hash);
      const { comparison } = await compareToLineage(tx, lineage, schema);
      const review = await openReview(tx, lineage, { schemaHash: hash, comparison, origin: 'ingest', reason: comparison.summary });
      await setLineageState(tx, id, { status: 'paused', pause_cause: 'schema_review', status_reason: reviewReason(review) });
      opened++;
      logger?.info({ lineage_id: id, review_id: review.id }, 'opened a schema review for a lineage paused without one');
    });
  }
  return opened;
}
