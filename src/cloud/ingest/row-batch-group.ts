import type { BatchAck, RowBatch } from '../../protocol/batch.js';
import type { DeviceIdentity } from '../auth/devices.js';
import { pendingIntents } from '../governance/replay-intents.js';
import { latestReviewHashes } from '../governance/reviews.js';
import type { Admission } from '../governance/schema-gate.js';
import { sqlState, type Queryable } from '../store/store.js';
import type { ApplyOptions } from './apply-rows.js';
import type { GroupJob, Outcome, SetRunner } from './group-commit.js';
import { lineageKey, lockLineages, updateLineages, type Lineage, type LineageUpdate } from './lineage.js';
import { copyable, materializeRows, prepareRows, UNIQUE_VIOLATION, writePrepared, type PreparedRows } from './materialize.js';
import { INLINE_MAX_ROWS, insertInline } from './inline-rows.js';
import { loadMirrorTargets, recordSchemas } from './mirror-schema.js';
import { insertSegments, ledgerKey, segmentAck, storedAcks, type SegmentEntry } from './segment-ledger.js';
import { stageParts, type StagePart } from './stage.js';

/** A row batch as a group job: what the set-based run needs besides the job itself. */
export interface RowBatchJob extends GroupJob<BatchAck> {
  device: DeviceIdentity;
  batch: RowBatch;
  byteCount: number;
  options: ApplyOptions;
}

/** A batch the set-based steps take, with what its steps decided. */
interface Taken {
  index: number;
  job: RowBatchJob;
  lineage: Lineage;
  entry: SegmentEntry;
  fresh: RowBatch['rows'];
  admission?: Admission;
}

/**
 * Ingests the row batches of a group with a statement per step for all of them:
 * one dedupe lookup over every (device, batch_id), one statement locking every
 * lineage (in a fixed order; the missing ones created in one more), one ledger
 * insert, one lookup each of latest reviews, pending replays and mirror
 * targets, one insert of the schemas seen, one staged-rows
 * insert and one lineage update — where each batch alone costs five to ten
 * statements. The answers are those each batch would get alone
 * (ingestInTransaction in ingest-row-batch.ts).
 *
 * Batches that would change governance state beyond their lineage row (a new
 * schema to review or follow, a mirror to alter) and every later batch of a
 * lineage already in the group run afterwards, in order, by their own
 * `inGroup`, inside the same transaction. Rows to materialize go in under one
 * savepoint, a group's small batches of fresh rows as one query of INSERTs
 * (materializeAll).
 */
