import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import type { Lineage } from '../ingest/lineage.js';
import type { Queryable } from '../store/store.js';
import { recordAudit } from './audit.js';
import type { Classification, SchemaComparison } from './classify.js';
import { OPEN_STATUSES, type ReviewAction, type ReviewStatus } from './review-state.js';
import { arrayParam } from '../store/array-param.js';

/** Who did something: an admin token's label, or `system` for Syncline itself. */
export type ActorLabel = string;

export const SYSTEM_ACTOR: ActorLabel = 'system';

/**
 * Why a review exists: `ingest`, a device sent the schema; `replay`, staged rows of
 * an older schema need a decision of their own; `defer`, an approval left columns
 * for later.
 */
export type ReviewOrigin = 'ingest' | 'replay' | 'defer';

export interface ReviewRecord {
  id: string;
  lineage_id: string;
  project_id: string;
  schema_hash: string;
  base_schema_hash: string | null;
  origin: ReviewOrigin;
  classification: Classification;
  summary: string;
  status: ReviewStatus;
  action_version: number;
  claimed_by: string | null;
  claimed_at: string | null;
  decided_by: string | null;
  decided_at: string | null;
  decision: unknown;
  superseded_by: string | null;
  created_at: string;
  updated_at: string;
}

type ReviewRow = Omit<ReviewRecord, 'claimed_at' | 'decided_at' | 'created_at' | 'updated_at'> & {
  claimed_at: Date | null;
  decided_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

const COLUMNS = `id, lineage_id, project_id, schema_hash, base_schema_hash, origin, classification, summary, status, action_version,
  claimed_by, claimed_at, decided_by, decided_at, decision, superseded_by, created_at, updated_at`;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function toRecord(row: ReviewRow): ReviewRecord {
  return { ...row, claimed_at: iso(row.claimed_at), decided_at: iso(row.decided_at), created_at: row.created_at.toISOString(), updated_at: row.updated_at.toISOString() };
}

function notFound(id: string): SynclineError {
  return new SynclineError('not_found', 'no such review', { review_id: id.slice(0, 64) });
}

export async function getReview(db: Queryable, id: string, options: { forUpdate?: boolean } = {}): Promise<ReviewRecord> {
  if (!isUuid(id)) throw notFound(id);
  const { rows } = await db.query<ReviewRow>(`SELECT ${COLUMNS} FROM edge_schema_reviews WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  if (!rows[0]) throw notFound(id);
  return toRecord(rows[0]);
}

export async function openReviewOf(db: Queryable, lineageId: string): Promise<ReviewRecord | undefined> {
  const { rows } = await db.query<ReviewRow>(`SELECT ${COLUMNS} FROM edge_schema_reviews WHERE lineage_id = $1 AND status = ANY($2::text[])`, [lineageId, OPEN_STATUSES]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** The lineage's most recent review of any status. */
export async function latestReviewOf(db: Queryable, lineageId: string): Promise<ReviewRecord | undefined> {
  const { rows } = await db.query<ReviewRow>(`SELECT ${COLUMNS} FROM edge_schema_reviews WHERE lineage_id = $1 ORDER BY id DESC LIMIT 1`, [lineageId]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** The schema hash of each lineage's most recent review, for many lineages in one statement (by lineage id). */
export async function latestReviewHashes(db: Queryable, lineageIds: readonly string[]): Promise<Map<string, string>> {
  if (lineageIds.length === 0) return new Map();
  const { rows } = await db.query<{ lineage_id: string; schema_hash: string }>(
    `SELECT DISTINCT ON (lineage_id) lineage_id::text, schema_hash FROM edge_schema_reviews WHERE lineage_id = ANY($1::uuid[]) ORDER BY lineage_id, id DESC`,
    [arrayParam(lineageIds)],
  );
  return new Map(rows.map((r) => [r.lineage_id, r.schema_hash]));
}

export async function isRejectedSchema(db: Queryable, lineageId: string, hash: string): Promise<boolean> {
  const { rows } = await db.query<{ rejected: boolean }>(
    `SELECT coalesce((SELECT status = 'rejected' FROM edge_schema_reviews WHERE lineage_id = $1 AND schema_hash = $2 AND status IN ('approved', 'rejected') ORDER BY id DESC LIMIT 1), false) AS rejected`,
    [lineageId, hash],
  );
  return rows[0]?.rejected ?? false;
}

/** Records a step of a review in the audit log, with the status change and the version it led to. */
export async function recordEvent(
  db: Queryable,
  review: Pick<ReviewRecord, 'id' | 'lineage_id' | 'project_id'>,
  event: { actor: ActorLabel; action: ReviewAction | 'open'; from: ReviewStatus | null; to: ReviewStatus; version: number; detail?: unknown },
): Promise<void> {
  const extra = typeof event.detail === 'object' && event.detail !== null ? event.detail : event.detail === undefined ? {} : { detail: event.detail };
  await recordAudit(db, {
    actor: event.actor,
    action: `review.${event.action}`,
    project_id: review.project_id,
    lineage_id: review.lineage_id,
    review_id: review.id,
    detail: { from_status: event.from, to_status: event.to, action_version: event.version, ...extra },
  });
}

/** Only the operator holding the claim decides; anyone else claims (with force) first. */
export function checkClaimant(review: ReviewRecord, actor: ActorLabel): void {
  if (review.claimed_by !== actor) {
    throw new SynclineError('conflict', `the review is claimed by ${review.claimed_by ?? 'nobody'}; claim it first`, { review_id: review.id, claimed_by: review.claimed_by });
  }
}

/** Moves a review to its next status, bumping the version; returns the updated record. */
export async function transitionReview(
  db: Queryable,
  review: ReviewRecord,
  change: { actor: ActorLabel; action: ReviewAction; to: ReviewStatus; claim?: 'set' | 'clear'; decision?: unknown; detail?: unknown },
): Promise<ReviewRecord> {
  const decided = change.to === 'approved' || change.to === 'rejected';
  const { rows } = await db.query<ReviewRow>(
    `UPDATE edge_schema_reviews SET status = $2, action_version = action_version + 1, updated_at = now(),
       claimed_by = CASE $3::text WHEN 'set' THEN $4 WHEN 'clear' THEN NULL ELSE claimed_by END,
       claimed_at = CASE $3::text WHEN 'set' THEN now() WHEN 'clear' THEN NULL ELSE claimed_at END,
       decided_by = CASE WHEN $5::boolean THEN $4 ELSE decided_by END,
       decided_at = CASE WHEN $5::boolean THEN now() ELSE decided_at END,
       decision = COALESCE($6::jsonb, decision)
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [review.id, change.to, change.claim ?? null, change.actor, decided, change.decision === undefined ? null : JSON.stringify(change.decision)],
  );
  const updated = toRecord(rows[0]!);
  await recordEvent(db, updated, { actor: change.actor, action: change.action, from: review.status, to: change.to, version: updated.action_version, detail: change.detail });
  return updated;
}

/**
 * Opens the review a lineage waits for. Idempotent per schema: when the open review
 * is already about this schema it is returned as is. A newer schema from the device
 * supersedes an open review the device caused; a review raised by replay (rows of
 * an older schema) stays, because those rows come first.
 */
export async function openReview(
  tx: Queryable,
  lineage: Lineage,
  proposal: { schemaHash: string; comparison: SchemaComparison; origin: ReviewOrigin; reason: string },
): Promise<ReviewRecord> {
  const open = await openReviewOf(tx, lineage.id);
  if (open && (open.schema_hash === proposal.schemaHash || (open.origin === 'replay' && proposal.origin === 'ingest'))) return open;
  const id = uuidv7();
  const comparison = { added: proposal.comparison.added.map((c) => c.name), dropped: proposal.comparison.dropped, retyped: proposal.comparison.retyped, key_changed: proposal.comparison.keyChanged, unclear: proposal.comparison.unclear };
  // Closed before the new one is inserted (one open review per lineage), linked after (the link is a foreign key).
  if (open) await transitionReview(tx, open, { actor: SYSTEM_ACTOR, action: 'supersede', to: 'superseded', claim: 'clear', detail: { superseded_by: id } });
  const { rows } = await tx.query<ReviewRow>(
    `INSERT INTO edge_schema_reviews (id, lineage_id, project_id, schema_hash, base_schema_hash, origin, classification, summary)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
    [id, lineage.id, lineage.project_id, proposal.schemaHash, lineage.schema_hash, proposal.origin, proposal.comparison.classification, proposal.reason],
  );
  if (open) await tx.query('UPDATE edge_schema_reviews SET superseded_by = $2 WHERE id = $1', [open.id, id]);
  const review = toRecord(rows[0]!);
  await recordEvent(tx, review, { actor: SYSTEM_ACTOR, action: 'open', from: null, to: 'queued', version: review.action_version, detail: { comparison, ...(open ? { supersedes: open.id } : {}) } });
  return review;
}

/** The status reason of a lineage waiting for a review, naming the review so an operator can find it. */
export function reviewReason(review: Pick<ReviewRecord, 'id' | 'summary'>): string {
  return `schema review ${review.id}: ${review.summary}`;
}
