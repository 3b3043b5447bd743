import type { Logger } from 'pino';
import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import { DEFAULT_POLICY, type GovernancePolicy } from '../governance/policy.js';
import { pendingIntent } from '../governance/replay-intents.js';
import { admitSchema, admitWhilePaused, type Admission, type IncomingSchema } from '../governance/schema-gate.js';
import { sqlState, type Queryable } from '../store/store.js';
import type { Lineage, LineageState } from './lineage.js';
import { materializeRows, type BatchMeta } from './materialize.js';
import { recordSchema } from './mirror-schema.js';
import { stageRows } from './stage.js';

export interface ApplyOutcome {
  /** Journal rows now in the mirror; the others of the batch were staged. */
  materialized: number;
  state: LineageState;
}

export interface ApplyOptions {
  /** The schema policy; the production default (review everything) when not given. */
  policy?: GovernancePolicy;
  logger?: Logger;
}

export const UNKEYABLE_REASON = 'a key value does not fit the type of its mirror key column';

/**
 * Data the database refuses (class 22), limits it hits (class 54, e.g. a key too
 * long for its index) or two rows it sees as one key (class 21, a safety net
 * behind coalescing): the batch cannot be materialized and retrying will not
 * change that, so its rows are staged and the lineage paused for an operator.
 */
const PERMANENT_CLASSES = ['21', '22', '54'];

export function isPermanentDataError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && PERMANENT_CLASSES.includes(state.slice(0, 2));
}

/**
 * Runs the schema policy for a batch, then materializes its new rows into the
 * mirror or stages them. Never refuses rows: whatever cannot be materialized is
 * staged with a reason, inside the same transaction as the ledger row. A paused
 * lineage, or one whose backlog is still replaying, stages everything, so rows
 * never overtake the ones already staged.
 */
export async function applyRows(tx: Queryable, lineage: Lineage, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta, options: ApplyOptions = {}): Promise<ApplyOutcome> {
  const policy = options.policy ?? DEFAULT_POLICY;
  if (lineage.schema_hash !== batch.schema.hash) await recordSchema(tx, lineage.id, batch);
  const schema: IncomingSchema = { hash: batch.schema.hash, columns: batch.schema.columns, key: batch.key };
  let admission: Admission;
  if (lineage.status === 'paused') admission = await admitWhilePaused(tx, lineage, schema, policy);
  else {
    const replaying = await pendingIntent(tx, lineage.id);
    // Behind the backlog a review released, or one an operator resumed after a failure.
    const reason = replaying?.review_id ? 'schema_review' : 'lineage_paused';
    admission = replaying
      ? { kind: 'stage', state: { status: lineage.status, pause_cause: null, status_reason: null, schema_hash: lineage.schema_hash, mirror_table: lineage.mirror_table }, reason, detail: `queued behind replay ${replaying.id}` }
      : await admitSchema(tx, lineage, schema, policy);
  }
  if (admission.kind === 'stage') {
    await stageRows(tx, lineage.id, batch, rows, admission.reason, admission.detail);
    return { materialized: 0, state: admission.state };
  }

  // Schema changes are kept even when the rows then fail: the mirror follows the approved
  // schema, and an operator who fixes the cause resumes into it.
  const { target, state } = admission;
  await tx.query('SAVEPOINT syncline_materialize');
  try {
    const result = await materializeRows(tx, target, batch, rows, meta);
    await stageRows(tx, lineage.id, batch, result.unkeyable, 'materialization_failed', UNKEYABLE_REASON);
    await tx.query('RELEASE SAVEPOINT syncline_materialize');
    return { materialized: result.applied, state };
  } catch (error) {
    if (!isPermanentDataError(error)) throw error;
    await tx.query('ROLLBACK TO SAVEPOINT syncline_materialize');
    const message = error instanceof Error ? error.message : String(error);
    options.logger?.warn({ lineage_id: lineage.id, batch_id: batch.batch_id, err: error }, 'materialization failed; lineage paused and rows staged');
    const reason = `materialization failed: ${message}`;
    await stageRows(tx, lineage.id, batch, rows, 'materialization_failed', reason);
    return { materialized: 0, state: { ...state, status: 'paused', pause_cause: 'materialization_failed', status_reason: reason } };
  }
}
