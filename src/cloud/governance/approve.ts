import { SynclineError } from '../../protocol/errors.js';
import { lockLineageById, setLineageState, type Lineage } from '../ingest/lineage.js';
import { loadMirrorTarget, loadSchema } from '../ingest/mirror-schema.js';
import type { Queryable } from '../store/store.js';
import { applyColumnDecision, type AppliedDecision } from './apply-decision.js';
import { sameKey } from './classify.js';
import { projectCoalescing, rememberCoalescedSchema } from './coalescing.js';
import type { ColumnAction } from './column-plan.js';
import { startReplay, type ReplayIntent } from './replay-intents.js';
import { checkVersion, nextStatus } from './review-state.js';
import { compareToLineage } from './lineage-schema.js';
import { checkClaimant, getReview, openReview, reviewReason, SYSTEM_ACTOR, transitionReview, type ActorLabel, type ReviewRecord } from './reviews.js';

export interface ApproveRequest {
  action_version: number;
  /** One action per incoming column; unmentioned columns are refused. */
  columns: ColumnAction[];
}

export interface ApproveResult {
  review: ReviewRecord;
  mirror_table: string;
  /** The mirror written before a key change, kept as it was. */
  previous_mirror_table: string | null;
  /** The replay of staged rows, or null when nothing was staged (or columns were deferred). */
  replay: ReplayIntent | null;
  /** Columns left for later, and the review they now wait in (the lineage stays paused). */
  deferred: string[];
  follow_up_review: string | null;
  /** Queued reviews of other devices this approval answered (coalesced mirrors). */
  also_approved: string[];
}

/**
 * Approves a claimed review, in the caller's transaction: provisions or alters the
 * mirror, stores the column bindings, records a replay intent for the staged rows
 * and sets the lineage active. With deferred columns the decided ones are applied
 * but the lineage stays paused, waiting in a follow-up review for the rest. Locks
 * the lineage before the review, the order ingest uses too.
 */
export async function approveReview(tx: Queryable, reviewId: string, request: ApproveRequest, actor: ActorLabel): Promise<ApproveResult> {
  const { lineage, review } = await lockForDecision(tx, reviewId);
  const context = { review_id: review.id, lineage_id: lineage.id };
  nextStatus(review.status, 'approve', context);
  checkVersion(review.action_version, request.action_version, context);
  checkClaimant(review, actor);
  const decided = await decide(tx, lineage, review, request.columns, actor);
  const alsoApproved = decided.coalesced ? await answerQueuedReviews(tx, decided.review, lineage, request.columns, actor) : [];
  return {
    review: decided.review,
    mirror_table: decided.applied.target.table,
    previous_mirror_table: decided.applied.previousMirror,
    replay: decided.replay,
    deferred: decided.applied.plan.deferred,
    follow_up_review: decided.followUp?.id ?? null,
    also_approved: alsoApproved,
  };
}

async function lockForDecision(tx: Queryable, reviewId: string): Promise<{ lineage: Lineage; review: ReviewRecord }> {
  const peek = await getReview(tx, reviewId);
  const lineage = await lockLineageById(tx, peek.lineage_id);
  if (!lineage) throw new SynclineError('internal', 'the lineage of a review is missing', { review_id: reviewId });
  return { lineage, review: await getReview(tx, reviewId, { forUpdate: true }) };
}

interface Decided {
  review: ReviewRecord;
  applied: AppliedDecision;
  replay: ReplayIntent | null;
  followUp: ReviewRecord | null;
  /** The decision went into a coalesced mirror, so it was remembered for the project. */
  coalesced: boolean;
}

/** Carries out an approval of a claimed review (by an operator, or by Syncline for a coalesced schema). */
/**
 * A follow-up of deferred columns asks only for those: the columns the first
 * approval decided keep their decision (bound ones stay mirrored as they are,
 * ignored ones stay ignored) unless the operator names them again.
 */
async function withEarlierDecisions(tx: Queryable, lineage: Lineage, columns: readonly { name: string }[], actions: readonly ColumnAction[]): Promise<ColumnAction[]> {
  if (lineage.mirror_table === null) return [...actions];
  const target = await loadMirrorTarget(tx, lineage);
  const named = new Set(actions.map((a) => a.name));
  const kept: ColumnAction[] = [];
  for (const { name } of columns) {
    if (named.has(name)) continue;
    if (target.bindings.has(name)) kept.push({ name, action: 'mirror' });
    else if (target.ignored.has(name)) kept.push({ name, action: 'ignore' });
  }
  return [...actions, ...kept];
}

