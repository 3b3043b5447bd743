import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import { governancePolicy } from '../../src/cloud/governance/policy.js';
import { ingestRowBatch as ingestWithPolicy } from '../../src/cloud/ingest/ingest-row-batch.js';
import { getLineage, getLineageDetail } from '../../src/cloud/query/lineages.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { sameValue, type SqlValue } from '../../src/protocol/values.js';
import { rowBatch, type RowSpec, type TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, deviceState, newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const KINDS: TableSpec = {
  table: 'kinds',
  columns: [
    { name: 'id', type: 'INTEGER', pk: 1 },
    { name: 'i', type: 'INTEGER' },
    { name: 'r', type: 'REAL' },
    { name: 't', type: 'TEXT' },
    { name: 'n', type: 'NUMERIC' },
    { name: 'b', type: 'BLOB' },
    { name: 'any' },
  ],
};
const KIND_NAMES = KINDS.columns.map((c) => c.name);

const upsert = (seq: number, row: SqlValue[], op: RowSpec['op'] = 'insert'): RowSpec => ({ seq, op, pk: [row[0]!], row });
const remove = (seq: number, key: SqlValue): RowSpec => ({ seq, op: 'delete', pk: [key] });

function assertRowsEqual(actual: SqlValue[][], expected: SqlValue[][]): void {
  assert.equal(actual.length, expected.length, 'row count');
  actual.forEach((row, r) =>
    row.forEach((value, c) => assert.ok(sameValue(value, expected[r]![c]!), `row ${r} column ${c}: got ${String(value)} (${typeof value}), want ${String(expected[r]![c])} (${typeof expected[r]![c]})`)),
  );
}

// These tests are about ingest itself, under the policy that mirrors first schemas as they
// come; the review workflow (the default policy) is proven in governance-*.test.ts.
const AUTO = governancePolicy('auto');
const ingestRowBatch = (...args: Parameters<typeof ingestWithPolicy>) => ingestWithPolicy(args[0], args[1], args[2], args[3], { policy: AUTO });

const refusedWith = (code: string) => (error: unknown) => error instanceof SynclineError && error.code === code;

describeEachStore('ingestRowBatch', (ctx) => {
  test('materializes every value exactly, through PostgreSQL and back', async () => {
    const device = await newDevice(ctx.store);
    const blob = new Uint8Array([0, 1, 2, 253, 254, 255]);
    const rows: SqlValue[][] = [
      [1n, INT64_MAX, -0, 'plain', 1.5, blob, 42n],
      [2n, INT64_MIN, 5e-324, 'Ünïcödé 表 🙂 "quoted" \\ back', 12345678901234567n, new Uint8Array(), 'text in an untyped column'],
      [3n, 0n, Number.MAX_VALUE, '', -0.000123, null, -0],
      [4n, 'abc', 7n, 99n, 'not a number', 'not a blob', new Uint8Array([9])],
      [5n, 1.5, 0.1, 'a\u0000b', 2.0, 3n, INT64_MIN],
      [6n, null, null, null, null, null, null],
      [INT64_MIN, -1n, -1e300, 'NULL', 1e-7, blob, 1e21],
      [INT64_MAX, 2n ** 53n + 1n, 1e21, '{"a",NULL}', INT64_MAX, blob, '\ud800 lone'],
    ];
    const batch = rowBatch(KINDS, rows.map((r, i) => upsert(i + 1, r)), { epoch: uuidv7() });
    const ack = await ingestRowBatch(ctx.store, device, batch, 1234);
    assert.deepEqual({ ...ack, lineage_id: undefined }, { batch_id: batch.batch_id, status: 'accepted', lineage_id: undefined, last_seq: 8, rows_applied: 8, rows_skipped: 0 });

    const mirror = await allMirrorRows(ctx.store, ack.lineage_id);
    const sorted = [...rows].sort((a, b) => (BigInt(a[0] as bigint) < BigInt(b[0] as bigint) ? -1 : 1));
    assertRowsEqual(decodedColumns(mirror, KIND_NAMES), sorted);

    // Natively typed where the type holds the value, NULL plus overflow where it does not.
    const lineage = await getLineage(ctx.store, ack.lineage_id);
    const table = `"${lineage.mirror_table}"`;
    const native = await ctx.store.query<{ id: string; i: string | null; r: string | null; n: string | null; overflow: string | null }>(
      `SELECT id::text, i::text, r::text, n::text, _syncline_overflow::text AS overflow FROM ${table} WHERE id IN (1, 4, 5) ORDER BY id`,
    );
    assert.deepEqual(native.rows.map((r) => [r.id, r.i, r.r, r.n]), [['1', '9223372036854775807', '-0', '1.5'], ['4', null, null, null], ['5', null, '0.1', null]]);
    assert.equal(native.rows[0]!.overflow, null);
    assert.deepEqual(JSON.parse(native.rows[1]!.overflow!), { i: 'abc', r: 7, t: 99, n: 'not a number', b: 'not a blob' });
    const types = await ctx.store.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 AND column_name IN ('id','i','r','t','n','b','any') ORDER BY ordinal_position`,
      [lineage.mirror_table],
    );
    assert.deepEqual(types.rows.map((r) => `${r.column_name}:${r.data_type}`), ['id:bigint', 'i:bigint', 'r:double precision', 't:text', 'n:numeric', 'b:bytea', 'any:jsonb']);
    const meta = mirror[0]!;
    assert.equal(meta._syncline_device_id, device.device_id);
    assert.equal(meta._syncline_batch_id, batch.batch_id);
    assert.equal(meta._syncline_epoch, batch.journal_epoch);
    assert.equal(meta._syncline_op, 'insert');
  });

  test('the bulk path (COPY for fresh rows) and the upsert path store the same exact values, COPY\'s special characters included', async () => {
    const device = await newDevice(ctx.store);
    const special = 'tab\there\nnewline\r\ncr \\N \\ backslash \\t literal';
    const rowAt = (id: bigint, k: number): SqlValue[] => [
      id,
      2n ** 53n + BigInt(k),
      k % 2 === 0 ? 0.1 * k : -(2 ** -1074) * k,
      `${special} ${k}`,
      INT64_MIN + BigInt(k),
      new Uint8Array([0x5c, 0x09, 0x0a, 0x0d, 0x4e, k % 256]),
      k % 3 === 0 ? `json\t${special}` : k % 3 === 1 ? INT64_MAX - BigInt(k) : null,
    ];
    const count = 2500;
    const fresh = Array.from({ length: count }, (_, k) => rowAt(BigInt(k + 1), k));
    const epoch = uuidv7();
    const first = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, fresh.map((r, i) => upsert(i + 1, r)), { epoch }), 1);
    assert.equal(first.rows_applied, count);
    assertRowsEqual(decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), KIND_NAMES), fresh);
    // The same values again as updates go through INSERT ... ON CONFLICT fed by arrays; a fresh insert
    // meeting held keys falls back from COPY to it too. Both leave what COPY left.
    const updates = rowBatch(KINDS, fresh.map((r, i) => upsert(count + i + 1, r, 'update')), { epoch });
    await ingestRowBatch(ctx.store, device, updates, 1);
    assertRowsEqual(decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), KIND_NAMES), fresh);
    const again = rowBatch(KINDS, fresh.slice(0, 10).map((r, i) => upsert(2 * count + i + 1, r)), { epoch });
    assert.equal((await ingestRowBatch(ctx.store, device, again, 1)).rows_applied, 10);
    assertRowsEqual(decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), KIND_NAMES), fresh);
  });

  test('the same batch twice: the second is a duplicate and changes nothing', async () => {
    const device = await newDevice(ctx.store);
    const batch = rowBatch(KINDS, [upsert(1, [1n, 1n, 1.5, 'a', 1n, null, null]), upsert(2, [2n, 2n, 2.5, 'b', 2n, null, null])], { epoch: uuidv7() });
    const first = await ingestRowBatch(ctx.store, device, batch, 100);
    const before = await deviceState(ctx.store, device.device_id);
    const second = await ingestRowBatch(ctx.store, device, batch, 100);
    assert.deepEqual(second, { ...first, status: 'duplicate' });
    assert.deepEqual(await deviceState(ctx.store, device.device_id), before);
  });

  test('concurrent deliveries of one batch: one accepted, one duplicate', async () => {
    const device = await newDevice(ctx.store);
    const batch = rowBatch(KINDS, [upsert(1, [1n, 1n, 1.5, 'a', 1n, null, null])], { epoch: uuidv7() });
    const acks = await Promise.all([ingestRowBatch(ctx.store, device, batch, 10), ingestRowBatch(ctx.store, device, batch, 10)]);
    assert.deepEqual(acks.map((a) => a.status).sort(), ['accepted', 'duplicate']);
    assert.equal((await allMirrorRows(ctx.store, acks[0]!.lineage_id)).length, 1);
  });

  test('a re-batched redelivery (new batch_id, same seqs) skips the rows already held', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const row = (seq: number, id: bigint, text: string) => upsert(seq, [id, 0n, 0.5, text, 0n, null, null]);
    const first = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [row(1, 1n, 'one'), row(2, 2n, 'two'), row(3, 3n, 'three')], { epoch }), 10);
    const mirrorBefore = await allMirrorRows(ctx.store, first.lineage_id);

    const replay = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [row(1, 1n, 'CHANGED'), row(2, 2n, 'CHANGED'), row(3, 3n, 'CHANGED')], { epoch }), 10);
    assert.deepEqual([replay.status, replay.rows_applied, replay.rows_skipped, replay.last_seq], ['accepted', 0, 3, 3]);
    assert.deepEqual(await allMirrorRows(ctx.store, first.lineage_id), mirrorBefore);

    const overlap = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [row(2, 2n, 'CHANGED'), row(3, 3n, 'CHANGED'), row(4, 4n, 'four')], { epoch }), 10);
    assert.deepEqual([overlap.rows_applied, overlap.rows_skipped, overlap.last_seq], [1, 2, 4]);
    const texts = decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), ['t']).flat();
    assert.deepEqual(texts, ['one', 'two', 'three', 'four']);
    const lineage = await getLineage(ctx.store, first.lineage_id);
    assert.deepEqual([lineage.last_seq, lineage.rows_received, lineage.rows_applied], [4, 4, 4]);
  });

  test('inserts, updates and deletes within a batch apply in seq order', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const r = (id: bigint, text: string): SqlValue[] => [id, id, 0.25, text, null, null, null];
    const seed = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [upsert(1, r(10n, 'ten')), upsert(2, r(11n, 'eleven'))], { epoch }), 10);
    await ingestRowBatch(
      ctx.store,
      device,
      rowBatch(
        KINDS,
        [
          upsert(3, r(1n, 'inserted')),
          upsert(4, r(1n, 'updated'), 'update'),
          upsert(5, r(2n, 'short-lived')),
          remove(6, 2n),
          remove(7, 10n),
          upsert(8, r(11n, 'eleven updated'), 'update'),
          remove(9, 11n),
          upsert(10, r(11n, 'eleven again')),
          remove(11, 999n),
        ],
        { epoch },
      ),
      10,
    );
    const rows = await allMirrorRows(ctx.store, seed.lineage_id);
    assert.deepEqual(decodedColumns(rows, ['id', 't']), [[1n, 'updated'], [11n, 'eleven again']]);
    assert.deepEqual(rows.map((row) => [row._syncline_seq, row._syncline_op]), [[4, 'update'], [10, 'insert']]);
  });

  test('inserts and snapshot rows meeting keys the mirror holds (INSERT OR REPLACE, a new snapshot) overwrite them', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const r = (id: bigint, text: string): SqlValue[] => [id, id, 0.25, text, null, new Uint8Array([Number(id)]), null];
    const seed = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [upsert(1, r(1n, 'one')), upsert(2, r(2n, 'two')), upsert(3, r(3n, 'three'))], { epoch }), 10);
    const ack = await ingestRowBatch(
      ctx.store,
      device,
      rowBatch(KINDS, [upsert(4, r(4n, 'four')), upsert(5, r(2n, 'two replaced')), upsert(6, r(1n, 'one snapshotted'), 'snapshot')], { epoch }),
      10,
    );
    assert.deepEqual([ack.status, ack.rows_applied], ['accepted', 3]);
    const rows = await allMirrorRows(ctx.store, seed.lineage_id);
    assert.deepEqual(decodedColumns(rows, ['id', 't', 'b']), [
      [1n, 'one snapshotted', new Uint8Array([1])],
      [2n, 'two replaced', new Uint8Array([2])],
      [3n, 'three', new Uint8Array([3])],
      [4n, 'four', new Uint8Array([4])],
    ]);
    assert.deepEqual(rows.map((row) => row._syncline_seq), [6, 5, 3, 4]);
    const ledger = await ctx.store.query<{ n: string }>('SELECT count(*)::text AS n FROM edge_export_segments WHERE lineage_id = $1', [seed.lineage_id]);
    assert.equal(ledger.rows[0]!.n, '2');
  });

  test('composite keys and rowid keys', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const composite: TableSpec = { table: 'readings', columns: [{ name: 'site', type: 'TEXT', pk: 1 }, { name: 'at', type: 'INTEGER', pk: 2 }, { name: 'value', type: 'REAL' }] };
    const c = (seq: number, site: string, at: bigint, value: number, op: RowSpec['op'] = 'insert'): RowSpec => ({ seq, op, pk: [site, at], row: [site, at, value] });
    const ack = await ingestRowBatch(
      ctx.store,
      device,
      rowBatch(composite, [c(1, 'b', 1n, 1), c(2, 'a', 2n, 2), c(3, 'a', 1n, 3), c(4, 'a', 2n, 20, 'update'), { seq: 5, op: 'delete', pk: ['b', 1n] }], { epoch }),
      10,
    );
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['site', 'at', 'value']), [['a', 1n, 3], ['a', 2n, 20]]);

    const log: TableSpec = { table: 'log', columns: [{ name: 'msg', type: 'TEXT' }, { name: 'level', type: 'INTEGER' }] };
    const l = (seq: number, rowid: bigint, msg: string, op: RowSpec['op'] = 'insert'): RowSpec => ({ seq, op, pk: [rowid], row: [msg, 1n] });
    const logAck = await ingestRowBatch(ctx.store, device, rowBatch(log, [l(1, 1n, 'first'), l(2, 2n, 'second'), l(3, 1n, 'first edited', 'update'), { seq: 4, op: 'delete', pk: [2n] }, l(5, INT64_MAX, 'last')], { epoch }), 10);
    const logRows = await allMirrorRows(ctx.store, logAck.lineage_id);
    assert.deepEqual(decodedColumns(logRows, ['_syncline_rowid', 'msg']), [[1n, 'first edited'], [INT64_MAX, 'last']]);
  });

  test('hostile table and column names land quoted; Syncline tables stay intact', async () => {
    const device = await newDevice(ctx.store);
    const devicesBefore = await ctx.store.query<{ n: string }>('SELECT count(*) AS n FROM devices');
    const spec: TableSpec = {
      table: 'x"; DROP TABLE devices; --',
      columns: [
        { name: 'a"b', type: 'INTEGER', pk: 1 },
        { name: '; DELETE FROM devices; --', type: 'TEXT' },
        { name: "it's", type: 'TEXT' },
        { name: 'Ünï 表', type: 'REAL' },
        { name: '__proto__', type: 'TEXT' },
        { name: 'select', type: 'TEXT' },
      ],
    };
    const ack = await ingestRowBatch(ctx.store, device, rowBatch(spec, [upsert(1, [1n, 'x', 'y', 1.25, 'proto', 'kw'])], { epoch: uuidv7() }), 10);
    const devicesAfter = await ctx.store.query<{ n: string }>('SELECT count(*) AS n FROM devices');
    assert.equal(devicesAfter.rows[0]!.n, devicesBefore.rows[0]!.n);
    const lineage = await getLineage(ctx.store, ack.lineage_id);
    assert.match(lineage.mirror_table!, /^edge_mirror_[0-9a-f]{8}_x___drop_table_devices_____[0-9a-f]{8}$/);
    const rows = await allMirrorRows(ctx.store, ack.lineage_id);
    assert.deepEqual(decodedColumns(rows, spec.columns.map((c) => c.name)), [[1n, 'x', 'y', 1.25, 'proto', 'kw']]);
    assert.ok(Object.hasOwn(rows[0]!, '__proto__'));
    for (const name of ['devices', 'edge_table_lineages', 'edge_export_segments', 'syncline_migrations']) {
      const exists = await ctx.store.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [name]);
      assert.ok(exists.rows[0]!.ok, name);
    }
  });

  test('refuses reserved, empty and over-long names before storing anything', async () => {
    const device = await newDevice(ctx.store);
    const bad: TableSpec[] = [
      { table: 't', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: '_syncline_seq', type: 'TEXT' }] },
      { table: 'a'.repeat(64), columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] },
      { table: 't', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'é'.repeat(32), type: 'TEXT' }] },
    ];
    for (const spec of bad) {
      const row = spec.columns.map((_, i) => (i === 0 ? 1n : 'v'));
      await assert.rejects(ingestRowBatch(ctx.store, device, rowBatch(spec, [upsert(1, row)], { epoch: uuidv7() }), 10), refusedWith('hostile_identifier'));
    }
    assert.deepEqual(await deviceState(ctx.store, device.device_id), { lineages: [], ledger: [], staged: [], mirrors: {} });
  });

  test('a stale epoch is refused and changes nothing; a newer epoch is followed', async () => {
    const device = await newDevice(ctx.store);
    const older = uuidv7();
    const current = uuidv7();
    const newer = uuidv7();
    const r = (seq: number, id: bigint, text: string) => upsert(seq, [id, 0n, 0.5, text, null, null, null]);
    const ack = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [r(5, 1n, 'current'), r(6, 2n, 'current')], { epoch: current }), 10);
    const before = await deviceState(ctx.store, device.device_id);
    await assert.rejects(ingestRowBatch(ctx.store, device, rowBatch(KINDS, [r(7, 1n, 'stale')], { epoch: older }), 10), (error: unknown) => {
      assert.ok(error instanceof SynclineError);
      assert.equal(error.code, 'stale_epoch');
      assert.equal(error.status, 409);
      assert.equal(error.context.lineage_id, ack.lineage_id);
      return true;
    });
    assert.deepEqual(await deviceState(ctx.store, device.device_id), before);

    const followed = await ingestRowBatch(ctx.store, device, rowBatch(KINDS, [r(1, 1n, 'newer')], { epoch: newer }), 10);
    assert.deepEqual([followed.status, followed.last_seq, followed.rows_applied], ['accepted', 1, 1]);
    const lineage = await getLineage(ctx.store, ack.lineage_id);
    assert.deepEqual([lineage.journal_epoch, lineage.last_seq], [newer, 1]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['t', '_syncline_epoch']), [['newer', newer], ['current', current]]);
  });

  test('an added column alters the mirror and rows keep flowing (policy auto)', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const v1: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] };
    const v2: TableSpec = { table: 'items', columns: [...v1.columns, { name: 'price', type: 'REAL' }, { name: 'Note ✓' }] };
    const first = await ingestRowBatch(ctx.store, device, rowBatch(v1, [upsert(1, [1n, 'one'])], { epoch }), 10);
    const second = await ingestRowBatch(ctx.store, device, rowBatch(v2, [upsert(2, [2n, 'two', 2.5, 'n']), upsert(3, [1n, 'one', -0, 7n], 'update')], { epoch }), 10);
    assert.equal(second.rows_applied, 2);
    const detail = await getLineageDetail(ctx.store, first.lineage_id);
    assert.equal(detail.status, 'active');
    assert.equal(detail.schemas.length, 2);
    assert.deepEqual(detail.bindings.map((b) => `${b.source_column}:${b.pg_type}`), ['Note ✓:jsonb', 'id:bigint', 'name:text', 'price:double precision']);
    const rows = decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), ['id', 'name', 'price', 'Note ✓']);
    assertRowsEqual(rows, [[1n, 'one', -0, 7n], [2n, 'two', 2.5, 'n']]);
  });

  test('a breaking change pauses the lineage and stages rows, still acknowledged', async () => {
    const device = await newDevice(ctx.store);
    const epoch = uuidv7();
    const v1: TableSpec = { table: 'people', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }, { name: 'age', type: 'INTEGER' }] };
    const v2: TableSpec = { table: 'people', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] };
    const first = await ingestRowBatch(ctx.store, device, rowBatch(v1, [upsert(1, [1n, 'ann', 30n])], { epoch }), 10);
    const mirrorBefore = await allMirrorRows(ctx.store, first.lineage_id);

    const breaking = await ingestRowBatch(ctx.store, device, rowBatch(v2, [upsert(2, [2n, 'bob']), upsert(3, [1n, 'ann b'], 'update')], { epoch }), 10);
    assert.deepEqual([breaking.status, breaking.rows_applied, breaking.last_seq], ['accepted', 2, 3]);
    let detail = await getLineageDetail(ctx.store, first.lineage_id);
    assert.equal(detail.status, 'paused');
    assert.match(detail.status_reason!, /dropped "age"/);
    assert.equal(detail.staged_rows, 2);
    assert.deepEqual(await allMirrorRows(ctx.store, first.lineage_id), mirrorBefore);

    // A paused lineage stages whatever comes next, even in the old schema.
    const later = await ingestRowBatch(ctx.store, device, rowBatch(v1, [upsert(4, [3n, 'cy', 5n])], { epoch }), 10);
    assert.equal(later.status, 'accepted');
    detail = await getLineageDetail(ctx.store, first.lineage_id);
    assert.equal(detail.staged_rows, 3);
    assert.deepEqual([detail.last_seq, detail.rows_received, detail.rows_applied], [4, 4, 1]);
    const staged = await ctx.store.query<{ seq: string; op: string; pk: unknown; row: unknown; reason: string; detail: string }>(
      'SELECT seq, op, pk, row, reason, detail FROM edge_staged_rows WHERE lineage_id = $1 ORDER BY id',
      [first.lineage_id],
    );
    assert.deepEqual(staged.rows.map((s) => [s.seq, s.op, s.pk, s.row]), [['2', 'insert', [2], [2, 'bob']], ['3', 'update', [1], [1, 'ann b']], ['4', 'insert', [3], [3, 'cy', 5]]]);
    assert.ok(staged.rows.every((s) => s.reason === 'schema_review' && /dropped "age"/.test(s.detail)));
    assert.deepEqual(await allMirrorRows(ctx.store, first.lineage_id), mirrorBefore);
  });

  test('keys too long for a btree entry are mirrored (digest-keyed mirror), never blocking ingest', async () => {
    const device = await newDevice(ctx.store);
    const spec: TableSpec = { table: 'long_keys', columns: [{ name: 'k', type: 'TEXT', pk: 1 }, { name: 'v', type: 'TEXT' }] };
    const epoch = uuidv7();
    const first = await ingestRowBatch(ctx.store, device, rowBatch(spec, [upsert(1, ['short', 'ok'])], { epoch }), 10);
    // Random text does not compress, so this key is far past btree's ~2.7 kB entry limit.
    const longKey = randomBytes(12_000).toString('base64');
    const ack = await ingestRowBatch(ctx.store, device, rowBatch(spec, [upsert(2, ['fine', 'ok']), upsert(3, [longKey, 'long'])], { epoch }), 10);
    assert.deepEqual([ack.status, ack.rows_applied, ack.last_seq], ['accepted', 2, 3]);
    const detail = await getLineageDetail(ctx.store, first.lineage_id);
    assert.deepEqual([detail.status, detail.staged_rows], ['active', 0]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, first.lineage_id), ['k']).map((r) => r[0]).sort(), ['fine', longKey, 'short'].sort());
  });

  test('a key value the key column cannot hold is staged; the rest materializes', async () => {
    const device = await newDevice(ctx.store);
    const spec: TableSpec = { table: 'loose', columns: [{ name: 'id', type: 'INT', pk: 1 }, { name: 'v', type: 'TEXT' }] };
    const ack = await ingestRowBatch(ctx.store, device, rowBatch(spec, [upsert(1, [1n, 'ok']), upsert(2, ['abc', 'odd key']), upsert(3, [2n, 'ok too'])], { epoch: uuidv7() }), 10);
    assert.equal(ack.rows_applied, 3);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']), [[1n, 'ok'], [2n, 'ok too']]);
    const detail = await getLineageDetail(ctx.store, ack.lineage_id);
    assert.deepEqual([detail.status, detail.staged_rows, detail.rows_applied], ['active', 1, 2]);
  });
});