export const rowBatchRunner: SetRunner = {
  async run(tx: Queryable, jobs: readonly GroupJob<unknown>[]): Promise<Outcome<unknown>[]> {
    const rowJobs = jobs as readonly RowBatchJob[];
    const outcomes: Outcome<unknown>[] = new Array(rowJobs.length);
    const stored = await storedAcks(tx, 'edge_export_segments', rowJobs.map((j) => ({ deviceId: j.device.device_id, batchId: j.batch.batch_id })));
    const lineages = await lockLineages(tx, rowJobs.filter((j) => !stored.has(ledgerKey(j.device.device_id, j.batch.batch_id))));
    const reviewed = await latestReviewHashes(tx, [...lineages.values()].filter(waitsForReview).map((l) => l.id));

    const taken: Taken[] = [];
    const later: number[] = [];
    const seenBatches = new Set<string>();
    const seenLineages = new Set<string>();
    rowJobs.forEach((job, index) => {
      const { device, batch } = job;
      const batchKey = ledgerKey(device.device_id, batch.batch_id);
      const linKey = lineageKey(device.device_id, batch.source_table);
      // A second copy of a batch, or a later batch of a lineage: after the first, seeing what it wrote.
      if (seenBatches.has(batchKey) || seenLineages.has(linKey)) return void later.push(index);
      seenBatches.add(batchKey);
      const previous = stored.get(batchKey);
      if (previous) return void (outcomes[index] = { ok: true, value: { ...previous, status: 'duplicate' } });
      seenLineages.add(linKey);
      const lineage = lineages.get(linKey)!;
      const context = { device_id: device.device_id, batch_id: batch.batch_id, lineage_id: lineage.id, table: batch.source_table };
      let segment: ReturnType<typeof segmentAck<RowBatch['rows'][number]>>;
      try {
        segment = segmentAck(batch, lineage, context);
      } catch (error) {
        // Refused before any write (a stale epoch): it runs alone after the commit and gets the same refusal.
        return void (outcomes[index] = { ok: false, error });
      }
      // A different schema may open a review or alter a mirror: the batch's own path does that,
      // unless the lineage waits for an operator and nothing new is asked (admitWhilePaused's 'unchanged').
      const newSchema = segment.fresh.length > 0 && lineage.schema_hash !== batch.schema.hash;
      if (newSchema && !(lineage.status === 'paused' && (!waitsForReview(lineage) || reviewed.get(lineage.id) === batch.schema.hash))) return void later.push(index);
      // Refused rows staged: a later change of their key drops them (applyAdmission does).
      if (segment.fresh.length > 0 && lineage.status === 'active' && lineage.has_rejected_rows) return void later.push(index);
      taken.push({ index, job, lineage, fresh: segment.fresh, entry: { deviceId: device.device_id, batch, lineageId: lineage.id, byteCount: job.byteCount, ack: segment.ack } });
    });

    const applying = taken.filter((t) => t.fresh.length > 0);
    await admit(tx, applying);
    await insertSegments(tx, 'edge_export_segments', taken.map((t) => t.entry));
    // A schema its lineage's latest review is about was recorded with the batch that opened the review (a review's
    // schema is always one a batch brought, and schemas are never deleted): a fleet waiting for its first review
    // would otherwise send every batch's columns to an insert that finds them there.
    const unrecorded = applying.filter((t) => t.lineage.schema_hash !== t.job.batch.schema.hash && reviewed.get(t.lineage.id) !== t.job.batch.schema.hash);
    await recordSchemas(tx, unrecorded.map((t) => ({ lineageId: t.lineage.id, batch: t.job.batch })));
    const staged: StagePart[] = [];
    const updates: (LineageUpdate & { id: string })[] = [];
    const materialized = await materializeAll(tx, applying.filter((t) => t.admission!.kind === 'materialize'));
    for (const t of applying) {
      const admission = t.admission!;
      if (admission.kind === 'stage') staged.push({ lineageId: t.lineage.id, batch: t.job.batch, rows: t.fresh, reason: admission.reason, detail: admission.detail });
      updates.push({ id: t.lineage.id, ...admission.state, journal_epoch: t.job.batch.journal_epoch, last_seq: t.entry.ack.last_seq, rows_received: t.fresh.length, rows_applied: materialized.get(t) ?? 0 });
    }
    await stageParts(tx, staged);
    await updateLineages(tx, updates);
    for (const t of taken) outcomes[t.index] = { ok: true, value: t.entry.ack };
    for (const index of later) outcomes[index] = { ok: true, value: await rowJobs[index]!.inGroup(tx) };
    return outcomes;
  },
};

/**
 * Materializes the batches' rows under one savepoint for all of them, where each
 * batch alone takes one for its fresh rows (insertOrUpsert): fresh rows go in
 * unguarded, and when one meets a key its mirror holds (a unique violation) the
 * savepoint is rolled back and every batch runs again guarded, upserting as alone.
 * A savepoint per batch cost two statements a batch, and a subtransaction id
 * each: past 64 of them in one transaction PostgreSQL's snapshots overflow, and
 * every backend's visibility checks read pg_subtrans.
 */
async function materializeAll(tx: Queryable, taken: readonly Taken[]): Promise<Map<Taken, number>> {
  const applied = new Map<Taken, number>();
  if (taken.length === 0) return applied;
  await tx.query(`SAVEPOINT ${GROUP_FRESH_ROWS}`);
  try {
    await writeUnguarded(tx, taken, applied);
  } catch (error) {
    if (sqlState(error) !== UNIQUE_VIOLATION) throw error;
    await tx.query(`ROLLBACK TO SAVEPOINT ${GROUP_FRESH_ROWS}`);
    for (const t of taken) applied.set(t, await upsertInGroup(tx, t));
  }
  await tx.query(`RELEASE SAVEPOINT ${GROUP_FRESH_ROWS}`);
  return applied;
}

const GROUP_FRESH_ROWS = 'syncline_group_fresh_rows';

/**
 * Writes the batches in their order; consecutive small batches of fresh rows go
 * in as one query of INSERTs (insertInline), one round trip for a fleet's group
 * where each batch's COPY took two. Batches with deletes or updates, and big
 * ones, run their own statements between, so every mirror sees its batches'
 * writes in the group's order.
 */
