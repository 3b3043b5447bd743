import assert from 'node:assert/strict';
import { test } from 'node:test';
import { approveReview } from '../../src/cloud/governance/approve.js';
import { listAudit } from '../../src/cloud/governance/audit.js';
import { idempotent } from '../../src/cloud/governance/idempotency.js';
import { reconcileReviews } from '../../src/cloud/governance/reconcile.js';
import { replayLineage } from '../../src/cloud/governance/replay.js';
import { latestIntent, resumeLineage } from '../../src/cloud/governance/replay-intents.js';
import { claimReview, purgeStaged, rejectReview } from '../../src/cloud/governance/review-actions.js';
import { getReview } from '../../src/cloud/governance/reviews.js';
import { readStagedRows } from '../../src/cloud/governance/staged-rows.js';
import { transactionWithRetry, type Queryable, type Store } from '../../src/cloud/store/store.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import { approve, AUTO, columnsFor, FakeDevice, lineageRow, openReview, REVIEW, replay, stagedCount, upsert } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const A: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'INTEGER' }] };
const B: TableSpec = { table: 'readings', columns: [...A.columns, { name: 'unit', type: 'TEXT' }] };
const coded = (code: string, message?: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === code && (!message || message.test(e.message));

/** A store whose transactions fail at the `crashAt`-th statement matching `pattern`, as if the process died there. */
function crashingStore(store: Store, pattern: RegExp, crashAt: number): Store {
  let seen = 0;
  const wrap = (tx: Queryable): Queryable => ({
    query: async (sql, params) => {
      if (pattern.test(sql) && ++seen === crashAt) throw new Error('simulated crash');
      return tx.query(sql, params);
    },
    exec: (sql) => tx.exec(sql),
    copyIn: async (target, data) => {
      if (pattern.test(`COPY ${target}`) && ++seen === crashAt) throw new Error('simulated crash');
      return tx.copyIn(target, data);
    },
  });
  return { kind: store.kind, query: (sql, params) => store.query(sql, params), exec: (sql) => store.exec(sql), copyIn: (target, data) => store.copyIn(target, data), transaction: (fn) => store.transaction((tx) => fn(wrap(tx))), ping: () => store.ping(), listen: (channel, handlers) => store.listen(channel, handlers), close: async () => {} };
}

describeEachStore('schema governance: rejection, purge, failures and retries', (ctx) => {
  const device = async (policy = REVIEW) => new FakeDevice(ctx.store, await newDevice(ctx.store), policy);
  const tx = <T>(fn: Parameters<typeof ctx.store.transaction<T>>[0]) => ctx.store.transaction(fn);

  test('reject keeps rows staged; an explicit purge discards them and is audited; a fixed schema is reviewed and replayed', async () => {
    const d = await device();
    const ack = await d.send(A, [upsert(1, [1n, 10n]), upsert(2, [2n, 20n])]);
    const reviewA = await openReview(ctx.store, ack.lineage_id);
    const claimed = await tx((t) => claimReview(t, reviewA.id, 'alice'));
    const rejected = await tx((t) => rejectReview(t, reviewA.id, { action_version: claimed.action_version, reason: 'v must be REAL' }, 'alice'));
    assert.equal(rejected.review.status, 'rejected');
    let lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.equal(lineage.pause_cause, 'schema_rejected');
    assert.match(lineage.status_reason!, /rejected by alice .*: v must be REAL$/);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 2, 'reject keeps the rows');

    await d.send(A, [upsert(3, [3n, 30n])]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).pause_cause, 'schema_rejected', 'the same schema again opens no review');
    assert.deepEqual((await readStagedRows(ctx.store, ack.lineage_id)).rows.map((r) => r.reason), ['schema_review', 'schema_review', 'schema_review']);
    await d.send(B, [upsert(4, [4n, 40n, 'kg'])]);
    const reviewB = await openReview(ctx.store, ack.lineage_id);
    assert.notEqual(reviewB.schema_hash, reviewA.schema_hash);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).pause_cause, 'schema_review');

    await approve(ctx.store, reviewB.id, { default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'blocked');
    lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.equal(lineage.pause_cause, 'schema_rejected');
    assert.match(lineage.status_reason!, /staged rows of rejected schema .* purge them, then resume/);

    await assert.rejects(tx((t) => purgeStaged(t, ack.lineage_id, { schema_hash: reviewB.schema_hash }, 'alice')), coded('conflict', /only rows staged under a rejected schema/));
    const purged = await tx((t) => purgeStaged(t, ack.lineage_id, {}, 'alice'));
    assert.deepEqual([purged.purged, purged.by_schema], [3, [{ schema_hash: reviewA.schema_hash, rows: 3 }]]);
    await assert.rejects(tx((t) => purgeStaged(t, ack.lineage_id, {}, 'alice')), coded('conflict', /no rows of a rejected schema/));
    assert.ok((await tx((t) => resumeLineage(t, ack.lineage_id, 'alice'))).replay);
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v', 'unit']), [[4n, 40n, 'kg']]);
    const audit = (await listAudit(ctx.store, { lineage_id: ack.lineage_id })).entries.reverse().map((e) => [e.action, e.actor]);
    assert.deepEqual(audit, [
      ['review.open', 'system'],
      ['review.claim', 'alice'],
      ['review.reject', 'alice'],
      ['review.open', 'system'],
      ['review.claim', 'alice'],
      ['review.approve', 'alice'],
      ['replay.start', 'alice'],
      ['replay.blocked', 'system'],
      ['staged.purge', 'alice'],
      ['replay.start', 'alice'],
      ['replay.done', 'system'],
    ]);
  });

  test('a replay that dies mid-chunk resumes where the last chunk committed: nothing lost, nothing applied twice', async () => {
    const d = await device();
    const rows = Array.from({ length: 40 }, (_, i) => upsert(i + 1, [BigInt((i % 25) + 1), BigInt(i)], i < 25 ? 'insert' : 'update'));
    const ack = await d.send(A, rows);
    await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    // The third chunk's progress write fails: that chunk's mirror writes roll back with it.
    const dying = crashingStore(ctx.store, /UPDATE edge_replay_intents SET after_id/, 3);
    await assert.rejects(replayLineage(dying, ack.lineage_id, { policy: REVIEW, chunkRows: 7 }), /simulated crash/);
    const interrupted = await latestIntent(ctx.store, ack.lineage_id);
    assert.deepEqual([interrupted?.state, interrupted?.rows_replayed, await stagedCount(ctx.store, ack.lineage_id)], ['pending', 14, 26]);
    assert.deepEqual(await replayLineage(ctx.store, ack.lineage_id, { policy: REVIEW, chunkRows: 7 }), { state: 'done', replayed: 26 });
    const done = await latestIntent(ctx.store, ack.lineage_id);
    assert.deepEqual([done?.state, done?.rows_total, done?.rows_replayed], ['done', 40, 40]);
    const mirror = decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']);
    assert.deepEqual(mirror, Array.from({ length: 25 }, (_, i) => [BigInt(i + 1), BigInt(i < 15 ? i + 25 : i)]));
    const counters = await ctx.store.query<{ rows_applied: string }>('SELECT rows_applied FROM edge_table_lineages WHERE id = $1', [ack.lineage_id]);
    assert.equal(counters.rows[0]!.rows_applied, '40');
  });

  test('a failure of the mirror itself pauses; once the cause is fixed, resume replays the staged rows', async () => {
    const d = await device();
    const ack = await d.send(A, [upsert(1, [1n, 10n])]);
    await assert.rejects(tx((t) => resumeLineage(t, ack.lineage_id, 'alice')), coded('conflict', /waits for schema review/));
    const approved = await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack.lineage_id);
    await assert.rejects(tx((t) => resumeLineage(t, ack.lineage_id, 'alice')), coded('conflict', /lineage is active/));

    // A DBA renames a mirror column: no row can go in (SQLSTATE 42703), which is not about any one row.
    await ctx.store.exec(`ALTER TABLE "${approved.mirror_table}" RENAME COLUMN v TO v_old`);
    const failing = await d.send(A, [upsert(2, [2n, 20n]), upsert(3, [3n, 30n])]);
    assert.deepEqual([failing.status, failing.rows_applied], ['accepted', 2]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).pause_cause, 'materialization_failed');
    await d.send(A, [upsert(4, [4n, 40n])]);
    assert.deepEqual((await readStagedRows(ctx.store, ack.lineage_id)).rows.map((r) => r.reason), ['materialization_failed', 'materialization_failed', 'lineage_paused']);

    const retried = await tx((t) => resumeLineage(t, ack.lineage_id, 'alice'));
    assert.equal(retried.replay?.rows_total, 3);
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'failed');
    const lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.equal(lineage.pause_cause, 'materialization_failed');
    assert.match(lineage.status_reason!, /\(while replaying\)$/);
    assert.match((await latestIntent(ctx.store, ack.lineage_id))!.last_error!, /^materialization failed: /);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 3, 'nothing lost');

    await ctx.store.exec(`ALTER TABLE "${approved.mirror_table}" RENAME COLUMN v_old TO v`);
    await tx((t) => resumeLineage(t, ack.lineage_id, 'alice'));
    assert.deepEqual(await replay(ctx.store, ack.lineage_id), { state: 'done', replayed: 3 });
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']), [[1n, 10n], [2n, 20n], [3n, 30n], [4n, 40n]]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status, 'active');
  });

  test('a row the mirror refuses while replaying stays staged as row_rejected; the replay finishes', async () => {
    const d = await device();
    const ack = await d.send(A, [upsert(1, [1n, 10n]), upsert(2, [2n, 100_000n]), upsert(3, [3n, 30n])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    const approved = await approve(ctx.store, review.id, { default_action: 'mirror' });
    // The DBA narrows the column between approval and replay; one staged value no longer fits.
    await ctx.store.exec(`ALTER TABLE "${approved.mirror_table}" ALTER COLUMN v TYPE smallint`);
    assert.deepEqual(await replay(ctx.store, ack.lineage_id), { state: 'done', replayed: 2 });
    const staged = (await readStagedRows(ctx.store, ack.lineage_id)).rows;
    assert.deepEqual(staged.map((r) => [r.seq, r.reason]), [[2, 'row_rejected']]);
    assert.match(staged[0]!.detail!, /smallint out of range|out of range for type smallint/);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']), [[1n, 10n], [3n, 30n]]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status, 'active');
  });

  test('Idempotency-Key: a retried approve gets the first answer; another request under the key is refused', async () => {
    const d = await device();
    const ack = await d.send(A, [upsert(1, [1n, 10n])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    const claimed = await tx((t) => claimReview(t, review.id, 'alice'));
    const body = { action_version: claimed.action_version, columns: await columnsFor(ctx.store, review.id, { default_action: 'mirror' }) };
    const run = (key: string, request: typeof body) =>
      transactionWithRetry(ctx.store, (t) => idempotent(t, { key, actorId: 'alice-token', request: { review: review.id, request } }, () => approveReview(t, review.id, request, 'alice')));
    const [first, second] = await Promise.all([run('approve-1', body), run('approve-1', body)]);
    assert.deepEqual(JSON.parse(JSON.stringify(second)), JSON.parse(JSON.stringify(first)));
    assert.deepEqual(JSON.parse(JSON.stringify(await run('approve-1', body))), JSON.parse(JSON.stringify(first)));
    await assert.rejects(run('approve-1', { ...body, columns: [{ name: 'id', action: 'mirror' }, { name: 'v', action: 'ignore' }] }), coded('idempotency_key_reused'));
    await assert.rejects(run('approve-2', body), coded('conflict', /approved/), 'a new key is a new request');
    const approvals = await listAudit(ctx.store, { review_id: review.id, action: 'review.approve' });
    assert.equal(approvals.entries.length, 1, 'approved exactly once');
  });

  test('auto policy: a first schema is mirrored at once; a breaking change still waits for a review', async () => {
    const d = await device(AUTO);
    const ack = await d.send(A, [upsert(1, [1n, 10n])]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status, 'active');
    const dropped: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] };
    await d.send(dropped, [{ seq: 2, op: 'insert', pk: [2n], row: [2n] }]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.equal(review.classification, 'breaking');
    await approve(ctx.store, review.id, { default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id, AUTO)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']), [[1n, 10n], [2n, null]]);
  });

  test('a lineage paused for a schema without a review (an older database) gets one at start', async () => {
    const d = await device();
    const ack = await d.send(A, [upsert(1, [1n, 10n])]);
    const lost = await openReview(ctx.store, ack.lineage_id);
    await ctx.store.query(`UPDATE edge_schema_reviews SET status = 'superseded' WHERE id = $1`, [lost.id]);
    assert.ok((await reconcileReviews(ctx.store)) >= 1);
    const found = await openReview(ctx.store, ack.lineage_id);
    assert.notEqual(found.id, lost.id);
    assert.equal(found.schema_hash, lost.schema_hash);
    assert.equal((await getReview(ctx.store, found.id)).status, 'queued');
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status_reason, `schema review ${found.id}: first schema of this table`);
  });
});
