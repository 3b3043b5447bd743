import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { getReviewDetail } from '../../src/cloud/governance/review-view.js';
import { retryRejectedRows } from '../../src/cloud/governance/replay-intents.js';
import { readStagedRows } from '../../src/cloud/governance/staged-rows.js';
import { getLineageDetail } from '../../src/cloud/query/lineages.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { SqlValue } from '../../src/protocol/values.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import { approve, AUTO, FakeDevice, lineageRow, openReview, remove, replay, stagedCount, upsert } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const coded = (code: string, message?: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === code && (!message || message.test(e.message));
const byKey = (rows: SqlValue[][]) => [...rows].sort((a, b) => Buffer.compare(Buffer.from(String(a[0])), Buffer.from(String(b[0]))));

describeEachStore('rows PostgreSQL cannot store never stall their table', (ctx) => {
  const device = async () => new FakeDevice(ctx.store, await newDevice(ctx.store), AUTO);
  const mirrorOf = async (lineageId: string) => (await lineageRow(ctx.store, lineageId)).mirror_table!;

  test('text keys of any length are mirrored exactly, updated and deleted by key', async () => {
    const spec: TableSpec = { table: 'long_text_keys', columns: [{ name: 'k', type: 'TEXT', pk: 1 }, { name: 'v', type: 'TEXT' }] };
    const d = await device();
    const wide = 'é'.repeat(1500); // 3,000 bytes: past btree's 2,704-byte entry limit
    const random = randomBytes(12_000).toString('base64'); // does not compress
    const ack = await d.send(spec, [upsert(1, ['short', 'a']), upsert(2, [wide, 'b']), upsert(3, [random, 'c']), upsert(4, [`${wide}x`, 'd'])]);
    assert.deepEqual([ack.rows_applied, await stagedCount(ctx.store, ack.lineage_id)], [4, 0]);
    await d.send(spec, [upsert(5, [wide, 'b2'], 'update'), remove(6, random), upsert(7, [random, 'c2']), remove(8, 'short')]);
    const rows = decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['k', 'v']);
    assert.deepEqual(byKey(rows), byKey([[wide, 'b2'], [random, 'c2'], [`${wide}x`, 'd']]));
    const detail = await getLineageDetail(ctx.store, ack.lineage_id);
    assert.deepEqual([detail.status, detail.rows_applied], ['active', 8]);
  });

  test('a 3 MB blob key and a composite key with a long text part are mirrored', async () => {
    const blobs: TableSpec = { table: 'blob_keys', columns: [{ name: 'k', type: 'BLOB', pk: 1 }, { name: 'n', type: 'INTEGER' }] };
    const d = await device();
    const big = new Uint8Array(randomBytes(3 * 1024 * 1024));
    const small = new Uint8Array([1, 2, 3]);
    const ack = await d.send(blobs, [upsert(1, [big, 1n]), upsert(2, [small, 2n]), upsert(3, [big, 3n], 'update')]);
    const rows = decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['k', 'n']);
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.find((r) => (r[0] as Uint8Array).length === big.length), [big, 3n]);

    const composite: TableSpec = { table: 'composite_keys', columns: [{ name: 'site', type: 'INTEGER', pk: 1 }, { name: 'path', type: 'TEXT', pk: 2 }, { name: 'v', type: 'INTEGER' }] };
    const path = 'p/'.repeat(2000);
    const rowsOf = (seq: number, site: bigint, v: bigint) => ({ seq, op: 'insert' as const, pk: [site, path], row: [site, path, v] });
    const second = await d.send(composite, [rowsOf(1, 1n, 10n), rowsOf(2, 2n, 20n), { ...rowsOf(3, 1n, 11n), op: 'update' }, { seq: 4, op: 'delete', pk: [2n, path] }]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, second.lineage_id), ['site', 'path', 'v']), [[1n, path, 11n]]);
  });

  test('a mirror made before digest keys keeps working: a key too long for its index is set aside alone', async () => {
    const spec: TableSpec = { table: 'old_layout', columns: [{ name: 'k', type: 'TEXT', pk: 1 }, { name: 'v', type: 'TEXT' }] };
    const d = await device();
    const first = await d.send(spec, [upsert(1, ['a', 'one'])]);
    const table = await mirrorOf(first.lineage_id);
    const pk = await ctx.store.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'`, [`"${table}"`]);
    await ctx.store.exec(`ALTER TABLE "${table}" DROP CONSTRAINT "${pk.rows[0]!.conname}"; ALTER TABLE "${table}" DROP COLUMN _syncline_key_digest; ALTER TABLE "${table}" ADD PRIMARY KEY (k)`);
    await ctx.store.query('DELETE FROM edge_mirror_key_digests WHERE mirror_table = $1', [table]);

    const long = randomBytes(6000).toString('base64');
    const ack = await d.send(spec, [upsert(2, ['b', 'two']), upsert(3, [long, 'too long']), upsert(4, ['c', 'three'])]);
    assert.deepEqual([ack.status, ack.rows_applied], ['accepted', 3]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['k', 'v']), [['a', 'one'], ['b', 'two'], ['c', 'three']]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status, 'active');
    const staged = await readStagedRows(ctx.store, ack.lineage_id);
    assert.deepEqual(staged.rows.map((r) => [r.seq, r.reason]), [[3, 'row_rejected']]);
    assert.match(staged.rows[0]!.detail!, /index row (size|requires)/);
    await d.send(spec, [upsert(5, ['d', 'four'])]);
    assert.equal((await allMirrorRows(ctx.store, ack.lineage_id)).length, 4, 'later batches flow');
  });

  test('rows the mirror refuses are set aside one by one with the database message; the rest of the batch flows', async () => {
    const spec: TableSpec = { table: 'narrowed', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'INTEGER' }] };
    const d = await device();
    const first = await d.send(spec, [upsert(1, [1n, 10n])]);
    // A DBA narrows a mirror column; some device values no longer fit (SQLSTATE 22003).
    await ctx.store.exec(`ALTER TABLE "${await mirrorOf(first.lineage_id)}" ALTER COLUMN v TYPE smallint`);
    const bad = new Set([7, 20, 21, 40]);
    const rows = Array.from({ length: 40 }, (_, i) => upsert(i + 2, [BigInt(i + 2), bad.has(i + 2) ? 100_000n : BigInt(i)]));
    const ack = await d.send(spec, rows);
    assert.deepEqual([ack.status, ack.rows_applied], ['accepted', 40]);
    const mirrored = decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id']).map((r) => Number(r[0]));
    assert.deepEqual(mirrored, Array.from({ length: 41 }, (_, i) => i + 1).filter((id) => !bad.has(id)));
    const staged = await readStagedRows(ctx.store, ack.lineage_id);
    assert.deepEqual(staged.rows.map((r) => Number(r.seq)), [...bad]);
    assert.deepEqual(staged.rows.filter((r) => r.reason !== 'row_rejected' || !/smallint out of range|out of range for type smallint/.test(r.detail!)), [], 'each staged as row_rejected with the database message');
    const detail = await getLineageDetail(ctx.store, ack.lineage_id);
    assert.deepEqual([detail.status, detail.pause_cause, detail.rows_applied], ['active', null, 37]);
  });

  test('a later change of a refused row\'s key supersedes it; a retry then brings in exactly what the device holds', async () => {
    const spec: TableSpec = { table: 'superseded', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'INTEGER' }] };
    const d = await device();
    const first = await d.send(spec, [upsert(1, [1n, 1n])]);
    const mirror = await mirrorOf(first.lineage_id);
    await ctx.store.exec(`ALTER TABLE "${mirror}" ALTER COLUMN v TYPE smallint`);
    const big = 100_000n;
    // 9 is refused and then changed again in the same batch: nothing of it is set aside.
    await d.send(spec, [upsert(2, [7n, big]), upsert(3, [8n, big]), upsert(4, [9n, big]), upsert(5, [9n, 2n], 'update'), upsert(6, [10n, big])]);
    const staged = async () => (await readStagedRows(ctx.store, first.lineage_id)).rows.map((r) => [Number(r.seq), r.reason]);
    assert.deepEqual(await staged(), [[2, 'row_rejected'], [3, 'row_rejected'], [6, 'row_rejected']]);
    // A later batch: 7 fits now, 8 is deleted, 10 is refused again (the newer refusal speaks for it).
    await d.send(spec, [upsert(7, [7n, 5n], 'update'), remove(8, 8n), upsert(9, [10n, 2n * big], 'update')]);
    assert.deepEqual(await staged(), [[9, 'row_rejected']]);

    await ctx.store.exec(`ALTER TABLE "${mirror}" ALTER COLUMN v TYPE bigint`);
    const started = await ctx.store.transaction((tx) => retryRejectedRows(tx, first.lineage_id, 'test'));
    assert.equal(started.rows_rejected, 1);
    assert.equal((await replay(ctx.store, first.lineage_id, AUTO)).state, 'done');
    assert.deepEqual(await staged(), []);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), ['id', 'v']), [[1n, 1n], [7n, 5n], [9n, 2n], [10n, 2n * big]]);
    const again = await ctx.store.transaction((tx) => retryRejectedRows(tx, first.lineage_id, 'test'));
    assert.deepEqual([again.rows_rejected, again.replay], [0, null]);
  });

  test('a table too wide for one PostgreSQL row is refused at classification, before any DDL; ignoring columns lets it through', async () => {
    const count = 1592;
    const spec: TableSpec = { table: 'very_wide', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, ...Array.from({ length: count - 1 }, (_, i) => ({ name: `c${i}`, type: 'TEXT' }))] };
    const d = await device();
    const values = (id: bigint) => [id, ...Array.from({ length: count - 1 }, (_, i) => `v${i}`)];
    const ack = await d.send(spec, [upsert(1, values(1n)), upsert(2, values(2n))]);
    const lineage = await lineageRow(ctx.store, ack.lineage_id);
    assert.deepEqual([lineage.status, lineage.pause_cause, lineage.mirror_table], ['paused', 'schema_review', null]);
    assert.match(lineage.status_reason!, /can take \d+ bytes, more than the 8160 PostgreSQL holds in one row; ignore some columns/);
    assert.equal(await stagedCount(ctx.store, ack.lineage_id), 2, 'nothing lost');
    const review = await openReview(ctx.store, ack.lineage_id);
    await assert.rejects(approve(ctx.store, review.id, { default_action: 'mirror' }), coded('invalid_request', /more than the 8160 PostgreSQL holds/));
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).mirror_table, null);
    const kept = 200;
    const columns = spec.columns.slice(kept + 1).map((c) => ({ name: c.name, action: 'ignore' as const }));
    await approve(ctx.store, review.id, { columns, default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id, AUTO)).state, 'done');
    const names = ['id', ...spec.columns.slice(1, kept + 1).map((c) => c.name)];
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), names), [values(1n).slice(0, kept + 1), values(2n).slice(0, kept + 1)]);
  });

  test('columns named like PostgreSQL system columns are mirrored as name_ under auto and all-mirror; mirror_as still chooses', async () => {
    const spec: TableSpec = { table: 'sys_names', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, ...['xmin', 'xmax', 'cmin', 'cmax', 'ctid', 'tableoid', 'oid', 'xmin_'].map((name) => ({ name, type: 'TEXT' }))] };
    const values = [1n, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const auto = await device();
    const ack = await auto.send(spec, [upsert(1, values)]);
    assert.equal((await lineageRow(ctx.store, ack.lineage_id)).status, 'active');
    const mirrored = ['id', 'xmin__', 'xmax_', 'cmin_', 'cmax_', 'ctid_', 'tableoid_', 'oid_', 'xmin_'];
    const physical = await ctx.store.query<{ attname: string }>(
      `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_syncline\\_%' ORDER BY attnum`,
      [`"${await mirrorOf(ack.lineage_id)}"`],
    );
    assert.deepEqual(physical.rows.map((r) => r.attname), mirrored);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), spec.columns.map((c) => c.name)), [values]);

    const reviewed = new FakeDevice(ctx.store, await newDevice(ctx.store));
    const second = await reviewed.send(spec, [upsert(1, values)]);
    const review = await openReview(ctx.store, second.lineage_id);
    const shown = (await getReviewDetail(ctx.store, review.id)).schema.columns.map((c) => c.default_mirror.target_column);
    assert.deepEqual(shown, mirrored);
    await assert.rejects(approve(ctx.store, review.id, { columns: [{ name: 'xmin', action: 'mirror_as', target: 'xmax' }], default_action: 'mirror' }), coded('invalid_request', /system column name/));
    await approve(ctx.store, review.id, { columns: [{ name: 'xmin', action: 'mirror_as', target: 'row_xmin' }], default_action: 'mirror' });
    assert.equal((await replay(ctx.store, second.lineage_id)).state, 'done');
    const rows = await allMirrorRows(ctx.store, second.lineage_id);
    assert.deepEqual(decodedColumns(rows, ['id', 'xmin', 'ctid', 'xmin_']), [[1n, 'a', 'e', 'h']]);
  });
});
