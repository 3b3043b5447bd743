import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { governancePolicy } from '../../src/cloud/governance/policy.js';
import { GroupCommitter } from '../../src/cloud/ingest/group-commit.js';
import { ingestRowBatch } from '../../src/cloud/ingest/ingest-row-batch.js';
import { getLineage } from '../../src/cloud/query/lineages.js';
import { TelemetryService } from '../../src/cloud/telemetry/telemetry-service.js';
import type { Store } from '../../src/cloud/store/store.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { SqlValue } from '../../src/protocol/values.js';
import { rowBatch, type RowSpec, type TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { readingBatch } from '../support/telemetry-batches.js';

const READINGS: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'TEXT' }] };
const row = (seq: number, id: number, v: string): RowSpec => ({ seq, op: 'insert', pk: [BigInt(id)], row: [BigInt(id), v] });
const rows = (from: number, to: number, tag = 'v'): RowSpec[] => Array.from({ length: to - from + 1 }, (_, i) => row(from + i, from + i, `${tag}${from + i}`));

async function ledger(ctx: { store: Store }, deviceId: string): Promise<{ batch_id: string; first_seq: string; last_seq: string; row_count: number }[]> {
  const { rows: found } = await ctx.store.query<{ batch_id: string; first_seq: string; last_seq: string; row_count: number }>(
    'SELECT batch_id::text, first_seq, last_seq, row_count FROM edge_export_segments WHERE device_id = $1 ORDER BY first_seq, received_at',
    [deviceId],
  );
  return found;
}

const AUTO = governancePolicy('auto');
const REVIEW = governancePolicy('review');

