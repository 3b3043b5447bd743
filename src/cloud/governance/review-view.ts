import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { isUuid } from '../auth/devices.js';
import { defaultMirrorColumn } from '../identifiers.js';
import { loadMirrorTarget, loadSchema } from '../ingest/mirror-schema.js';
import { getLineage, type LineageView } from '../query/lineages.js';
import type { Queryable } from '../store/store.js';
import { pgTypeFor, type PgType } from '../type-mapping.js';
import { reviewHistory, type AuditEntry } from './audit.js';
import type { SchemaComparison } from './classify.js';
import { compareToLineage } from './lineage-schema.js';
import { isSafeCast, safeTypesFor } from './safe-casts.js';
import { latestIntent, type ReplayIntent } from './replay-intents.js';
import { isReviewStatus, type ReviewStatus } from './review-state.js';
import { getReview, type ReviewRecord } from './reviews.js';
import { readStagedRows, stagedSummary, type StagedRowView, type StagedSummary } from './staged-rows.js';

export const REVIEW_PAGE_DEFAULT = 50;
export const REVIEW_PAGE_MAX = 500;
const SAMPLE_ROWS = 20;

export interface ReviewListItem extends ReviewRecord {
  device_id: string;
  source_table: string;
}

/** How one column of the reviewed schema stands against the mirror. */
export interface ReviewColumn extends ColumnInfo {
  state: 'bound' | 'retyped' | 'ignored' | 'new';
  binding: { target_column: string; pg_type: PgType } | null;
  /** What `mirror` does for this column. */
  default_mirror: { target_column: string; pg_type: PgType };
  /** The types `mirror_as` may give it (safe casts for its affinity). */
  safe_types: PgType[];
}

/** The reviewed schema against the one the lineage follows (null when there is none yet). */
export interface SchemaDiff {
  bound_schema_hash: string | null;
  added: string[];
  dropped: string[];
  retyped: SchemaComparison['retyped'];
  key: { from: TableKey; to: TableKey } | null;
  unclear: string[];
}

export interface ReviewDetail extends ReviewRecord {
  lineage: Pick<LineageView, 'id' | 'device_id' | 'source_table' | 'status' | 'pause_cause' | 'status_reason' | 'schema_hash' | 'mirror_table'> & { key: TableKey };
  /** The incoming columns, each with its state against the mirror. */
  schema: { hash: string; key: TableKey; columns: ReviewColumn[] };
  /** The columns an approval must name: all of them, except in a follow-up of deferred columns, which asks only for those. */
  columns_to_decide: string[];
  diff: SchemaDiff;
  staged: StagedSummary & { samples: StagedRowView[] };
  replay: ReplayIntent | null;
  /** The review's audit trail, oldest first. */
  events: AuditEntry[];
}

function parseStatuses(raw: string | undefined): ReviewStatus[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  const list = raw.split(',').map((s) => s.trim());
  for (const s of list) if (!isReviewStatus(s)) throw new SynclineError('invalid_request', `unknown review status ${JSON.stringify(s.slice(0, 40))}`, { field: 'status' });
  return list as ReviewStatus[];
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return REVIEW_PAGE_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > REVIEW_PAGE_MAX) throw new SynclineError('invalid_request', `limit is an integer from 1 to ${REVIEW_PAGE_MAX}`, { field: 'limit' });
  return n;
}

function checkUuid(raw: string | undefined, field: string): string | null {
  if (raw === undefined || raw === '') return null;
  if (!isUuid(raw)) throw new SynclineError('invalid_request', `${field} is not an id`, { field });
  return raw;
}

