import assert from 'node:assert/strict';
import { test } from 'node:test';
import { approveReview } from '../../src/cloud/governance/approve.js';
import { listAudit } from '../../src/cloud/governance/audit.js';
import { replayStep } from '../../src/cloud/governance/replay.js';
import { latestIntent, pendingIntent } from '../../src/cloud/governance/replay-intents.js';
import { claimReview, releaseReview } from '../../src/cloud/governance/review-actions.js';
import { getReviewDetail, listReviews } from '../../src/cloud/governance/review-view.js';
import { getReview } from '../../src/cloud/governance/reviews.js';
import { readStagedRows } from '../../src/cloud/governance/staged-rows.js';
import { getLineageDetail } from '../../src/cloud/query/lineages.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import { approve, FakeDevice, lineageRow, openReview, REVIEW, REVIEW_ALLOW_ADDITIVE, remove, replay, stagedCount, upsert } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }, { name: 'secret', type: 'TEXT' }, { name: 'n', type: 'NUMERIC' }] };
const ITEMS_V2: TableSpec = { table: 'items', columns: [...ITEMS.columns, { name: 'note', type: 'TEXT' }] };
const coded = (code: string, message?: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === code && (!message || message.test(e.message));

describeEachStore('schema governance', (ctx) => {
  const device = async (policy = REVIEW) => new FakeDevice(ctx.store, await newDevice(ctx.store), policy);

  test('review policy: a first schema is staged, reviewed, approved column by column, replayed in order, then rows flow live', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, [upsert(1, [1n, 'ann', 's1', 10n]), upsert(2, [2n, 'bob', 's2', 1.5]), upsert(3, [1n, 'ann b', 's1', 11n], 'update')]);
    assert.deepEqual([ack.status, ack.rows_applied, ack.last_seq], ['accepted', 3, 3], 'acknowledged although held back');
    await d.send(ITEMS, [remove(4, 2n), upsert(5, [3n, 'cy', 's3', null])]);
    let lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.deepEqual([lineage.status, lineage.pause_cause, lineage.mirror_table], ['paused', 'schema_review', null]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.equal(lineage.status_reason, `schema review ${review.id}: first schema of this table`);
    assert.deepEqual([review.status, review.classification, review.origin, review.action_version], ['queued', 'ambiguous', 'ingest', 1]);
    assert.equal((await listReviews(ctx.store, { lineage_id: ack.lineage_id })).reviews.length, 1, 'a second batch of the same schema opens no second review');
    const staged = await readStagedRows(ctx.store, ack.lineage_id);
    assert.deepEqual(staged.rows.map((r) => [r.seq, r.reason]), [[1, 'schema_review'], [2, 'schema_review'], [3, 'schema_review'], [4, 'schema_review'], [5, 'schema_review']]);
    assert.match(staged.rows[0]!.detail!, new RegExp(`schema review ${review.id}`));

    const detail = await getReviewDetail(ctx.store, review.id);
    assert.deepEqual(detail.schema.columns.map((c) => [c.name, c.state, c.default_mirror.pg_type, c.safe_types.join('|')]), [
      ['id', 'new', 'bigint', 'bigint|numeric|jsonb'],
      ['name', 'new', 'text', 'text|jsonb'],
      ['secret', 'new', 'text', 'text|jsonb'],
      ['n', 'new', 'numeric', 'numeric|jsonb'],
    ]);
    assert.deepEqual(detail.diff, { bound_schema_hash: null, added: ['id', 'name', 'secret', 'n'], dropped: [], retyped: [], key: null, unclear: [] });
    assert.equal(detail.staged.rows, 5);
    assert.deepEqual(detail.staged.samples[0]!.values, { id: 1, name: 'ann', secret: 's1', n: 10 });

    await assert.rejects(approve(ctx.store, review.id, { columns: [{ name: 'id', action: 'mirror' }] }), coded('invalid_request', /missing "name", "secret", "n"/));
    const result = await approve(ctx.store, review.id, {
      columns: [{ name: 'id', action: 'mirror' }, { name: 'secret', action: 'ignore' }, { name: 'name', action: 'mirror_as', target: 'full_name' }, { name: 'n', action: 'mirror_as', pg_type: 'jsonb' }],
    });
    assert.equal(result.review.status, 'approved');
    assert.equal(result.replay?.rows_total, 5);
    lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.deepEqual([lineage.status, lineage.pause_cause, lineage.mirror_table, lineage.schema_hash], ['active', null, result.mirror_table, review.schema_hash], 'active as soon as approved');

    const during = await d.send(ITEMS, [upsert(6, [4n, 'dee', 'nope', 2n])]);
    assert.equal(during.rows_applied, 1);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 6, 'a live row queues behind the replay');
    assert.deepEqual(await replay(ctx.store, ack.lineage_id), { state: 'done', replayed: 6 });
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 0);
    const columns = await ctx.store.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 AND column_name NOT LIKE '\\_syncline\\_%' ORDER BY ordinal_position`,
      [result.mirror_table],
    );
    assert.deepEqual(columns.rows.map((c) => `${c.column_name}:${c.data_type}`), ['id:bigint', 'full_name:text', 'n:jsonb']);
    const rows = await allMirrorRows(ctx.store, ack.lineage_id);
    assert.deepEqual(decodedColumns(rows, ['id', 'name', 'n']), [[1n, 'ann b', 11n], [3n, 'cy', null], [4n, 'dee', 2n]]);
    assert.ok(rows.every((r) => !Object.hasOwn(r, 'secret')), 'an ignored column is never stored');
    assert.deepEqual(rows.map((r) => r._syncline_seq), [3, 5, 6]);

    const live = await d.send(ITEMS, [upsert(7, [5n, 'eve', 'nope', 3n])]);
    assert.equal(live.rows_applied, 1);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 0, 'after the replay, live rows go straight to the mirror');
    const counters = await getLineageDetail(ctx.store, ack.lineage_id);
    assert.deepEqual([counters.rows_received, counters.rows_applied, counters.staged_rows, counters.replay?.state], [7, 7, 0, 'done']);
    const audit = (await listAudit(ctx.store, { lineage_id: ack.lineage_id })).entries.reverse();
    assert.deepEqual(audit.map((e) => [e.action, e.actor]), [['review.open', 'system'], ['review.claim', 'alice'], ['review.approve', 'alice'], ['replay.start', 'alice'], ['replay.done', 'system']]);
    assert.deepEqual((audit[4]!.detail as Record<string, unknown>).rows_replayed, 6);
  });

  test('rows sent while a replay runs wait behind the backlog: the last write wins, chunk after chunk', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, Array.from({ length: 10 }, (_, i) => upsert(i + 1, [BigInt(i % 3), `v${i + 1}`, null, null], i < 3 ? 'insert' : 'update')));
    await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    assert.equal((await replayStep(ctx.store, ack.lineage_id, { policy: REVIEW, chunkRows: 4 })).state, 'progress');
    const during = await d.send(ITEMS, [upsert(11, [0n, 'live', null, null], 'update'), remove(12, 1n)]);
    assert.equal(during.rows_applied, 2);
    assert.ok(await pendingIntent(ctx.store, ack.lineage_id), 'still replaying: the live rows were staged');
    assert.deepEqual(await replay(ctx.store, ack.lineage_id, REVIEW, 4), { state: 'done', replayed: 8 });
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'name']), [[0n, 'live'], [2n, 'v9']]);
    const intent = await latestIntent(ctx.store, ack.lineage_id);
    assert.deepEqual([intent?.state, intent?.rows_total, intent?.rows_replayed, intent?.rows_kept], ['done', 10, 12, 0]);
  });

  test('defer: the decided columns are applied, the lineage stays paused until the deferred ones are decided', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, [upsert(1, [1n, 'one', 's', 1n]), upsert(2, [2n, 'two', 's', 2n])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    const first = await approve(ctx.store, review.id, { columns: [{ name: 'n', action: 'defer' }, { name: 'secret', action: 'ignore' }], default_action: 'mirror' });
    assert.deepEqual([first.deferred, first.replay], [['n'], null]);
    const lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.deepEqual([lineage.status, lineage.pause_cause, lineage.mirror_table], ['paused', 'schema_review', first.mirror_table]);
    assert.equal(lineage.status_reason, `schema review ${first.follow_up_review}: columns "n" deferred by alice in review ${review.id}`);
    await d.send(ITEMS, [upsert(3, [3n, 'three', 's', 3n])]);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 3, 'rows keep staging while a column is deferred');
    assert.deepEqual(await allMirrorRows(ctx.store, ack.lineage_id), []);

    const followUp = await getReviewDetail(ctx.store, first.follow_up_review!);
    assert.deepEqual([followUp.origin, followUp.schema_hash], ['defer', review.schema_hash]);
    assert.deepEqual(followUp.schema.columns.map((c) => [c.name, c.state]), [['id', 'bound'], ['name', 'bound'], ['secret', 'ignored'], ['n', 'new']]);
    const second = await approve(ctx.store, followUp.id, { columns: [{ name: 'id', action: 'mirror' }, { name: 'name', action: 'mirror' }, { name: 'secret', action: 'ignore' }, { name: 'n', action: 'mirror' }] });
    assert.equal(second.mirror_table, first.mirror_table);
    assert.equal(second.replay?.rows_total, 3);
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'name', 'n']), [[1n, 'one', 1n], [2n, 'two', 2n], [3n, 'three', 3n]]);
  });

  test('a newer schema supersedes the open review; rows of the older one replay with NULLs for what they lack', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, [upsert(1, [1n, 'one', null, null])]);
    const first = await openReview(ctx.store, ack.lineage_id);
    await d.send(ITEMS_V2, [upsert(2, [2n, 'two', null, null, 'a note'])]);
    const second = await openReview(ctx.store, ack.lineage_id);
    assert.notEqual(second.id, first.id);
    const old = await getReview(ctx.store, first.id);
    assert.deepEqual([old.status, old.superseded_by], ['superseded', second.id]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status_reason, `schema review ${second.id}: first schema of this table`);
    await assert.rejects(approve(ctx.store, first.id, { default_action: 'mirror' }), coded('conflict'));

    await approve(ctx.store, second.id, { default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'name', 'note']), [[1n, 'one', null], [2n, 'two', 'a note']]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).schema_hash, second.schema_hash);
  });

  test('additive changes: reviewed under review, followed when the additive policy allows', async () => {
    const strict = await device();
    const ack = await strict.send(ITEMS, [upsert(1, [1n, 'one', null, null])]);
    await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack.lineage_id);
    await strict.send(ITEMS_V2, [upsert(2, [2n, 'two', null, null, 'n2'])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.equal(review.classification, 'compatible_additive');
    const detail = await getReviewDetail(ctx.store, review.id);
    assert.deepEqual(detail.schema.columns.map((c) => c.state), ['bound', 'bound', 'bound', 'bound', 'new']);
    assert.deepEqual(detail.diff.added, ['note']);
    assert.equal((await approve(ctx.store, review.id, { columns: [{ name: 'note', action: 'ignore' }], default_action: 'mirror' })).replay?.rows_total, 1);
    await replay(ctx.store, ack.lineage_id);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'name']), [[1n, 'one'], [2n, 'two']]);

    const relaxed = await device(REVIEW_ALLOW_ADDITIVE);
    const ack2 = await relaxed.send(ITEMS, [upsert(1, [1n, 'one', null, null])]);
    await approve(ctx.store, (await openReview(ctx.store, ack2.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack2.lineage_id, REVIEW_ALLOW_ADDITIVE);
    const added = await relaxed.send(ITEMS_V2, [upsert(2, [2n, 'two', null, null, 'n2'])]);
    assert.equal(added.rows_applied, 1);
    assert.equal((await lineageRow(ctx.store, ack2.lineage_id)).status, 'active');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack2.lineage_id), ['id', 'note']), [[1n, null], [2n, 'n2']]);
  });

  test('a type change on the device is breaking: paused and staged; mirror_as moves the column to a new one', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, [upsert(1, [1n, 'one', null, 5n])]);
    await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack.lineage_id);
    const retyped: TableSpec = { table: 'items', columns: [ITEMS.columns[0]!, ITEMS.columns[1]!, ITEMS.columns[2]!, { name: 'n', type: 'TEXT' }] };
    await d.send(retyped, [upsert(2, [2n, 'two', null, 'five'])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.equal(review.classification, 'breaking');
    assert.deepEqual((await getReviewDetail(ctx.store, review.id)).diff.retyped, [{ name: 'n', from: 'NUMERIC', to: 'TEXT' }]);
    assert.deepEqual([(await lineageRow(ctx.store, ack.lineage_id)).pause_cause, await stagedCount(ctx.store, ack.lineage_id)], ['schema_review', 1]);
    await assert.rejects(approve(ctx.store, review.id, { default_action: 'mirror' }), coded('invalid_request', /"n" is now TEXT but its mirror column "n" is numeric/));
    await approve(ctx.store, review.id, { columns: [{ name: 'n', action: 'mirror_as', target: 'n_text', pg_type: 'text' }], default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    const rows = await allMirrorRows(ctx.store, ack.lineage_id);
    assert.deepEqual(decodedColumns(rows, ['id', 'n']), [[1n, null], [2n, 'five']], 'the lineage reads n from its new column');
    const old = await ctx.store.query<{ n: string | null; n_text: string | null }>(`SELECT n::text AS n, n_text FROM "${(await lineageRow(ctx.store, ack.lineage_id)).mirror_table}" ORDER BY id`);
    assert.deepEqual(old.rows, [{ n: '5', n_text: null }, { n: null, n_text: 'five' }], 'the old column keeps what it held');
  });

  test('staged rows of an older schema the mirror does not cover get a review of their own', async () => {
    const d = await device();
    const base: TableSpec = { table: 'things', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'a', type: 'TEXT' }] };
    const rebuilt: TableSpec = { table: 'things', columns: [...base.columns, { name: 'must', type: 'INTEGER', notnull: true }] };
    const later: TableSpec = { table: 'things', columns: [...base.columns, { name: 'opt', type: 'TEXT' }] };
    const ack = await d.send(base, [upsert(1, [1n, 'x'])]);
    await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack.lineage_id);
    await d.send(rebuilt, [upsert(2, [2n, 'y', 7n])]);
    const rebuiltReview = await openReview(ctx.store, ack.lineage_id);
    assert.equal(rebuiltReview.classification, 'ambiguous');
    await d.send(later, [upsert(3, [1n, 'x2', 'o'], 'update')]);
    const laterReview = await openReview(ctx.store, ack.lineage_id);
    assert.equal((await getReview(ctx.store, rebuiltReview.id)).status, 'superseded');

    await approve(ctx.store, laterReview.id, { default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'blocked');
    const fromReplay = await openReview(ctx.store, ack.lineage_id);
    assert.deepEqual([fromReplay.origin, fromReplay.schema_hash], ['replay', rebuiltReview.schema_hash]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).pause_cause, 'schema_review');
    assert.equal((await latestIntent(ctx.store, ack.lineage_id))?.state, 'blocked');

    await approve(ctx.store, fromReplay.id, { default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'a', 'must', 'opt']), [[1n, 'x2', null, 'o'], [2n, 'y', 7n, null]]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).schema_hash, laterReview.schema_hash, 'a replay review does not move the followed schema');
  });

  test('claims: approve needs the claim and its version; takeovers and releases are recorded', async () => {
    const d = await device();
    const ack = await d.send(ITEMS, [upsert(1, [1n, 'one', null, null])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    const all = ITEMS.columns.map((c) => ({ name: c.name, action: 'mirror' as const }));
    const tx = <T>(fn: Parameters<typeof ctx.store.transaction<T>>[0]) => ctx.store.transaction(fn);
    await assert.rejects(tx((t) => approveReview(t, review.id, { action_version: 1, columns: all }, 'alice')), coded('conflict', /claim it first/));
    const alice = await tx((t) => claimReview(t, review.id, 'alice'));
    assert.equal((await tx((t) => claimReview(t, review.id, 'alice'))).action_version, alice.action_version, 'claiming again is harmless');
    await assert.rejects(tx((t) => claimReview(t, review.id, 'bob')), coded('conflict', /claimed by alice/));
    const bob = await tx((t) => claimReview(t, review.id, 'bob', { force: true }));
    await assert.rejects(tx((t) => approveReview(t, review.id, { action_version: alice.action_version, columns: all }, 'alice')), coded('stale_version'));
    await assert.rejects(tx((t) => approveReview(t, review.id, { action_version: bob.action_version, columns: all }, 'alice')), coded('conflict', /claimed by bob/));
    await assert.rejects(tx((t) => approveReview(t, review.id, { action_version: bob.action_version, columns: [...all, { name: 'nope', action: 'ignore' }] }, 'bob')), coded('invalid_request'));
    const released = await tx((t) => releaseReview(t, review.id, bob.action_version, 'bob'));
    assert.deepEqual([released.status, released.claimed_by], ['queued', null]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).mirror_table, null, 'refused approvals changed nothing');
    const events = (await getReviewDetail(ctx.store, review.id)).events;
    assert.deepEqual(events.map((e) => [e.action, e.actor]), [['review.open', 'system'], ['review.claim', 'alice'], ['review.claim', 'bob'], ['review.release', 'bob']]);
    assert.deepEqual((events[2]!.detail as Record<string, unknown>).took_over_from, 'alice');
  });

  test('a key change gets a mirror of its own; the old one is kept', async () => {
    const d = await device();
    const v1: TableSpec = { table: 'keyed', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'site', type: 'TEXT' }, { name: 'v', type: 'REAL' }] };
    const v2: TableSpec = { table: 'keyed', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'site', type: 'TEXT', pk: 2 }, { name: 'v', type: 'REAL' }] };
    const ack = await d.send(v1, [upsert(1, [1n, 'a', 1.5])]);
    const first = await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, { default_action: 'mirror' });
    await replay(ctx.store, ack.lineage_id);
    await d.send(v2, [{ seq: 2, op: 'insert', pk: [1n, 'b'], row: [1n, 'b', 2.5] }]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.equal(review.classification, 'breaking');
    assert.deepEqual((await getReviewDetail(ctx.store, review.id)).diff.key, { from: { kind: 'primary_key', columns: ['id'] }, to: { kind: 'primary_key', columns: ['id', 'site'] } });
    const second = await approve(ctx.store, review.id, { default_action: 'mirror' });
    assert.equal(second.previous_mirror_table, first.mirror_table);
    assert.notEqual(second.mirror_table, first.mirror_table);
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'site', 'v']), [[1n, 'b', 2.5]]);
    const old = await ctx.store.query<{ n: string }>(`SELECT count(*) AS n FROM "${first.mirror_table}"`);
    assert.equal(old.rows[0]!.n, '1');
    const detail = await getLineageDetail(ctx.store, ack.lineage_id);
    assert.deepEqual([detail.key_columns, detail.mirror_table], [['id', 'site'], second.mirror_table]);
  });
});
