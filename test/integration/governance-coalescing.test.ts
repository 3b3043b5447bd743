import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { authenticateDevice, createDevice } from '../../src/cloud/auth/devices.js';
import { listAudit } from '../../src/cloud/governance/audit.js';
import { listProjects, setProjectCoalescing } from '../../src/cloud/governance/coalescing.js';
import { listReviews } from '../../src/cloud/governance/review-view.js';
import { getLineageDetail } from '../../src/cloud/query/lineages.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns } from '../support/cloud-fixtures.js';
import { approve, FakeDevice, lineageRow, openReview, remove, replay, upsert } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const SENSORS: TableSpec = { table: 'sensors', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }, { name: 'secret', type: 'TEXT' }] };
const SENSORS_V2: TableSpec = { table: 'sensors', columns: [...SENSORS.columns, { name: 'unit', type: 'TEXT' }] };
const ACTIONS = { columns: [{ name: 'name', action: 'mirror_as' as const, target: 'label' }, { name: 'secret', action: 'ignore' as const }], default_action: 'mirror' as const };

describeEachStore('schema governance: coalesced mirrors', (ctx) => {
  const project = `fleet_${Math.random().toString(36).slice(2, 8)}`;
  const device = async (name: string) => {
    const created = await createDevice(ctx.store, { name, projectId: project });
    return new FakeDevice(ctx.store, await authenticateDevice(ctx.store, created.token));
  };

  before(async () => {
    await ctx.store.query(`INSERT INTO projects (id, org_id, name) VALUES ($1, 'default', 'fleet')`, [project]);
    const set = await ctx.store.transaction((tx) => setProjectCoalescing(tx, project, 'project', 'admin (token t1)'));
    assert.equal(set.coalescing, 'project');
    assert.equal((await listProjects(ctx.store)).find((p) => p.id === 'default')?.coalescing, 'none');
    const audit = await listAudit(ctx.store, { action: 'project.settings', actor: 'admin (token t1)' });
    assert.deepEqual(audit.entries[0]?.detail, { coalescing: { from: 'none', to: 'project' } });
  });

  test('one mirror per table for the project, keyed by device and key; a later device with an approved schema is approved at once', async () => {
    const [a, b, c] = [await device('a'), await device('b'), await device('c')];
    const ackA = await a.send(SENSORS, [upsert(1, [1n, 'a-one', 'x']), upsert(2, [2n, 'a-two', 'x'])]);
    const ackB = await b.send(SENSORS, [upsert(1, [1n, 'b-one', 'y'])]);
    const approved = await approve(ctx.store, (await openReview(ctx.store, ackA.lineage_id)).id, ACTIONS);
    assert.equal(approved.mirror_table, 'edge_mirror_sensors');
    const reviewB = (await listReviews(ctx.store, { lineage_id: ackB.lineage_id })).reviews[0]!;
    assert.deepEqual(approved.also_approved, [reviewB.id], 'the queued review of the same schema is answered');
    assert.deepEqual([reviewB.status, reviewB.decided_by], ['approved', 'system']);
    await replay(ctx.store, ackA.lineage_id);
    await replay(ctx.store, ackB.lineage_id);

    const ackC = await c.send(SENSORS, [upsert(1, [1n, 'c-one', 'z'])]);
    assert.equal((await lineageRow(ctx.store, ackC.lineage_id)).status, 'active', 'no review to wait for');
    const reviewC = (await listReviews(ctx.store, { lineage_id: ackC.lineage_id })).reviews[0]!;
    assert.deepEqual([reviewC.status, reviewC.decided_by], ['approved', 'system']);
    const adoption = (await listAudit(ctx.store, { review_id: reviewC.id, action: 'review.approve' })).entries[0]!;
    assert.deepEqual((adoption.detail as Record<string, unknown>).via, { coalesced_schema_of_review: approved.review.id, approved_by: 'alice' });

    for (const ack of [ackA, ackB, ackC]) assert.equal((await lineageRow(ctx.store, ack.lineage_id)).mirror_table, 'edge_mirror_sensors');
    const all = await ctx.store.query<{ device: string; id: string; label: string }>('SELECT _syncline_device_id::text AS device, id::text AS id, label FROM edge_mirror_sensors ORDER BY label');
    assert.deepEqual(all.rows.map((r) => [r.device, r.id, r.label]), [[a.identity.device_id, '1', 'a-one'], [a.identity.device_id, '2', 'a-two'], [b.identity.device_id, '1', 'b-one'], [c.identity.device_id, '1', 'c-one']]);
    const pk = await ctx.store.query<{ columns: string }>(
      `SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey::int2[], a.attnum)) AS columns FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = 'edge_mirror_sensors'::regclass AND i.indisprimary`,
    );
    assert.equal(pk.rows[0]!.columns, '_syncline_device_id,id');

    // A device's delete removes its own row only; each lineage reads its own device's rows.
    await a.send(SENSORS, [remove(3, 1n)]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ackA.lineage_id), ['id', 'name']), [[2n, 'a-two']]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ackB.lineage_id), ['id', 'name']), [[1n, 'b-one']]);
  });

  test('another schema of the table is reviewed once, joins the same mirror, and answers later devices', async () => {
    const [d, e] = [await device('d'), await device('e')];
    const ackD = await d.send(SENSORS_V2, [upsert(1, [7n, 'd-seven', 's', 'kg'])]);
    const review = await openReview(ctx.store, ackD.lineage_id);
    assert.equal(review.classification, 'ambiguous');
    const approved = await approve(ctx.store, review.id, ACTIONS);
    assert.equal(approved.mirror_table, 'edge_mirror_sensors');
    await replay(ctx.store, ackD.lineage_id);
    const ackE = await e.send(SENSORS_V2, [upsert(1, [7n, 'e-seven', 's', 'g'])]);
    assert.equal(ackE.rows_applied, 1);
    assert.equal((await lineageRow(ctx.store, ackE.lineage_id)).status, 'active');
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ackE.lineage_id), ['id', 'name', 'unit']), [[7n, 'e-seven', 'g']]);
    const detail = await getLineageDetail(ctx.store, ackE.lineage_id);
    assert.deepEqual(detail.bindings.map((b) => `${b.source_column}>${b.target_column}`), ['id>id', 'name>label', 'unit>unit']);
    const unit = await ctx.store.query<{ n: string }>(`SELECT count(*) AS n FROM edge_mirror_sensors WHERE unit IS NOT NULL`);
    assert.equal(unit.rows[0]!.n, '2');
  });

  test('with coalescing off, a project keeps device mirrors and nothing is approved for it', async () => {
    await ctx.store.transaction((tx) => setProjectCoalescing(tx, project, 'none', 'admin (token t1)'));
    try {
      const f = await device('f');
      const ack = await f.send(SENSORS, [upsert(1, [1n, 'f-one', 's'])]);
      assert.equal((await lineageRow(ctx.store, ack.lineage_id)).pause_cause, 'schema_review', 'an approved coalesced schema does not answer it');
      const approved = await approve(ctx.store, (await openReview(ctx.store, ack.lineage_id)).id, ACTIONS);
      assert.match(approved.mirror_table, /^edge_mirror_[0-9a-f]{8}_sensors$/);
    } finally {
      await ctx.store.transaction((tx) => setProjectCoalescing(tx, project, 'project', 'admin (token t1)'));
    }
  });
});