/** Reviews oldest first (the order an operator works a queue), filtered by status (comma list), lineage or device. */
export async function listReviews(
  db: Queryable,
  query: { status?: string; lineage_id?: string; device_id?: string; limit?: string; after?: string },
): Promise<{ reviews: ReviewListItem[]; next: string | null }> {
  const statuses = parseStatuses(query.status);
  const limit = parseLimit(query.limit);
  const { rows } = await db.query<ReviewListItem & { created_at: Date; updated_at: Date; claimed_at: Date | null; decided_at: Date | null }>(
    `SELECT r.*, l.device_id::text AS device_id, l.source_table FROM edge_schema_reviews r JOIN edge_table_lineages l ON l.id = r.lineage_id
     WHERE ($1::text[] IS NULL OR r.status = ANY($1::text[])) AND ($2::uuid IS NULL OR r.lineage_id = $2) AND ($3::uuid IS NULL OR l.device_id = $3)
       AND ($4::uuid IS NULL OR r.id > $4) ORDER BY r.id LIMIT $5`,
    [statuses ?? null, checkUuid(query.lineage_id, 'lineage_id'), checkUuid(query.device_id, 'device_id'), checkUuid(query.after, 'after'), limit + 1],
  );
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const reviews = rows.slice(0, limit).map((r) => ({ ...r, created_at: r.created_at.toISOString(), updated_at: r.updated_at.toISOString(), claimed_at: iso(r.claimed_at), decided_at: iso(r.decided_at) }));
  return { reviews, next: rows.length > limit ? reviews.at(-1)!.id : null };
}

/** Everything an operator needs to decide: the columns against the mirror, the diff, staged rows with samples, replay and history. */
export async function getReviewDetail(db: Queryable, id: string): Promise<ReviewDetail> {
  const review = await getReview(db, id);
  const lineage = await getLineage(db, review.lineage_id);
  const key: TableKey = { kind: lineage.key_kind, columns: lineage.key_columns };
  const schema = await loadSchema(db, review.lineage_id, review.schema_hash);
  const { comparison, previous, decided } = await compareToLineage(db, { id: lineage.id, schema_hash: lineage.schema_hash }, schema);
  const target = lineage.mirror_table === null ? null : await loadMirrorTarget(db, { id: lineage.id, mirror_table: lineage.mirror_table, key });
  const retyped = new Set(comparison.retyped.map((r) => r.name));
  const names = new Set(schema.columns.map((c) => c.name));
  const columns: ReviewColumn[] = schema.columns.map((c) => {
    const binding = target?.bindings.get(c.name);
    const state = decided.ignored.has(c.name) ? 'ignored' : binding ? (retyped.has(c.name) ? 'retyped' : 'bound') : 'new';
    return {
      ...c,
      state,
      binding: binding ? { target_column: binding.target_column, pg_type: binding.pg_type } : null,
      default_mirror: binding && isSafeCast(c, binding.pg_type) ? { target_column: binding.target_column, pg_type: binding.pg_type } : { target_column: binding?.target_column ?? defaultMirrorColumn(c.name, names), pg_type: pgTypeFor(c) },
      safe_types: safeTypesFor(c),
    };
  });
  const samples = await readStagedRows(db, lineage.id, { limit: SAMPLE_ROWS, schemaHash: review.schema_hash });
  return {
    ...review,
    lineage: { id: lineage.id, device_id: lineage.device_id, source_table: lineage.source_table, status: lineage.status, pause_cause: lineage.pause_cause, status_reason: lineage.status_reason, schema_hash: lineage.schema_hash, mirror_table: lineage.mirror_table, key },
    schema: { hash: review.schema_hash, key: schema.key, columns },
    columns_to_decide: columns.filter((c) => review.origin !== 'defer' || c.state === 'new').map((c) => c.name),
    diff: {
      bound_schema_hash: lineage.schema_hash,
      added: comparison.added.map((c) => c.name),
      dropped: comparison.dropped,
      retyped: comparison.retyped,
      key: previous && comparison.keyChanged ? { from: previous.key, to: schema.key } : null,
      unclear: comparison.unclear,
    },
    staged: { ...(await stagedSummary(db, lineage.id)), samples: samples.rows },
    replay: await latestIntent(db, lineage.id),
    events: await reviewHistory(db, review.id),
  };
}
