import type { Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import { lockLineageById, setLineageState, type Lineage, type LineageStateChange } from '../ingest/lineage.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { recordAudit } from './audit.js';
import { openReviewOf, SYSTEM_ACTOR, type ActorLabel } from './reviews.js';

export type ReplayState = 'pending' | 'done' | 'blocked' | 'failed';

/** A request to drain a lineage's staged rows into its mirror, with its progress. */
export interface ReplayIntent {
  id: string;
  lineage_id: string;
  review_id: string | null;
  requested_by: string;
  state: ReplayState;
  after_id: string;
  rows_total: number;
  rows_replayed: number;
  /** Rows left staged because their key fits no mirror key column. */
  rows_kept: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

type IntentRow = Omit<ReplayIntent, 'rows_total' | 'rows_replayed' | 'rows_kept' | 'created_at' | 'updated_at' | 'finished_at'> & {
  rows_total: string;
  rows_replayed: string;
  rows_kept: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
};

const COLUMNS = 'id, lineage_id, review_id, requested_by, state, after_id, rows_total, rows_replayed, rows_kept, last_error, created_at, updated_at, finished_at';

function toIntent(row: IntentRow): ReplayIntent {
  return {
    ...row,
    rows_total: Number(row.rows_total),
    rows_replayed: Number(row.rows_replayed),
    rows_kept: Number(row.rows_kept),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    finished_at: row.finished_at ? row.finished_at.toISOString() : null,
  };
}

export async function pendingIntent(tx: Queryable, lineageId: string, options: { forUpdate?: boolean } = {}): Promise<ReplayIntent | undefined> {
  const { rows } = await tx.query<IntentRow>(`SELECT ${COLUMNS} FROM edge_replay_intents WHERE lineage_id = $1 AND state = 'pending'${options.forUpdate ? ' FOR UPDATE' : ''}`, [lineageId]);
  return rows[0] ? toIntent(rows[0]) : undefined;
}

/** The pending replay of each of many lineages, in one statement, by lineage id (ingest needs only its id and review). */
export async function pendingIntents(tx: Queryable, lineageIds: readonly string[]): Promise<Map<string, Pick<ReplayIntent, 'id' | 'review_id'>>> {
  if (lineageIds.length === 0) return new Map();
  const { rows } = await tx.query<{ lineage_id: string; id: string; review_id: string | null }>(
    `SELECT lineage_id::text, id, review_id FROM edge_replay_intents WHERE lineage_id = ANY($1::uuid[]) AND state = 'pending'`,
    [lineageIds],
  );
  return new Map(rows.map((r) => [r.lineage_id, { id: r.id, review_id: r.review_id }]));
}

/** The lineage's most recent replay, or null when it never had one. */
export async function latestIntent(db: Queryable, lineageId: string): Promise<ReplayIntent | null> {
  if (!isUuid(lineageId)) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  const { rows } = await db.query<IntentRow>(`SELECT ${COLUMNS} FROM edge_replay_intents WHERE lineage_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`, [lineageId]);
  return rows[0] ? toIntent(rows[0]) : null;
}

/** Ends a replay and records how it ended in the audit log. */
export async function finishIntent(
  tx: Queryable,
  lineage: Pick<Lineage, 'id' | 'project_id'>,
  intent: ReplayIntent,
  state: Exclude<ReplayState, 'pending'>,
  lastError: string | null = null,
): Promise<void> {
  const { rows } = await tx.query<{ rows_replayed: string; rows_kept: string }>(
    `UPDATE edge_replay_intents SET state = $2, last_error = $3, finished_at = now(), updated_at = now() WHERE id = $1 RETURNING rows_replayed, rows_kept`,
    [intent.id, state, lastError],
  );
  const detail = { replay_id: intent.id, rows_total: intent.rows_total, rows_replayed: Number(rows[0]?.rows_replayed ?? 0), rows_kept: Number(rows[0]?.rows_kept ?? 0), ...(lastError ? { error: lastError } : {}) };
  await recordAudit(tx, { actor: SYSTEM_ACTOR, action: `replay.${state}`, project_id: lineage.project_id, lineage_id: lineage.id, review_id: intent.review_id, detail });
}

/**
 * After a decision: the lineage turns active, with `change` (schema, mirror, key)
 * applied. When staged rows wait, a replay intent is recorded for the worker; until
 * it is done, new batches queue behind the backlog (staged, in order), so nothing
 * overtakes a row that came before it.
 */
export async function startReplay(
  tx: Queryable,
  lineage: Lineage,
  request: { reviewId: string | null; actor: ActorLabel; change?: Pick<LineageStateChange, 'schema_hash' | 'mirror_table' | 'key'> },
): Promise<ReplayIntent | null> {
  const { rows } = await tx.query<{ n: string }>('SELECT count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1', [lineage.id]);
  const staged = Number(rows[0]?.n ?? 0);
  const existing = await pendingIntent(tx, lineage.id, { forUpdate: true });
  if (existing) await finishIntent(tx, lineage, existing, 'blocked', 'replaced by a newer replay');
  await setLineageState(tx, lineage.id, { ...request.change, status: 'active', pause_cause: null, status_reason: null });
  if (staged === 0) return null;
  const inserted = await tx.query<IntentRow>(
    `INSERT INTO edge_replay_intents (id, lineage_id, review_id, requested_by, rows_total) VALUES ($1, $2, $3, $4, $5::bigint) RETURNING ${COLUMNS}`,
    [uuidv7(), lineage.id, request.reviewId, request.actor, String(staged)],
  );
  const intent = toIntent(inserted.rows[0]!);
  await recordAudit(tx, { actor: request.actor, action: 'replay.start', project_id: lineage.project_id, lineage_id: lineage.id, review_id: request.reviewId, detail: { replay_id: intent.id, rows_total: staged } });
  return intent;
}

/**
 * The operator's "resume": after a materialization failure was fixed (or rows of a
 * rejected schema were purged), replays what is staged and goes active again.
 * A lineage waiting for a review is resumed by deciding the review instead; one
 * that is replaying answers its replay.
 */
export async function resumeLineage(tx: Queryable, lineageId: string, actor: ActorLabel): Promise<{ lineage_id: string; replay: ReplayIntent | null }> {
  const lineage = isUuid(lineageId) ? await lockLineageById(tx, lineageId) : undefined;
  if (!lineage) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  const context = { lineage_id: lineage.id, pause_cause: lineage.pause_cause };
  switch (lineage.pause_cause) {
    case null: {
      const replaying = await pendingIntent(tx, lineage.id);
      if (replaying) return { lineage_id: lineage.id, replay: replaying };
      throw new SynclineError('conflict', 'the lineage is active; there is nothing to resume', context);
    }
    case 'schema_review': {
      const review = await openReviewOf(tx, lineage.id);
      throw new SynclineError('conflict', `the lineage waits for schema review ${review?.id ?? '(none)'}; approve or reject it`, { ...context, review_id: review?.id });
    }
    case 'schema_rejected':
    case 'materialization_failed':
      if (lineage.mirror_table === null) throw new SynclineError('conflict', 'no schema of this lineage was approved yet; there is no mirror to replay into', context);
      return { lineage_id: lineage.id, replay: await startReplay(tx, lineage, { reviewId: null, actor }) };
  }
}

/**
 * Tries a lineage's `row_rejected` rows again, in the order they came: a replay
 * of its staged rows (on an active lineage with no replay running they are all
 * refused rows), behind which new batches queue until it is done. Each refused row
 * is the latest change of its key (rejected-rows.ts), so whatever now goes in is
 * what the device holds; a row refused again stays, with the new message. For the
 * operator once the cause is gone (a DBA widened a column), and run by the server
 * itself when it can be (a mirror converted to digest keys). A paused lineage is
 * resumed instead (its replay takes the refused rows too); one replaying answers
 * its replay.
 */
export async function retryRejectedRows(tx: Queryable, lineageId: string, actor: ActorLabel): Promise<{ lineage_id: string; rows_rejected: number; replay: ReplayIntent | null }> {
  const lineage = isUuid(lineageId) ? await lockLineageById(tx, lineageId) : undefined;
  if (!lineage) throw new SynclineError('not_found', 'no such lineage', { lineage_id: lineageId.slice(0, 64) });
  const { rows } = await tx.query<{ n: string }>(`SELECT count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1 AND reason = 'row_rejected'`, [lineage.id]);
  const rejected = Number(rows[0]?.n ?? 0);
  const replaying = await pendingIntent(tx, lineage.id);
  if (replaying) return { lineage_id: lineage.id, rows_rejected: rejected, replay: replaying };
  if (lineage.status !== 'active') {
    throw new SynclineError('conflict', `the lineage is paused (${lineage.pause_cause ?? 'unknown'}); resume it (or decide its review) and its replay tries the refused rows too`, { lineage_id: lineage.id, pause_cause: lineage.pause_cause });
  }
  if (rejected === 0) return { lineage_id: lineage.id, rows_rejected: 0, replay: null };
  return { lineage_id: lineage.id, rows_rejected: rejected, replay: await startReplay(tx, lineage, { reviewId: null, actor }) };
}

/** Starts a retry of the refused rows of each lineage (a paused one retries them when it is resumed), then wakes the replay worker. */
export async function retryRejectedAfter(store: Store, lineageIds: readonly string[], logger: Logger | undefined, wake: () => void): Promise<void> {
  for (const id of lineageIds) {
    try {
      const { rows_rejected } = await transactionWithRetry(store, (tx) => retryRejectedRows(tx, id, SYSTEM_ACTOR));
      if (rows_rejected > 0) logger?.info({ lineage_id: id, rows: rows_rejected }, 'refused rows are tried again');
    } catch (error) {
      if (!(error instanceof SynclineError && error.code === 'conflict')) throw error;
    }
  }
  wake();
}
