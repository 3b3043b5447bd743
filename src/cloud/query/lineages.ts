import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import { latestIntent, type ReplayIntent } from '../governance/replay-intents.js';
import { stagedSummary } from '../governance/staged-rows.js';
import type { PauseReason } from '../../protocol/control.js';
import type { PauseCause } from '../ingest/lineage.js';
import type { Queryable } from '../store/store.js';

/** A lineage as the admin API shows it; counters are numbers (exact below 2^53). */
export interface LineageView {
  id: string;
  project_id: string;
  device_id: string;
  source_table: string;
  key_kind: 'primary_key' | 'rowid';
  key_columns: string[];
  status: 'active' | 'paused';
  /** Why a paused lineage is paused (schema_review, schema_rejected, materialization_failed); null when active. */
  pause_cause: PauseCause | null;
  status_reason: string | null;
  schema_hash: string | null;
  journal_epoch: string | null;
  last_seq: number;
  rows_received: number;
  rows_applied: number;
  mirror_table: string | null;
  created_at: string;
  updated_at: string;
  /** What flow control told the device: keep sending, or stop (and why: backpressure, breaker, an operator). */
  device_state: 'sending' | 'paused';
  device_pause_reason: PauseReason | null;
}

export interface LineageDetail extends LineageView {
  schemas: { hash: string; columns: unknown; key: unknown; first_seen_at: string }[];
  bindings: { source_column: string; target_column: string; pg_type: string }[];
  staged_rows: number;
  /** The staged rows by why they are staged. */
  staged_by_reason: { reason: string; rows: number }[];
  /** The latest replay of staged rows with its progress; `pending` while the backlog drains. */
  replay: ReplayIntent | null;
}

interface LineageRow extends Omit<LineageView, 'last_seq' | 'rows_received' | 'rows_applied' | 'created_at' | 'updated_at'> {
  last_seq: string;
  rows_received: string;
  rows_applied: string;
  created_at: Date;
  updated_at: Date;
}

// A lineage without a flow row was never paused by flow control: its device sends.
const SELECT = `SELECT id, project_id, device_id, source_table, key_kind, key_columns, status, pause_cause, status_reason, schema_hash,
  journal_epoch, last_seq, rows_received, rows_applied, mirror_table, created_at, updated_at,
  coalesce(f.device_state, 'sending') AS device_state, f.pause_reason AS device_pause_reason
  FROM edge_table_lineages LEFT JOIN edge_lineage_flow f ON f.lineage_id = edge_table_lineages.id`;

function toView(row: LineageRow): LineageView {
  return {
    ...row,
    last_seq: Number(row.last_seq),
    rows_received: Number(row.rows_received),
    rows_applied: Number(row.rows_applied),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export const LINEAGE_PAGE_MAX = 10_000;

/**
 * Lineages in creation order, optionally of one device, and a page at a time:
 * `limit` rows after the lineage `after`; `next` is the id to pass as `after` for
 * the following page (null on the last). Without a limit, every lineage.
 */
export async function listLineages(db: Queryable, filter: { deviceId?: string; limit?: number; after?: string } = {}): Promise<{ lineages: LineageView[]; next: string | null }> {
  const bad = (field: string, message: string) => new SynclineError('invalid_request', message, { field });
  if (filter.deviceId !== undefined && !isUuid(filter.deviceId)) throw bad('device_id', 'device_id is not a device id');
  if (filter.after !== undefined && !isUuid(filter.after)) throw bad('after', 'after is the id of the last lineage of the previous page');
  if (filter.limit !== undefined && (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > LINEAGE_PAGE_MAX)) throw bad('limit', `limit is an integer from 1 to ${LINEAGE_PAGE_MAX}`);
  const { rows } = await db.query<LineageRow>(
    `${SELECT} WHERE ($1::uuid IS NULL OR device_id = $1::uuid)
       AND ($2::uuid IS NULL OR (created_at, id) > (SELECT created_at, id FROM edge_table_lineages WHERE id = $2::uuid))
     ORDER BY created_at, id LIMIT $3`,
    [filter.deviceId ?? null, filter.after ?? null, filter.limit === undefined ? null : filter.limit + 1],
  );
  const lineages = rows.slice(0, filter.limit ?? rows.length).map(toView);
  return { lineages, next: filter.limit !== undefined && rows.length > filter.limit ? lineages.at(-1)!.id : null };
}

export async function getLineage(db: Queryable, id: string): Promise<LineageView> {
  const row = isUuid(id) ? (await db.query<LineageRow>(`${SELECT} WHERE id = $1`, [id])).rows[0] : undefined;
  if (!row) throw new SynclineError('not_found', 'no such lineage', { lineage_id: id.slice(0, 64) });
  return toView(row);
}

/** A lineage with the schemas it has shown, its column bindings and its staged backlog. */
export async function getLineageDetail(db: Queryable, id: string): Promise<LineageDetail> {
  const lineage = await getLineage(db, id);
  const schemas = await db.query<{ hash: string; columns: unknown; key: unknown; first_seen_at: Date }>(
    'SELECT hash, columns, key, first_seen_at FROM edge_schemas WHERE lineage_id = $1 ORDER BY first_seen_at, hash',
    [id],
  );
  const bindings = await db.query<{ source_column: string; target_column: string; pg_type: string }>(
    'SELECT source_column, target_column, pg_type FROM edge_column_bindings WHERE lineage_id = $1 ORDER BY source_column',
    [id],
  );
  const staged = await db.query<{ n: string }>('SELECT count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1', [id]);
  return {
    ...lineage,
    schemas: schemas.rows.map((s) => ({ ...s, first_seen_at: s.first_seen_at.toISOString() })),
    bindings: bindings.rows,
    staged_rows: Number(staged.rows[0]?.n ?? 0),
    staged_by_reason: (await stagedSummary(db, id)).by_reason,
    replay: await latestIntent(db, id),
  };
}
