import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo } from '../../protocol/schema.js';
import { encodeValue, type WireValue } from '../../protocol/values.js';
import { loadSchema } from '../ingest/mirror-schema.js';
import type { StagingReason } from '../ingest/stage.js';
import { getLineage } from '../query/lineages.js';
import type { Queryable } from '../store/store.js';
import { decodeStaged, type StagedRecord } from './staged-runs.js';

export const STAGED_PAGE_DEFAULT = 50;
export const STAGED_PAGE_MAX = 500;

/** A staged row for an operator: values in wire encoding, named by the columns of the schema they came in. */
export interface StagedRowView {
  id: number;
  batch_id: string;
  journal_epoch: string;
  seq: number;
  op: string;
  schema_hash: string;
  reason: StagingReason;
  /** The reason in words (the review it waits for, the database's refusal). */
  detail: string | null;
  staged_at: string;
  pk: WireValue[];
  /** Null for deletes. */
  values: Record<string, WireValue> | null;
}

export interface StagedSummary {
  rows: number;
  by_schema: { schema_hash: string; rows: number }[];
  by_reason: { reason: string; rows: number }[];
}

type Row = StagedRecord & { reason: StagingReason; detail: string | null; staged_at: Date };

export function parseStagedLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return STAGED_PAGE_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > STAGED_PAGE_MAX) throw new SynclineError('invalid_request', `limit is an integer from 1 to ${STAGED_PAGE_MAX}`, { field: 'limit' });
  return n;
}

function parseAfter(raw: string | undefined): string {
  if (raw === undefined || raw === '') return '0';
  if (!/^[0-9]{1,18}$/.test(raw)) throw new SynclineError('invalid_request', 'after is the id of the last staged row of the previous page', { field: 'after' });
  return raw;
}

/** One page of a lineage's staged rows in staging (commit) order, optionally of one schema. */
export async function readStagedRows(
  db: Queryable,
  lineageId: string,
  options: { limit?: number; after?: string; schemaHash?: string } = {},
): Promise<{ rows: StagedRowView[]; next: string | null }> {
  const lineage = await getLineage(db, lineageId);
  const limit = options.limit ?? STAGED_PAGE_DEFAULT;
  const { rows } = await db.query<Row>(
    `SELECT id::text AS id, batch_id::text AS batch_id, journal_epoch, seq::text AS seq, op, pk, row, schema_hash, reason, detail, staged_at
     FROM edge_staged_rows s WHERE lineage_id = $1 AND s.id > $2::bigint AND ($3::text IS NULL OR schema_hash = $3) ORDER BY s.id LIMIT $4`,
    [lineage.id, parseAfter(options.after), options.schemaHash ?? null, limit + 1],
  );
  const page = rows.slice(0, limit);
  const schemas = new Map<string, readonly ColumnInfo[]>();
  for (const hash of new Set(page.map((r) => r.schema_hash))) schemas.set(hash, (await loadSchema(db, lineage.id, hash)).columns);
  return { rows: page.map((r) => toView(r, schemas.get(r.schema_hash)!)), next: rows.length > limit ? page.at(-1)!.id : null };
}

function toView(record: Row, columns: readonly ColumnInfo[]): StagedRowView {
  const decoded = decodeStaged(record);
  return {
    id: Number(record.id),
    batch_id: record.batch_id,
    journal_epoch: record.journal_epoch,
    seq: decoded.seq,
    op: decoded.op,
    schema_hash: record.schema_hash,
    reason: record.reason,
    detail: record.detail,
    staged_at: record.staged_at.toISOString(),
    pk: decoded.pk.map(encodeValue),
    // fromEntries defines own properties, so a column named __proto__ stays a column.
    values: decoded.row ? Object.fromEntries(columns.map((c, i) => [c.name, encodeValue(decoded.row![i] ?? null)])) : null,
  };
}

export async function stagedSummary(db: Queryable, lineageId: string): Promise<StagedSummary> {
  const bySchema = await db.query<{ schema_hash: string; n: string }>(
    'SELECT schema_hash, count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1 GROUP BY schema_hash ORDER BY min(id)',
    [lineageId],
  );
  const byReason = await db.query<{ reason: string; n: string }>(
    'SELECT reason, count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1 GROUP BY reason ORDER BY min(id)',
    [lineageId],
  );
  const by_schema = bySchema.rows.map((r) => ({ schema_hash: r.schema_hash, rows: Number(r.n) }));
  return { rows: by_schema.reduce((sum, s) => sum + s.rows, 0), by_schema, by_reason: byReason.rows.map((r) => ({ reason: r.reason, rows: Number(r.n) })) };
}
