import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { setLineageState, type Lineage, type LineageState } from '../ingest/lineage.js';
import { loadMirrorTarget, type MirrorTarget } from '../ingest/mirror-schema.js';
import type { StagingReason } from '../ingest/stage.js';
import type { Queryable } from '../store/store.js';
import { applyColumnDecision } from './apply-decision.js';
import { adoptCoalescedDecision } from './approve.js';
import type { SchemaComparison, SchemaSnapshot } from './classify.js';
import { findCoalescedSchema, projectCoalescing } from './coalescing.js';
import { mirrorUnlessIgnored } from './column-plan.js';
import { compareToLineage } from './lineage-schema.js';
import { decidePolicy, type GovernancePolicy } from './policy.js';
import { latestReviewOf, openReview, openReviewOf, reviewReason } from './reviews.js';

/** A schema as a batch carries it. */
export interface IncomingSchema extends SchemaSnapshot {
  hash: string;
  columns: readonly ColumnInfo[];
  key: TableKey;
}

/** What happens to a batch's rows: into the mirror, or staged with a reason, and the lineage state after. */
export type Admission =
  | { kind: 'materialize'; target: MirrorTarget; state: LineageState }
  | { kind: 'stage'; state: LineageState; reason: StagingReason; detail: string | null };

const stateOf = (lineage: Lineage): LineageState => ({
  status: lineage.status,
  pause_cause: lineage.pause_cause,
  status_reason: lineage.status_reason,
  schema_hash: lineage.schema_hash,
  mirror_table: lineage.mirror_table,
});

/**
 * The schema policy for a batch on an active lineage with nothing waiting to
 * replay: materialize as bound, follow a change the policy lets through, take an
 * approval the project already made for this schema (coalescing), or open a
 * review and stage. A change the policy would follow but that does not fit the
 * mirror (a new column named like an existing one of another type) goes to review.
 */
export async function admitSchema(tx: Queryable, lineage: Lineage, next: IncomingSchema, policy: GovernancePolicy): Promise<Admission> {
  const before = stateOf(lineage);
  if (lineage.schema_hash === next.hash) return { kind: 'materialize', target: await loadMirrorTarget(tx, lineage), state: before };
  const { comparison, decided } = await compareToLineage(tx, lineage, next);
  const decision = decidePolicy(comparison, policy);
  if (decision.action === 'materialize') return { kind: 'materialize', target: await loadMirrorTarget(tx, lineage), state: { ...before, schema_hash: next.hash } };
  let reason = decision.action === 'pause' ? decision.reason : comparison.summary;
  if (decision.action !== 'pause') {
    try {
      const applied = await applyColumnDecision(tx, lineage, next, mirrorUnlessIgnored(next.columns, decided.ignored), { coalescing: await projectCoalescing(tx, lineage.project_id) });
      const state = { ...before, schema_hash: next.hash, mirror_table: applied.target.table };
      if (decision.action === 'provision') await setLineageState(tx, lineage.id, { status: 'active', pause_cause: null, status_reason: null, mirror_table: applied.target.table, key: next.key });
      return { kind: 'materialize', target: applied.target, state };
    } catch (error) {
      if (!(error instanceof SynclineError) || error.code !== 'invalid_request') throw error;
      reason = `${comparison.summary}; ${error.message}`;
    }
  }
  return reviewOrAdopt(tx, lineage, next, comparison, reason);
}

/**
 * Opens (or finds) the review for a schema the device sent. When the project
 * coalesces and already approved this schema into its shared mirror, the review
 * is approved at once with the same column actions and the lineage is active;
 * otherwise the lineage pauses for it and the rows are staged.
 */
async function reviewOrAdopt(tx: Queryable, lineage: Lineage, next: IncomingSchema, comparison: SchemaComparison, reason: string): Promise<Admission> {
  const review = await openReview(tx, lineage, { schemaHash: next.hash, comparison, origin: 'ingest', reason });
  const approval = review.status === 'queued' ? await findCoalescedSchema(tx, lineage.project_id, lineage.source_table, next.hash) : undefined;
  const adopted = approval ? await adoptCoalescedDecision(tx, lineage, review, approval) : undefined;
  if (adopted) {
    const state: LineageState = { status: 'active', pause_cause: null, status_reason: null, schema_hash: next.hash, mirror_table: adopted.applied.target.table };
    if (adopted.replay) return { kind: 'stage', state, reason: 'schema_review', detail: `queued behind replay ${adopted.replay.id}` };
    return { kind: 'materialize', target: adopted.applied.target, state };
  }
  const waiting = reviewReason(review);
  return { kind: 'stage', state: { ...stateOf(lineage), status: 'paused', pause_cause: 'schema_review', status_reason: waiting }, reason: 'schema_review', detail: waiting };
}

/**
 * A paused lineage stages everything, so rows never overtake the ones already
 * staged. It still notices schema changes: while it waits for (or was refused) a
 * review, a new schema that itself needs one gets a review, which supersedes the
 * device's older open one (or is answered by a coalesced approval). Pauses for
 * other causes are resumed by an operator.
 */
export async function admitWhilePaused(tx: Queryable, lineage: Lineage, next: IncomingSchema, policy: GovernancePolicy): Promise<Admission> {
  const cause = lineage.pause_cause;
  const unchanged: Admission = { kind: 'stage', state: stateOf(lineage), reason: cause === 'materialization_failed' ? 'lineage_paused' : 'schema_review', detail: lineage.status_reason };
  if (cause !== 'schema_review' && cause !== 'schema_rejected') return unchanged;
  if (next.hash === lineage.schema_hash || (await latestReviewOf(tx, lineage.id))?.schema_hash === next.hash) return unchanged;
  if ((await openReviewOf(tx, lineage.id))?.origin === 'replay') return unchanged;
  const { comparison, previous } = await compareToLineage(tx, lineage, next);
  const decision = decidePolicy(comparison, policy);
  // Without an accepted schema there is no mirror to replay into: even `auto` asks an operator after a rejection.
  if (decision.action !== 'pause' && previous !== null) return unchanged;
  // An adopted schema's rows queue behind the replay of what is staged; with nothing staged they go straight in.
  return reviewOrAdopt(tx, lineage, next, comparison, decision.action === 'pause' ? decision.reason : comparison.summary);
}
