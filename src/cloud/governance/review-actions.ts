import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import { lockLineageById, setLineageState } from '../ingest/lineage.js';
import type { Queryable } from '../store/store.js';
import { recordAudit } from './audit.js';
import { checkVersion, nextStatus } from './review-state.js';
import { checkClaimant, getReview, isRejectedSchema, transitionReview, type ActorLabel, type ReviewRecord } from './reviews.js';

/**
 * Claims a review for `actor`. Claiming one's own claim again answers the same
 * version (safe to retry); taking over someone else's claim needs `force`, and
 * bumps the version so their pending approve or reject is refused. The review row
 * is locked first, so of two operators racing for a queued review exactly one
 * gets it and the other is told who has it.
 */
export async function claimReview(tx: Queryable, reviewId: string, actor: ActorLabel, options: { force?: boolean } = {}): Promise<ReviewRecord> {
  const review = await getReview(tx, reviewId, { forUpdate: true });
  const context = { review_id: review.id, lineage_id: review.lineage_id };
  const to = nextStatus(review.status, 'claim', context);
  if (review.status === 'in_review') {
    if (review.claimed_by === actor) return review;
    if (!options.force) {
      throw new SynclineError('conflict', `the review is claimed by ${review.claimed_by ?? 'someone'} since ${review.claimed_at ?? '?'}; claim with force to take it over`, {
        ...context,
        claimed_by: review.claimed_by,
      });
    }
  }
  return transitionReview(tx, review, { actor, action: 'claim', to, claim: 'set', ...(review.status === 'in_review' ? { detail: { took_over_from: review.claimed_by } } : {}) });
}

/** Gives a claimed review back to the queue, undecided. */
export async function releaseReview(tx: Queryable, reviewId: string, actionVersion: number, actor: ActorLabel): Promise<ReviewRecord> {
  const review = await getReview(tx, reviewId, { forUpdate: true });
  const context = { review_id: review.id, lineage_id: review.lineage_id };
  const to = nextStatus(review.status, 'release', context);
  checkVersion(review.action_version, actionVersion, context);
  checkClaimant(review, actor);
  return transitionReview(tx, review, { actor, action: 'release', to, claim: 'clear' });
}

export interface RejectRequest {
  action_version: number;
  reason: string;
}

/**
 * Rejects a claimed review: the lineage stays paused (cause `schema_rejected`) and
 * rows keep being staged, the rejected ones included. The device has to change
 * its schema (a new schema opens a new review); rows of the rejected schema stay
 * until an operator purges them (purgeStaged).
 */
export async function rejectReview(tx: Queryable, reviewId: string, request: RejectRequest, actor: ActorLabel): Promise<{ review: ReviewRecord }> {
  const peek = await getReview(tx, reviewId);
  const lineage = await lockLineageById(tx, peek.lineage_id);
  if (!lineage) throw new SynclineError('internal', 'the lineage of a review is missing', { review_id: reviewId });
  const review = await getReview(tx, reviewId, { forUpdate: true });
  const context = { review_id: review.id, lineage_id: lineage.id };
  const to = nextStatus(review.status, 'reject', context);
  checkVersion(review.action_version, request.action_version, context);
  checkClaimant(review, actor);
  const rejected = await transitionReview(tx, review, { actor, action: 'reject', to, decision: { reason: request.reason }, detail: { reason: request.reason } });
  await setLineageState(tx, lineage.id, {
    status: 'paused',
    pause_cause: 'schema_rejected',
    status_reason: `schema ${review.schema_hash.slice(0, 12)} rejected by ${actor} (review ${review.id}): ${request.reason}`,
  });
  return { review: rejected };
}

export interface PurgeResult {
  lineage_id: string;
  purged: number;
  by_schema: { schema_hash: string; rows: number }[];
}

/**
 * Deletes staged rows of rejected schemas (all of them, or those of one schema):
 * the only staged rows an operator may throw away, since any other staged row is
 * data an approval can still use. Final, and recorded in the audit log.
 */
export async function purgeStaged(tx: Queryable, lineageId: string, request: { schema_hash?: string }, actor: ActorLabel): Promise<PurgeResult> {
  const lineage = isUuid(lineageId) ? await lockLineageById(tx, lineageId) : undefined;
  if (!lineage) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  const staged = await tx.query<{ schema_hash: string }>('SELECT DISTINCT schema_hash FROM edge_staged_rows WHERE lineage_id = $1', [lineage.id]);
  const rejected: string[] = [];
  for (const { schema_hash } of staged.rows) if (schema_hash !== lineage.schema_hash && (await isRejectedSchema(tx, lineage.id, schema_hash))) rejected.push(schema_hash);
  const context = { lineage_id: lineage.id, ...(request.schema_hash ? { schema_hash: request.schema_hash } : {}) };
  const chosen = request.schema_hash === undefined ? rejected : rejected.filter((h) => h === request.schema_hash);
  if (chosen.length === 0) {
    throw new SynclineError('conflict', request.schema_hash ? 'only rows staged under a rejected schema can be purged; this schema has none' : 'no rows of a rejected schema are staged', context);
  }
  const { rows } = await tx.query<{ schema_hash: string; n: string }>(
    `WITH gone AS (DELETE FROM edge_staged_rows WHERE lineage_id = $1 AND schema_hash = ANY($2::text[]) RETURNING schema_hash)
     SELECT schema_hash, count(*) AS n FROM gone GROUP BY schema_hash ORDER BY schema_hash`,
    [lineage.id, chosen],
  );
  const bySchema = rows.map((r) => ({ schema_hash: r.schema_hash, rows: Number(r.n) }));
  const purged = bySchema.reduce((sum, s) => sum + s.rows, 0);
  await recordAudit(tx, { actor, action: 'staged.purge', project_id: lineage.project_id, lineage_id: lineage.id, detail: { purged, by_schema: bySchema } });
  return { lineage_id: lineage.id, purged, by_schema: bySchema };
}
