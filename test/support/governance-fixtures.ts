import { uuidv7 } from 'uuidv7';
import type { DeviceIdentity } from '../../src/cloud/auth/devices.js';
import { approveReview, type ApproveResult } from '../../src/cloud/governance/approve.js';
import type { ColumnAction } from '../../src/cloud/governance/column-plan.js';
import { governancePolicy, type GovernancePolicy } from '../../src/cloud/governance/policy.js';
import { replayLineage } from '../../src/cloud/governance/replay.js';
import { claimReview } from '../../src/cloud/governance/review-actions.js';
import { getReview, openReviewOf, type ReviewRecord } from '../../src/cloud/governance/reviews.js';
import { loadSchema } from '../../src/cloud/ingest/mirror-schema.js';
import { ingestRowBatch } from '../../src/cloud/ingest/ingest-row-batch.js';
import type { Store } from '../../src/cloud/store/store.js';
import type { BatchAck } from '../../src/protocol/batch.js';
import type { SqlValue } from '../../src/protocol/values.js';
import { rowBatch, type RowSpec, type TableSpec } from './cloud-batches.js';

export const REVIEW = governancePolicy('review');
export const REVIEW_ALLOW_ADDITIVE = governancePolicy('review', 'allow');
export const AUTO = governancePolicy('auto');

export const upsert = (seq: number, row: SqlValue[], op: RowSpec['op'] = 'insert'): RowSpec => ({ seq, op, pk: [row[0]!], row });
export const remove = (seq: number, key: SqlValue): RowSpec => ({ seq, op: 'delete', pk: [key] });

/** One device's journal: an epoch and the batches it sends, through the real ingest. */
export class FakeDevice {
  readonly epoch = uuidv7();
  constructor(
    readonly store: Store,
    readonly identity: DeviceIdentity,
    readonly policy: GovernancePolicy = REVIEW,
  ) {}

  send(spec: TableSpec, rows: readonly RowSpec[]): Promise<BatchAck> {
    return ingestRowBatch(this.store, this.identity, rowBatch(spec, rows, { epoch: this.epoch }), 100, { policy: this.policy });
  }
}

export async function openReview(store: Store, lineageId: string): Promise<ReviewRecord> {
  const review = await openReviewOf(store, lineageId);
  if (!review) throw new Error(`lineage ${lineageId} has no open review`);
  return review;
}

/**
 * What a test approves with: explicit column actions, and optionally a default for
 * the columns it does not name, expanded to explicit actions here as the CLI's
 * --all-mirror does (the API itself refuses unmentioned columns).
 */
export interface ApproveSpec {
  columns?: ColumnAction[];
  default_action?: 'mirror' | 'ignore';
}

export async function columnsFor(store: Store, reviewId: string, spec: ApproveSpec): Promise<ColumnAction[]> {
  const review = await getReview(store, reviewId);
  const schema = await loadSchema(store, review.lineage_id, review.schema_hash);
  const named = new Set((spec.columns ?? []).map((c) => c.name));
  const keys = new Set(schema.key.columns);
  const rest: ColumnAction[] = schema.columns
    .filter((c) => !named.has(c.name) && spec.default_action !== undefined)
    .map((c) => ({ name: c.name, action: spec.default_action === 'ignore' && !keys.has(c.name) ? 'ignore' : 'mirror' }));
  return [...(spec.columns ?? []), ...rest];
}

/** Claims and approves a review as `actor`, each in its own transaction, as an operator would. */
export async function approve(store: Store, reviewId: string, spec: ApproveSpec, actor = 'alice'): Promise<ApproveResult> {
  const columns = await columnsFor(store, reviewId, spec);
  const claimed = await store.transaction((tx) => claimReview(tx, reviewId, actor));
  return store.transaction((tx) => approveReview(tx, reviewId, { columns, action_version: claimed.action_version }, actor));
}

export function replay(store: Store, lineageId: string, policy: GovernancePolicy = REVIEW, chunkRows?: number) {
  return replayLineage(store, lineageId, { policy, ...(chunkRows ? { chunkRows } : {}) });
}

export async function lineageRow(store: Store, lineageId: string): Promise<{ status: string; pause_cause: string | null; status_reason: string | null; schema_hash: string | null; mirror_table: string | null }> {
  const { rows } = await store.query<{ status: string; pause_cause: string | null; status_reason: string | null; schema_hash: string | null; mirror_table: string | null }>(
    'SELECT status, pause_cause, status_reason, schema_hash, mirror_table FROM edge_table_lineages WHERE id = $1',
    [lineageId],
  );
  return rows[0]!;
}

export async function stagedCount(store: Store, lineageId: string): Promise<number> {
  const { rows } = await store.query<{ n: string }>('SELECT count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1', [lineageId]);
  return Number(rows[0]!.n);
}
