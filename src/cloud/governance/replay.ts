import { setImmediate } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RowBatch } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo } from '../../protocol/schema.js';
import { lockLineageById, setLineageState, type Lineage } from '../ingest/lineage.js';
import { isLineageError, materializeSettingAside } from '../ingest/set-aside.js';
import { loadMirrorTarget, loadSchema, type MirrorTarget } from '../ingest/mirror-schema.js';
import { dropSupersededRejections, storedKey } from '../ingest/rejected-rows.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { applyColumnDecision } from './apply-decision.js';
import { sameKey, type SchemaSnapshot } from './classify.js';
import { projectCoalescing } from './coalescing.js';
import { mirrorUnlessIgnored } from './column-plan.js';
import { compareToLineage } from './lineage-schema.js';
import { REPLAY_CHUNK_ROWS, type GovernancePolicy } from './policy.js';
import { finishIntent, pendingIntent, type ReplayIntent } from './replay-intents.js';
import { isRejectedSchema, openReview, reviewReason } from './reviews.js';
import { readStagedRun, splitRuns, type StagedRun } from './staged-runs.js';


export interface ReplayOptions {
  policy: GovernancePolicy;
  chunkRows?: number;
  logger?: Logger;
}

/** What one replay step did: `progress` means call again. */
export interface ReplayStep {
  state: 'progress' | 'done' | 'blocked' | 'failed' | 'idle';
  replayed: number;
}

type RunVerdict = { replay: true; target: MirrorTarget } | { replay: false; stop: () => Promise<ReplayStep> };

/**
 * Replays the next chunk of a lineage's staged rows, in staging order (which is
 * device commit order), in one transaction holding the lineage lock: live ingest
 * of the same lineage waits, and stages its rows behind the backlog while the
 * replay is pending, so nothing overtakes it. Progress (the last staged row
 * handled) commits with the rows it stands for, so a replay killed at any point
 * resumes where the last chunk committed: no row lost, none applied twice. The
 * chunk that finds nothing left ends the replay, and live rows go straight to
 * the mirror again.
 *
 * Rows of a schema the mirror does not cover stop the replay there and open a
 * review for that schema (or, if it was rejected, pause as rejected). An error of
 * the mirror itself (set-aside.ts) stops it as `materialization_failed`; what was
 * replayed before it in the chunk stays. Rows the mirror refuses one by one stay
 * staged as `row_rejected` and are stepped over, unless a later change of their
 * key comes after them (rejected-rows.ts).
 */