async function writeUnguarded(tx: Queryable, taken: readonly Taken[], applied: Map<Taken, number>): Promise<void> {
  const prepared = taken.map((t) => {
    const rows = prepareRows(materializing(t).target, t.job.batch, t.fresh, batchMeta(t));
    if (rows.unkeyable.length > 0) throw new SetAsideInGroup(t.lineage.id);
    applied.set(t, rows.applied);
    return rows;
  });
  for (let i = 0; i < prepared.length; ) {
    let end = i;
    while (end < prepared.length && inlineable(prepared[end]!)) end += 1;
    if (end - i > 1) await insertInline(tx, prepared.slice(i, end));
    else await writePrepared(tx, prepared[i]!, false);
    i = Math.max(end, i + 1);
  }
}

const inlineable = (rows: PreparedRows): boolean => copyable(rows) && rows.upserts.length <= INLINE_MAX_ROWS;

const materializing = (t: Taken) => t.admission as Extract<Admission, { kind: 'materialize' }>;
const batchMeta = (t: Taken) => ({ deviceId: t.job.device.device_id, epoch: t.job.batch.journal_epoch, batchId: t.job.batch.batch_id });

/**
 * Materializes a batch's rows guarded (fresh rows upserted when they meet a key),
 * without the savepoints applyAdmission keeps for setting refused rows aside
 * (two statements of its five): any failure here rolls the whole group back, and
 * the group runs again with each batch by its own path, which sets aside, stages
 * or pauses exactly as alone; so does a row whose key its mirror cannot hold
 * (rare: once set aside, its lineage's batches take their own path inside the group).
 */
async function upsertInGroup(tx: Queryable, t: Taken): Promise<number> {
  const done = await materializeRows(tx, materializing(t).target, t.job.batch, t.fresh, batchMeta(t));
  if (done.unkeyable.length > 0) throw new SetAsideInGroup(t.lineage.id);
  return done.applied;
}

/** A batch that needs applyAdmission's setting aside: the group is rolled back and runs batch by batch. */
class SetAsideInGroup extends Error {
  constructor(lineageId: string) {
    super(`lineage ${lineageId} has rows to set aside; the group runs batch by batch`);
  }
}

/**
 * The schema policy's decision for batches whose schema is the lineage's own
 * (the only ones taken here), as admitSchema and admitWhilePaused decide it: a
 * paused lineage stages; an active one stages behind a pending replay, or
 * materializes into its mirror.
 */
async function admit(tx: Queryable, taken: Taken[]): Promise<void> {
  const active = taken.filter((t) => t.lineage.status === 'active');
  const replays = await pendingIntents(tx, active.map((t) => t.lineage.id));
  const materializing: Taken[] = [];
  for (const t of taken) {
    const { lineage } = t;
    const state = { status: lineage.status, pause_cause: lineage.pause_cause, status_reason: lineage.status_reason, schema_hash: lineage.schema_hash, mirror_table: lineage.mirror_table };
    const replay = replays.get(lineage.id);
    if (lineage.status === 'paused') t.admission = { kind: 'stage', state, reason: lineage.pause_cause === 'materialization_failed' ? 'lineage_paused' : 'schema_review', detail: lineage.status_reason };
    else if (replay) t.admission = { kind: 'stage', state: { ...state, pause_cause: null, status_reason: null }, reason: replay.review_id ? 'schema_review' : 'lineage_paused', detail: `queued behind replay ${replay.id}` };
    else materializing.push(t);
  }
  const targets = await loadMirrorTargets(tx, materializing.map((t) => t.lineage));
  for (const t of materializing) {
    const { lineage } = t;
    t.admission = { kind: 'materialize', target: targets.get(lineage.id)!, state: { status: lineage.status, pause_cause: lineage.pause_cause, status_reason: lineage.status_reason, schema_hash: lineage.schema_hash, mirror_table: lineage.mirror_table } };
  }
}

/** A lineage paused for a schema review (or its rejection): a batch in another schema may need a review of its own. */
const waitsForReview = (lineage: Lineage): boolean => lineage.status === 'paused' && (lineage.pause_cause === 'schema_review' || lineage.pause_cause === 'schema_rejected');