describeEachStore('group commit of row batches', (ctx) => {
  test('many devices batches commit in one group; each ack matches its own ledger row and mirror', async () => {
    const group = new GroupCommitter(ctx.store);
    const devices = await Promise.all(Array.from({ length: 12 }, () => newDevice(ctx.store)));
    const epoch = uuidv7();
    const batches = devices.map((_, d) => rowBatch(READINGS, rows(1, 5, `d${d}-`), { epoch }));
    const acks = await Promise.all(devices.map((device, d) => ingestRowBatch(ctx.store, device, batches[d]!, 100, { policy: AUTO, group })));
    assert.equal(group.stats.largest, 12, 'all twelve went into one transaction');
    assert.equal(group.stats.isolated, 0);
    for (const [d, device] of devices.entries()) {
      assert.deepEqual({ ...acks[d], lineage_id: undefined }, { batch_id: batches[d]!.batch_id, status: 'accepted', lineage_id: undefined, last_seq: 5, rows_applied: 5, rows_skipped: 0 });
      assert.deepEqual((await ledger(ctx, device.device_id)).map((l) => [l.batch_id, l.first_seq, l.last_seq, l.row_count]), [[batches[d]!.batch_id, '1', '5', 5]]);
      assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, acks[d]!.lineage_id), ['id', 'v']), [1, 2, 3, 4, 5].map((i) => [BigInt(i), `d${d}-${i}`]));
    }
  });

  test('a poisoned batch in a group is answered alone with its own error; its neighbours commit', async () => {
    const group = new GroupCommitter(ctx.store);
    const devices = await Promise.all(Array.from({ length: 6 }, () => newDevice(ctx.store)));
    const epoch = uuidv7();
    const batches = devices.map(() => rowBatch(READINGS, rows(1, 3), { epoch }));
    // Device 2: a byte count the ledger's bigint cannot hold makes the database refuse its statement (a real SQL error).
    // Device 4: a stale epoch (its lineage already follows a newer journal) is refused by ingest itself.
    const newer = uuidv7();
    await ingestRowBatch(ctx.store, devices[4]!, rowBatch(READINGS, rows(1, 1), { epoch: newer }), 10, { policy: REVIEW });
    const settled = await Promise.allSettled(devices.map((device, d) => ingestRowBatch(ctx.store, device, batches[d]!, d === 2 ? Number.MAX_VALUE : 10, { policy: REVIEW, group })));
    assert.equal(group.stats.largest, 6);
    assert.equal(group.stats.isolated, 2, 'the two failing batches ran again on their own');
    settled.forEach((s, d) => {
      if (d === 2) assert.ok(s.status === 'rejected' && !(s.reason instanceof SynclineError), 'the database error reaches the caller');
      else if (d === 4) assert.ok(s.status === 'rejected' && s.reason instanceof SynclineError && s.reason.code === 'stale_epoch');
      else assert.ok(s.status === 'fulfilled' && s.value.status === 'accepted' && s.value.rows_applied === 3, `device ${d}`);
    });
    assert.deepEqual(await ledger(ctx, devices[2]!.device_id), [], 'nothing of the poisoned batch was kept');
    assert.equal((await ledger(ctx, devices[4]!.device_id)).length, 1, 'only the earlier batch of the stale device');
    for (const d of [0, 1, 3, 5]) {
      const staged = await ctx.store.query<{ n: string }>('SELECT count(*)::text AS n FROM edge_staged_rows s JOIN edge_table_lineages l ON l.id = s.lineage_id WHERE l.device_id = $1', [devices[d]!.device_id]);
      assert.equal(staged.rows[0]!.n, '3', `device ${d}: its rows are staged for review`);
    }
  });

  test('dedupe inside a group and across groups: one accepted, the others duplicates with the same ack', async () => {
    const group = new GroupCommitter(ctx.store);
    const device = await newDevice(ctx.store);
    const batch = rowBatch(READINGS, rows(1, 4), { epoch: uuidv7() });
    const together = await Promise.all([1, 2, 3].map(() => ingestRowBatch(ctx.store, device, batch, 10, { policy: AUTO, group })));
    assert.deepEqual(together.map((a) => a.status), ['accepted', 'duplicate', 'duplicate']);
    const later = await ingestRowBatch(ctx.store, device, batch, 10, { policy: AUTO, group });
    for (const ack of [...together.slice(1), later]) assert.deepEqual(ack, { ...together[0]!, status: 'duplicate' });
    assert.equal((await ledger(ctx, device.device_id)).length, 1);
    assert.equal((await allMirrorRows(ctx.store, together[0]!.lineage_id)).length, 4);
  });

  test('concurrent batches of one lineage in one group apply in arrival order; overlaps are skipped exactly', async () => {
    const group = new GroupCommitter(ctx.store);
    const [device, other] = [await newDevice(ctx.store), await newDevice(ctx.store)];
    const epoch = uuidv7();
    const update = (seq: number, id: number, v: string): RowSpec => ({ seq, op: 'update', pk: [BigInt(id)], row: [BigInt(id), v] });
    // Interleaved with another device whose lock key sorts elsewhere: order is kept per lineage, not globally.
    const mine = [
      rowBatch(READINGS, rows(1, 3, 'a'), { epoch }),
      rowBatch(READINGS, [update(4, 1, 'b1'), ...rows(5, 6, 'b')], { epoch }),
      rowBatch(READINGS, [update(5, 5, 'stale'), update(6, 6, 'stale'), update(7, 1, 'c1')], { epoch }),
    ];
    const theirs = rowBatch(READINGS, rows(1, 2, 'x'), { epoch });
    const acks = await Promise.all([
      ingestRowBatch(ctx.store, device, mine[0]!, 10, { policy: AUTO, group }),
      ingestRowBatch(ctx.store, other, theirs, 10, { policy: AUTO, group }),
      ingestRowBatch(ctx.store, device, mine[1]!, 10, { policy: AUTO, group }),
      ingestRowBatch(ctx.store, device, mine[2]!, 10, { policy: AUTO, group }),
    ]);
    assert.equal(group.stats.largest, 4);
    assert.deepEqual(acks.map((a) => [a.status, a.last_seq, a.rows_applied, a.rows_skipped]), [['accepted', 3, 3, 0], ['accepted', 2, 2, 0], ['accepted', 6, 3, 0], ['accepted', 7, 1, 2]]);
    const mirror = await allMirrorRows(ctx.store, acks[0]!.lineage_id);
    assert.deepEqual(decodedColumns(mirror, ['id', 'v']), [[1n, 'c1'], [2n, 'a2'], [3n, 'a3'], [5n, 'b5'], [6n, 'b6']] as SqlValue[][]);
    const lineage = await getLineage(ctx.store, acks[0]!.lineage_id);
    assert.deepEqual([lineage.last_seq, lineage.rows_received, lineage.rows_applied], [7, 7, 7]);
  });

  test('a group never takes more than maxBatches or maxRows; a big batch goes alone', async () => {
    const group = new GroupCommitter(ctx.store, { maxBatches: 3, maxRows: 10 });
    const devices = await Promise.all(Array.from({ length: 7 }, () => newDevice(ctx.store)));
    const epoch = uuidv7();
    // 2 rows each, but device 3 sends 40: it cannot join a group that already holds rows.
    const acks = await Promise.all(devices.map((device, d) => ingestRowBatch(ctx.store, device, rowBatch(READINGS, d === 3 ? rows(1, 40) : rows(1, 2), { epoch }), 10, { policy: REVIEW, group })));
    assert.ok(acks.every((a) => a.status === 'accepted'));
    assert.equal(group.stats.batches, 7);
    assert.equal(group.stats.largest, 3);
    assert.equal(group.stats.groups, 3, 'two full groups and the big batch alone');
  });

  test('telemetry batches share groups too; those that need partitions not known yet are rolled back and run alone, which creates them', async () => {
    const group = new GroupCommitter(ctx.store);
    const service = new TelemetryService({ store: ctx.store, policy: AUTO, logger: pino({ level: 'silent' }), group });
    const devices = await Promise.all(Array.from({ length: 5 }, () => newDevice(ctx.store)));
    const table = `tg_${uuidv7().slice(-8)}`;
    const epoch = uuidv7();
    // A new table: its mapping is approved (auto) inside the group, whose transaction cannot create partitions; device 3's day is years ahead.
    const farDay = Date.UTC(2031, 0, 1 + Math.floor(Math.random() * 300));
    const acks = await Promise.all(devices.map((device, d) => service.ingest(device, readingBatch(table, 1, 4, epoch, d === 3 ? farDay : undefined), 10)));
    assert.equal(group.stats.largest, 5);
    assert.ok(group.stats.isolated >= 1, `isolated: ${group.stats.isolated}`);
    assert.ok(acks.every((a) => a.status === 'accepted' && a.rows_applied === 4));
    const { rows } = await ctx.store.query<{ device_id: string; n: string }>(
      'SELECT device_id::text, count(*)::text AS n FROM telemetry_values WHERE device_id = ANY($1::uuid[]) GROUP BY device_id',
      [devices.map((d) => d.device_id)],
    );
    assert.deepEqual(Object.fromEntries(rows.map((r) => [r.device_id, r.n])), Object.fromEntries(devices.map((d) => [d.device_id, '4'])));
    // Later batches find the mapping cached and their partitions made before the group: none is set apart.
    const before = group.stats.isolated;
    const next = await Promise.all(devices.map((device, d) => service.ingest(device, readingBatch(table, 5, 2, epoch, d === 3 ? farDay : undefined), 10)));
    assert.ok(next.every((a) => a.status === 'accepted' && a.rows_applied === 2 && a.last_seq === 6));
    assert.equal(group.stats.isolated, before);
  });
});
