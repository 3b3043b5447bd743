import type { Logger } from 'pino';
import type { DecodedRow, RowBatch } from '../../protocol/batch.js';
import { DEFAULT_POLICY, type GovernancePolicy } from '../governance/policy.js';
import { pendingIntent } from '../governance/replay-intents.js';
import { admitSchema, admitWhilePaused, type Admission, type IncomingSchema } from '../governance/schema-gate.js';
import type { Queryable } from '../store/store.js';
import type { Lineage, LineageState } from './lineage.js';
import type { BatchMeta } from './materialize.js';
import { recordSchema } from './mirror-schema.js';
import { isLineageError, materializeSettingAside } from './set-aside.js';
import { dropSupersededRejections, latestRejections, storedKey } from './rejected-rows.js';
import { stageRejected, stageRows } from './stage.js';

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
  return applyAdmission(tx, lineage, batch, rows, meta, admission, options);
}

/** Stages the rows or materializes them as the schema policy admitted them (a group decides admissions for many batches at once). */
export async function applyAdmission(tx: Queryable, lineage: Lineage, batch: RowBatch, rows: readonly DecodedRow[], meta: BatchMeta, admission: Admission, options: ApplyOptions = {}): Promise<ApplyOutcome> {
  if (admission.kind === 'stage') {
    await stageRows(tx, lineage.id, batch, rows, admission.reason, admission.detail);
    return { materialized: 0, state: admission.state };
  }

  // Schema changes are kept even when the rows then fail: the mirror follows the approved
  // schema, and an operator who fixes the cause resumes into it.
  const { target, state } = admission;
  try {
    const result = await materializeSettingAside(tx, target, batch, rows, meta);
    // Every row of the batch is a later change of its key than any row refused before.
    if (lineage.has_rejected_rows) await dropSupersededRejections(tx, lineage.id, rows.map(storedKey));
    await stageRejected(tx, lineage.id, batch, latestRejections(rows, result.rejected));
    if (result.rejected.length > 0) options.logger?.warn({ lineage_id: lineage.id, batch_id: batch.batch_id, rows: result.rejected.length, first: result.rejected[0]!.detail }, 'rows refused by the mirror were set aside');
    return { materialized: result.applied, state };
  } catch (error) {
    if (!isLineageError(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    options.logger?.warn({ lineage_id: lineage.id, batch_id: batch.batch_id, err: error }, 'materialization failed; lineage paused and rows staged');
    const reason = `materialization failed: ${message}`;
    await stageRows(tx, lineage.id, batch, rows, 'materialization_failed', reason);
    return { materialized: 0, state: { ...state, status: 'paused', pause_cause: 'materialization_failed', status_reason: reason } };
  }
}