export async function replayStep(store: Store, lineageId: string, options: ReplayOptions): Promise<ReplayStep> {
  const chunkRows = options.chunkRows ?? REPLAY_CHUNK_ROWS;
  return transactionWithRetry(store, async (tx) => {
    const lineage = await lockLineageById(tx, lineageId);
    const intent = lineage ? await pendingIntent(tx, lineageId, { forUpdate: true }) : undefined;
    if (!lineage || !intent) return { state: 'idle', replayed: 0 };
    if (lineage.status !== 'active') {
      await finishIntent(tx, lineage, intent, 'blocked', `lineage is paused (${lineage.pause_cause ?? 'unknown'})`);
      return { state: 'idle', replayed: 0 };
    }
    const runs = splitRuns(await readStagedRun(tx, lineage.id, intent.after_id, chunkRows));
    if (runs.length === 0) {
      await finishIntent(tx, lineage, intent, 'done');
      options.logger?.info({ lineage_id: lineage.id, replay_id: intent.id, rows: intent.rows_replayed }, 'replay finished; lineage active');
      return { state: 'done', replayed: 0 };
    }
    let target = await loadMirrorTarget(tx, lineage);
    const schemas = new Map<string, SchemaSnapshot>();
    const progress: Progress = { afterId: intent.after_id, replayed: 0, kept: [], keys: new Set() };
    // Called after the chunk's progress is recorded, so how the replay ended counts every row it replayed.
    let stop: (() => Promise<ReplayStep>) | undefined;
    for (const run of runs) {
      const schema = schemas.get(run.schemaHash) ?? (await loadSchema(tx, lineage.id, run.schemaHash));
      schemas.set(run.schemaHash, schema);
      const verdict = await judgeRun(tx, lineage, intent, target, run.schemaHash, schema, options.policy);
      if (!verdict.replay) {
        stop = verdict.stop;
        break;
      }
      target = verdict.target;
      try {
        const result = await materializeSettingAside(tx, target, runBatch(lineage, run, schema), run.rows, { deviceId: lineage.device_id, epoch: run.epoch, batchId: run.batchId });
        const detail = new Map(result.rejected.map((r) => [r.row, r.detail]));
        run.rows.forEach((row, i) => {
          const key = storedKey(row);
          // A later change of the key supersedes a refused row before it (rejected-rows.ts).
          progress.kept = progress.kept.filter((k) => k.key !== key);
          progress.keys.add(key);
          const why = detail.get(row);
          if (why !== undefined) progress.kept.push({ id: run.ids[i]!, key, detail: why });
        });
        progress.replayed += result.applied;
        progress.afterId = run.ids.at(-1)!;
      } catch (error) {
        if (!isLineageError(error)) throw error;
        const message = `materialization failed: ${error instanceof Error ? error.message : String(error)}`;
        options.logger?.warn({ lineage_id: lineage.id, replay_id: intent.id, batch_id: run.batchId, err: error }, 'replay stopped: the mirror refused staged rows');
        stop = async () => {
          await setLineageState(tx, lineage.id, { status: 'paused', pause_cause: 'materialization_failed', status_reason: `${message} (while replaying)` });
          await finishIntent(tx, lineage, intent, 'failed', message);
          return { state: 'failed', replayed: 0 };
        };
        break;
      }
    }
    await recordProgress(tx, lineage.id, intent, progress);
    const outcome = stop ? await stop() : undefined;
    return outcome ? { ...outcome, replayed: progress.replayed } : { state: 'progress', replayed: progress.replayed };
  });
}

/**
 * Whether a run of rows can go into the mirror as it is bound: same key, and every
 * column bound or ignored (columns the mirror has and the rows lack stay NULL).
 * Nullable additions are added first when the policy allows additive changes.
 */
async function judgeRun(tx: Queryable, lineage: Lineage, intent: ReplayIntent, target: MirrorTarget, hash: string, schema: SchemaSnapshot, policy: GovernancePolicy): Promise<RunVerdict> {
  // Rows of a schema an operator rejected never reach the mirror, even when it would hold them.
  if (hash !== lineage.schema_hash && (await isRejectedSchema(tx, lineage.id, hash))) {
    return {
      replay: false,
      stop: async () => {
        const reason = `staged rows of rejected schema ${hash.slice(0, 12)} wait; purge them, then resume`;
        await setLineageState(tx, lineage.id, { status: 'paused', pause_cause: 'schema_rejected', status_reason: reason });
        await finishIntent(tx, lineage, intent, 'blocked', reason);
        return { state: 'blocked', replayed: 0 };
      },
    };
  }
  const keyMatches = sameKey(schema.key, target.key);
  const unbound = schema.columns.filter((c) => !target.bindings.has(c.name) && !target.ignored.has(c.name));
  if (keyMatches && unbound.length === 0) return { replay: true, target };
  let problem: string | null = null;
  if (keyMatches && policy.additive === 'allow' && unbound.every(isSafeAddition)) {
    try {
      const applied = await applyColumnDecision(tx, lineage, schema, mirrorUnlessIgnored(schema.columns, target.ignored), { coalescing: await projectCoalescing(tx, lineage.project_id) });
      return { replay: true, target: applied.target };
    } catch (error) {
      if (!(error instanceof SynclineError) || error.code !== 'invalid_request') throw error;
      problem = error.message;
    }
  }
  return {
    replay: false,
    stop: async () => {
      const { comparison } = await compareToLineage(tx, lineage, schema);
      const summary = keyMatches ? comparison.summary : `key (${schema.key.columns.join(', ')}) differs from the mirror's (${target.key.columns.join(', ')})`;
      const reason = `staged rows of an older schema: ${summary}${problem ? `; ${problem}` : ''}`;
      const review = await openReview(tx, lineage, { schemaHash: hash, comparison, origin: 'replay', reason });
      await setLineageState(tx, lineage.id, { status: 'paused', pause_cause: 'schema_review', status_reason: reviewReason(review) });
      await finishIntent(tx, lineage, intent, 'blocked', `waiting for schema review ${review.id}`);
      return { state: 'blocked', replayed: 0 };
    },
  };
}

