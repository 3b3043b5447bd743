import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import { pgSafeText } from '../type-mapping.js';
import type { Queryable } from '../store/store.js';

/**
 * What the audit log records. Review transitions, purges and replays are written
 * in the transaction that does them, so the log never claims something that was
 * rolled back, and never misses something that was committed.
 */
export type AuditAction =
  | 'review.open'
  | 'review.claim'
  | 'review.release'
  | 'review.approve'
  | 'review.reject'
  | 'review.supersede'
  | 'staged.purge'
  | 'replay.start'
  | 'replay.done'
  | 'replay.blocked'
  | 'replay.failed'
  | 'token.create'
  | 'token.revoke'
  | 'project.settings'
  | 'flow.pause'
  | 'flow.resume';

export interface AuditRecord {
  /** The admin token's label, or `system` for what Syncline did on its own. */
  actor: string;
  action: AuditAction;
  project_id?: string | null;
  lineage_id?: string | null;
  review_id?: string | null;
  detail?: unknown;
}

export interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  action: AuditAction;
  project_id: string | null;
  lineage_id: string | null;
  review_id: string | null;
  detail: unknown;
}

export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1000;

export async function recordAudit(tx: Queryable, record: AuditRecord): Promise<void> {
  await tx.query(
    'INSERT INTO edge_audit_log (actor, action, project_id, lineage_id, review_id, detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)',
    [record.actor, record.action, record.project_id ?? null, record.lineage_id ?? null, record.review_id ?? null, record.detail === undefined ? null : JSON.stringify(record.detail)],
  );
}

export interface AuditQuery {
  lineage_id?: string | undefined;
  review_id?: string | undefined;
  action?: string | undefined;
  actor?: string | undefined;
  limit?: string | undefined;
  /** The id of the oldest entry of the previous page. */
  before?: string | undefined;
}

const AUDIT_PARAMS: ReadonlySet<string> = new Set(['lineage_id', 'review_id', 'action', 'actor', 'limit', 'before']);

const invalid = (field: string, message: string) => new SynclineError('invalid_request', message, { field });

function uuidParam(raw: string | undefined, field: string): string | null {
  if (raw === undefined || raw === '') return null;
  if (!isUuid(raw)) throw invalid(field, `${field} is not an id`);
  return raw;
}

function limitParam(raw: string | undefined): number {
  if (raw === undefined || raw === '') return AUDIT_PAGE_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > AUDIT_PAGE_MAX) throw invalid('limit', `limit is an integer from 1 to ${AUDIT_PAGE_MAX}`);
  return n;
}

/** Audit entries, newest first, filtered by lineage, review, action (exact or a `review.` prefix) or actor. */
export async function listAudit(db: Queryable, query: AuditQuery): Promise<{ entries: AuditEntry[]; next: string | null }> {
  // A misspelt filter (`after` for `before`, `lineage` for `lineage_id`) would silently return everything.
  const unknown = Object.keys(query).find((key) => !AUDIT_PARAMS.has(key));
  if (unknown !== undefined) throw invalid(unknown.slice(0, 40), `unknown query parameter ${JSON.stringify(unknown.slice(0, 40))}; the audit log takes ${[...AUDIT_PARAMS].join(', ')}`);
  for (const field of ['action', 'actor'] as const) {
    const value = query[field];
    if (value !== undefined && !pgSafeText(value)) throw invalid(field, `${field} cannot hold NUL or lone surrogates`);
  }
  const limit = limitParam(query.limit);
  if (query.before !== undefined && query.before !== '' && !/^[0-9]{1,18}$/.test(query.before)) throw invalid('before', 'before is the id of the last entry of the previous page');
  const action = query.action === undefined || query.action === '' ? null : query.action.slice(0, 100);
  const { rows } = await db.query<Omit<AuditEntry, 'at'> & { at: Date }>(
    `SELECT id::text AS id, at, actor, action, project_id, lineage_id::text AS lineage_id, review_id::text AS review_id, detail FROM edge_audit_log
     WHERE ($1::uuid IS NULL OR lineage_id = $1) AND ($2::uuid IS NULL OR review_id = $2)
       AND ($3::text IS NULL OR action = $3 OR (right($3, 1) = '.' AND starts_with(action, $3)))
       AND ($4::text IS NULL OR actor = $4) AND ($5::bigint IS NULL OR id < $5::bigint)
     ORDER BY edge_audit_log.id DESC LIMIT $6`,
    [uuidParam(query.lineage_id, 'lineage_id'), uuidParam(query.review_id, 'review_id'), action, query.actor || null, query.before || null, limit + 1],
  );
  const entries = rows.slice(0, limit).map((r) => ({ ...r, at: r.at.toISOString() }));
  return { entries, next: rows.length > limit ? entries.at(-1)!.id : null };
}

/** One review's history, oldest first (what the review detail shows). */
export async function reviewHistory(db: Queryable, reviewId: string): Promise<AuditEntry[]> {
  const { rows } = await db.query<Omit<AuditEntry, 'at'> & { at: Date }>(
    `SELECT id::text AS id, at, actor, action, project_id, lineage_id::text AS lineage_id, review_id::text AS review_id, detail FROM edge_audit_log
     WHERE review_id = $1 ORDER BY edge_audit_log.id`,
    [reviewId],
  );
  return rows.map((r) => ({ ...r, at: r.at.toISOString() }));
}