async function decide(tx: Queryable, lineage: Lineage, review: ReviewRecord, actions: readonly ColumnAction[], actor: ActorLabel, via?: unknown): Promise<Decided> {
  const schema = await loadSchema(tx, lineage.id, review.schema_hash);
  if (review.origin === 'replay' && lineage.mirror_table !== null && !sameKey(schema.key, lineage.key)) {
    throw new SynclineError('conflict', 'these staged rows use an older key than the mirror; they cannot be replayed into it. Reject the review, then purge its rows', {
      review_id: review.id,
      lineage_id: lineage.id,
    });
  }
  if (review.origin === 'defer') actions = await withEarlierDecisions(tx, lineage, schema.columns, actions);
  const applied = await applyColumnDecision(tx, lineage, schema, actions, { coalescing: await projectCoalescing(tx, lineage.project_id) });
  const { plan, target } = applied;
  const record = {
    columns: actions,
    bindings: plan.bindings,
    ignored: plan.ignored,
    deferred: plan.deferred,
    mirror_table: target.table,
    previous_mirror_table: applied.previousMirror,
    ...(via === undefined ? {} : { via }),
  };
  const approved = await transitionReview(tx, review, { actor, action: 'approve', to: 'approved', decision: record, detail: record });
  const moved = { mirror_table: target.table, key: schema.key };
  if (plan.deferred.length > 0) {
    const waiting = { ...lineage, ...moved };
    const { comparison } = await compareToLineage(tx, waiting, schema);
    const reason = `columns ${plan.deferred.map((c) => JSON.stringify(c)).join(', ')} deferred by ${actor} in review ${review.id}`;
    // Deferred columns of older staged rows stay a replay matter: their approval must not move the followed schema.
    const followUp = await openReview(tx, waiting, { schemaHash: review.schema_hash, comparison, origin: review.origin === 'replay' ? 'replay' : 'defer', reason });
    await setLineageState(tx, lineage.id, { ...moved, status: 'paused', pause_cause: 'schema_review', status_reason: reviewReason(followUp) });
    return { review: approved, applied, replay: null, followUp, coalesced: false };
  }
  // A review of older staged rows widens the mirror but does not move the schema the lineage follows.
  const change = { ...moved, ...(review.origin === 'replay' ? {} : { schema_hash: review.schema_hash }) };
  const replay = await startReplay(tx, lineage, { reviewId: review.id, actor, change });
  // An operator's approval into a coalesced mirror answers later devices; an adoption only follows one.
  if (target.coalesced && via === undefined) {
    await rememberCoalescedSchema(tx, { projectId: lineage.project_id, sourceTable: lineage.source_table, schemaHash: review.schema_hash, reviewId: review.id, approvedBy: actor, columns: actions });
  }
  return { review: approved, applied, replay, followUp: null, coalesced: target.coalesced };
}

/**
 * A schema approved into a coalesced mirror answers the queued reviews of the
 * same schema on the project's other devices (claimed ones belong to their
 * claimer). One that the same actions do not fit stays queued for an operator.
 */
async function answerQueuedReviews(tx: Queryable, approved: ReviewRecord, lineage: Lineage, actions: readonly ColumnAction[], actor: ActorLabel): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `SELECT r.id FROM edge_schema_reviews r JOIN edge_table_lineages l ON l.id = r.lineage_id
     WHERE r.status = 'queued' AND r.origin <> 'replay' AND r.project_id = $1 AND l.source_table = $2 AND r.schema_hash = $3 AND r.lineage_id <> $4
     ORDER BY r.id`,
    [lineage.project_id, lineage.source_table, approved.schema_hash, lineage.id],
  );
  const answered: string[] = [];
  for (const { id } of rows) {
    const other = await lockForDecision(tx, id);
    if (other.review.status !== 'queued') continue;
    if (await adoptCoalescedDecision(tx, other.lineage, other.review, { review_id: approved.id, approved_by: actor, columns: [...actions] })) answered.push(id);
  }
  return answered;
}

/**
 * Approves a queued review with the column actions of a coalesced schema, as
 * `system`, naming the approval it follows. Returns undefined (and changes
 * nothing) when the project no longer coalesces, the lineage keeps a mirror of
 * its own, or the actions do not fit it.
 */
export async function adoptCoalescedDecision(
  tx: Queryable,
  lineage: Lineage,
  review: ReviewRecord,
  approval: { review_id: string; approved_by: ActorLabel; columns: ColumnAction[] },
): Promise<Decided | undefined> {
  if ((await projectCoalescing(tx, lineage.project_id)) !== 'project') return undefined;
  if (lineage.mirror_table !== null && !(await isCoalescedMirror(tx, lineage.mirror_table))) return undefined;
  await tx.query('SAVEPOINT syncline_coalesced');
  try {
    const via = { coalesced_schema_of_review: approval.review_id, approved_by: approval.approved_by };
    const claimed = await transitionReview(tx, review, { actor: SYSTEM_ACTOR, action: 'claim', to: 'in_review', claim: 'set', detail: via });
    const decided = await decide(tx, lineage, claimed, approval.columns, SYSTEM_ACTOR, via);
    await tx.query('RELEASE SAVEPOINT syncline_coalesced');
    return decided;
  } catch (error) {
    if (!(error instanceof SynclineError) || (error.code !== 'invalid_request' && error.code !== 'conflict')) throw error;
    await tx.query('ROLLBACK TO SAVEPOINT syncline_coalesced');
    return undefined;
  }
}

async function isCoalescedMirror(tx: Queryable, table: string): Promise<boolean> {
  const { rows } = await tx.query<{ shared: boolean }>('SELECT EXISTS (SELECT 1 FROM edge_coalesced_mirrors WHERE mirror_table = $1) AS shared', [table]);
  return rows[0]?.shared ?? false;
}