const isSafeAddition = (c: ColumnInfo) => !c.notnull || c.has_default;

function runBatch(lineage: Lineage, run: StagedRun, schema: SchemaSnapshot): RowBatch {
  return {
    format_version: 1,
    batch_id: run.batchId,
    journal_epoch: run.epoch,
    source_table: lineage.source_table,
    key: schema.key,
    schema: { hash: run.schemaHash, columns: [...schema.columns] },
    first_seq: run.rows[0]!.seq,
    last_seq: run.rows.at(-1)!.seq,
    rows: run.rows,
  };
}

interface Progress {
  afterId: string;
  /** Journal rows now in the mirror. */
  replayed: number;
  /** Staged rows handled but kept (refused by the mirror, the latest change of their key), with why; every other id up to afterId was replayed or superseded. */
  kept: { id: string; key: string; detail: string }[];
  /** Keys of every row handled: they supersede rows refused in earlier chunks. */
  keys: Set<string>;
}

async function recordProgress(tx: Queryable, lineageId: string, intent: ReplayIntent, progress: Progress): Promise<void> {
  // A range, not a list of ids: the chunk is every staged row of the lineage in (intent.after_id, afterId],
  // since only transactions holding the lineage lock (ours) stage rows for it.
  if (progress.afterId !== intent.after_id) {
    await dropSupersededRejections(tx, lineageId, progress.keys, String(BigInt(intent.after_id) + 1n));
    await tx.query('DELETE FROM edge_staged_rows WHERE lineage_id = $1 AND id > $2::bigint AND id <= $3::bigint AND id <> ALL($4::bigint[])', [lineageId, intent.after_id, progress.afterId, progress.kept.map((k) => k.id)]);
  }
  // Refused rows stay staged for good; their reason says so whatever paused the lineage when they came.
  if (progress.kept.length > 0) {
    await tx.query(`UPDATE edge_staged_rows s SET reason = 'row_rejected', detail = k.d FROM unnest($1::bigint[], $2::text[]) AS k(i, d) WHERE s.id = k.i`, [
      progress.kept.map((k) => k.id),
      progress.kept.map((k) => k.detail),
    ]);
  }
  await tx.query(
    `UPDATE edge_replay_intents SET after_id = $2::bigint, rows_replayed = rows_replayed + $3::bigint, rows_kept = rows_kept + $4::bigint, updated_at = now() WHERE id = $1`,
    [intent.id, progress.afterId, String(progress.replayed), String(progress.kept.length)],
  );
  if (progress.replayed > 0) {
    await tx.query('UPDATE edge_table_lineages SET rows_applied = rows_applied + $2::bigint, updated_at = now() WHERE id = $1', [lineageId, String(progress.replayed)]);
  }
}

/** Runs replay steps for one lineage until it finishes, blocks, fails or `signal` aborts. */
export async function replayLineage(store: Store, lineageId: string, options: ReplayOptions & { signal?: AbortSignal }): Promise<{ state: ReplayStep['state']; replayed: number }> {
  let replayed = 0;
  for (let steps = 1; ; steps++) {
    const step = await replayStep(store, lineageId, options);
    replayed += step.replayed;
    if (step.state !== 'progress' || options.signal?.aborted) return { state: step.state, replayed };
    // A backlog staged since autovacuum last looked is invisible to the planner, which then
    // sorts the whole backlog for every chunk; fresh statistics make it walk the replay index.
    if (steps === 1) await store.exec('ANALYZE edge_staged_rows');
    // PGlite runs in this thread and its promises settle without returning to the event loop:
    // without a turn of it between chunks, no request (ingest, admin reads) is served until
    // the whole backlog is replayed.
    await setImmediate();
  }
}
