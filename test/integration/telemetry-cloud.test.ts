import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import type { DeviceIdentity } from '../../src/cloud/auth/devices.js';
import { governancePolicy } from '../../src/cloud/governance/policy.js';
import { listMappings } from '../../src/cloud/telemetry/telemetry-mappings.js';
import { listPartitions } from '../../src/cloud/telemetry/telemetry-partitions.js';
import { latestTelemetry, parseTelemetryQuery, queryTelemetry } from '../../src/cloud/telemetry/telemetry-query.js';
import { approveTelemetryMapping } from '../../src/cloud/telemetry/telemetry-review.js';
import { GroupCommitter } from '../../src/cloud/ingest/group-commit.js';
import { TelemetryService } from '../../src/cloud/telemetry/telemetry-service.js';
import type { Store } from '../../src/cloud/store/store.js';
import { TELEMETRY_BATCH_FORMAT_VERSION } from '../../src/protocol/constants.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { affinityOf, schemaFingerprint, type ColumnInfo } from '../../src/protocol/schema.js';
import { parseTelemetryBatch, type WireTelemetryBatch } from '../../src/protocol/telemetry-batch.js';
import { encodeValue, type SqlValue } from '../../src/protocol/values.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { readingBatch } from '../support/telemetry-batches.js';

/** The cloud's telemetry path on PGlite and PostgreSQL: ingest, dedupe, review, exact values, queries, partitions. */

const logger = pino({ level: 'silent' });

function columns(spec: Record<string, string>): ColumnInfo[] {
  return Object.entries(spec).map(([name, type]) => ({ name, declared_type: type, affinity: affinityOf(type), pk: 0, notnull: false, has_default: false }));
}

function batch(table: string, cols: ColumnInfo[], timeColumn: string | null, rows: { seq: number; row: SqlValue[] }[], epoch: string): unknown {
  const wire: WireTelemetryBatch = {
    format_version: TELEMETRY_BATCH_FORMAT_VERSION,
    batch_id: uuidv7(),
    journal_epoch: epoch,
    source_table: table,
    time_column: timeColumn,
    schema: { hash: schemaFingerprint(cols), columns: cols },
    first_seq: rows[0]!.seq,
    last_seq: rows[rows.length - 1]!.seq,
    rows: rows.map((r) => ({ seq: r.seq, row: r.row.map(encodeValue) })),
  };
  return JSON.parse(JSON.stringify(wire));
}

async function ingest(service: TelemetryService, device: DeviceIdentity, raw: unknown) {
  return service.ingest(device, parseTelemetryBatch(raw), 100);
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isSynclineError(error), String(error));
    return error.code;
  }
  assert.fail('expected a refusal');
}

const T0 = Date.parse('2026-03-01T10:00:00Z');
const SENSOR = columns({ ts: 'INTEGER', temp: 'REAL', count: 'INTEGER', label: 'TEXT', ok: 'BOOLEAN' });

async function series(store: Store, device: string, point: string, agg: string, bucket = '1m', from = T0, to = T0 + 5 * 60_000) {
  return queryTelemetry(store, undefined, parseTelemetryQuery({ device, point, from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket, agg }));
}

describeEachStore('telemetry in the cloud', (context) => {
  let store: Store;
  const auto = () => new TelemetryService({ store: (store = context.store), policy: governancePolicy('auto'), logger });
  const review = () => new TelemetryService({ store: (store = context.store), policy: governancePolicy('review'), logger });

  test('auto maps every column but the time column to {table}.{column}; values come back exactly', async () => {
    const service = auto();
    const device = await newDevice(store, 'exact');
    const epoch = uuidv7();
    const big = 9_223_372_036_854_775_807n;
    const rows = [
      { seq: 1, row: [BigInt(T0), 21.5, big, 'a "quoted" ünïcode', 1n] },
      { seq: 2, row: [BigInt(T0 + 1000), 0.1 + 0.2, -(2n ** 63n), 'line\nbreak', 0n] },
      { seq: 3, row: [BigInt(T0 + 61_000), 1e300, 2n ** 53n + 1n, null, null] },
    ];
    const ack = await ingest(service, device, batch('exact_readings', SENSOR, 'ts', rows, epoch));
    assert.equal(ack.status, 'accepted');
    assert.equal(ack.rows_applied, 3);
    assert.equal(ack.last_seq, 3);
    const last = await series(store, device.device_id, 'exact_readings.count', 'last');
    assert.equal(last.buckets[0]!.value, (-(2n ** 63n)).toString());
    assert.equal(last.buckets[1]!.value, (2n ** 53n + 1n).toString());
    const max = await series(store, device.device_id, 'exact_readings.count', 'max');
    assert.equal(max.buckets[0]!.value, big.toString());
    const temp = await series(store, device.device_id, 'exact_readings.temp', 'last');
    assert.equal(temp.buckets[0]!.value, 0.1 + 0.2);
    // A double beyond 2^53 comes back as decimal text that parses to the same double.
    assert.equal(Number(temp.buckets[1]!.value), 1e300);
    const label = await series(store, device.device_id, 'exact_readings.label', 'min');
    assert.equal(label.buckets[0]!.value, 'a "quoted" ünïcode');
    const ok = await series(store, device.device_id, 'exact_readings.ok', 'last');
    assert.equal(ok.kind, 'boolean');
    assert.equal(ok.buckets[0]!.value, false);
    // Gaps are explicit: five one-minute buckets, three of them empty.
    const count = await series(store, device.device_id, 'exact_readings.temp', 'count');
    assert.deepEqual(count.buckets.map((b) => b.count), [2, 1, 0, 0, 0]);
    assert.deepEqual(count.buckets.map((b) => b.value), [2, 1, 0, 0, 0]);
    const avg = await series(store, device.device_id, 'exact_readings.temp', 'avg');
    assert.equal(avg.buckets[2]!.value, null);
    const latest = await latestTelemetry(store, device.device_id);
    assert.deepEqual(
      latest.points.map((p) => [p.point, p.value]),
      [
        ['exact_readings.count', (2n ** 53n + 1n).toString()],
        ['exact_readings.label', 'line\nbreak'],
        ['exact_readings.ok', false],
        ['exact_readings.temp', `1${'0'.repeat(300)}`],
      ],
    );
  });

  test('a redelivered batch and rows already held change nothing; an older epoch is refused', async () => {
    const service = auto();
    const device = await newDevice(store, 'dedupe');
    const epoch = uuidv7();
    const cols = columns({ ts: 'INTEGER', v: 'REAL' });
    const first = batch('dedupe_t', cols, 'ts', [{ seq: 1, row: [BigInt(T0), 1.5] }, { seq: 2, row: [BigInt(T0 + 1), 2.5] }], epoch);
    await ingest(service, device, first);
    assert.equal((await ingest(service, device, first)).status, 'duplicate');
    // The device crashed before the ack: the same rows come again in a new batch, with one more.
    const again = await ingest(service, device, batch('dedupe_t', cols, 'ts', [{ seq: 2, row: [BigInt(T0 + 1), 2.5] }, { seq: 3, row: [BigInt(T0 + 2), 3.5] }], epoch));
    assert.deepEqual([again.rows_applied, again.rows_skipped, again.last_seq], [1, 1, 3]);
    const count = await series(store, device.device_id, 'dedupe_t.v', 'count');
    assert.equal(count.buckets[0]!.count, 3);
    const older = '01890000-0000-7000-8000-000000000000';
    assert.equal(await refusal(ingest(service, device, batch('dedupe_t', cols, 'ts', [{ seq: 9, row: [BigInt(T0), 1] }], older))), 'stale_epoch');
  });

  test('under review rows wait for the mapping; approval maps, ignores and replays them', async () => {
    const service = review();
    const device = await newDevice(store, 'review');
    const epoch = uuidv7();
    const cols = columns({ at: 'TEXT', temp: 'REAL', hum: 'REAL', note: 'TEXT' });
    const iso = (ms: number) => new Date(ms).toISOString();
    await ingest(service, device, batch('review_t', cols, 'at', [{ seq: 1, row: [iso(T0), 20.25, 40, 'x'] }, { seq: 2, row: [iso(T0 + 60_000), 21.25, 41, 'y'] }], epoch));
    const pending = (await listMappings(store, 'pending')).find((m) => m.source_table === 'review_t')!;
    assert.equal(pending.staged_rows, 2);
    // Bad decisions are refused and change nothing.
    const twice = { columns: [{ name: 'temp', action: 'point', point: 'p' }, { name: 'hum', action: 'point', point: 'p' }, { name: 'note', action: 'ignore' }] };
    assert.equal(await refusal(approveTelemetryMapping(store, service.partitions, pending.id, twice, 'op')), 'telemetry_bad_mapping');
    assert.equal(await refusal(approveTelemetryMapping(store, service.partitions, pending.id, { columns: [{ name: 'temp', action: 'point' }] }, 'op')), 'telemetry_bad_mapping');
    assert.equal(await refusal(approveTelemetryMapping(store, service.partitions, pending.id, { columns: [{ name: 'at', action: 'point' }] }, 'op')), 'telemetry_bad_mapping');
    const decision = { columns: [{ name: 'temp', action: 'point', point: 'room.temperature' }, { name: 'hum', action: 'point', kind: 'numeric' }, { name: 'note', action: 'ignore' }] };
    const approved = await approveTelemetryMapping(store, service.partitions, pending.id, decision, 'op');
    assert.equal(approved.replayed_rows, 2);
    assert.equal(await refusal(approveTelemetryMapping(store, service.partitions, pending.id, decision, 'op')), 'conflict');
    await ingest(service, device, batch('review_t', cols, 'at', [{ seq: 3, row: [iso(T0 + 120_000), 22.5, 42, 'z'] }], epoch));
    const temp = await series(store, device.device_id, 'room.temperature', 'last');
    assert.deepEqual(temp.buckets.slice(0, 3).map((b) => b.value), [20.25, 21.25, 22.5]);
    const hum = await series(store, device.device_id, 'review_t.hum', 'sum');
    assert.equal(hum.buckets[1]!.value, 41);
    assert.equal(await refusal(series(store, device.device_id, 'review_t.note', 'last')), 'not_found');
  });

  test('bad input: a bad time, a missing time column, a non-increasing cursor, a bad query', async () => {
    const service = auto();
    const device = await newDevice(store, 'bad');
    const epoch = uuidv7();
    const cols = columns({ ts: 'TEXT', v: 'REAL' });
    assert.equal(await refusal(ingest(service, device, batch('bad_t', cols, 'ts', [{ seq: 1, row: ['not a time', 1] }], epoch))), 'telemetry_bad_time');
    assert.throws(() => parseTelemetryBatch(batch('bad_t', cols, 'nope', [{ seq: 1, row: ['2026-01-01', 1] }], epoch)), (e) => isSynclineError(e) && e.code === 'telemetry_time_column_missing');
    assert.throws(() => parseTelemetryBatch(batch('bad_t', cols, 'ts', [{ seq: 2, row: ['2026-01-01', 1] }, { seq: 2, row: ['2026-01-01', 1] }], epoch)), (e) => isSynclineError(e) && e.code === 'row_count_mismatch');
    const { rows } = await store.query('SELECT count(*)::int AS n FROM telemetry_segments WHERE device_id = $1', [device.device_id]);
    assert.equal(rows[0]!.n, 0);
    assert.throws(() => parseTelemetryQuery({ device: device.device_id, point: 'x', from: '2026-01-01', to: '2026-01-02', bucket: '1s' }), /buckets/);
    assert.throws(() => parseTelemetryQuery({ device: device.device_id, point: 'x', from: '2026-01-02', to: '2026-01-01' }), /after/);
    assert.throws(() => parseTelemetryQuery({ device: device.device_id, point: 'x', from: '2026-01-01', to: '2026-01-02', agg: 'median' }), /agg/);
  });

  test('values land in daily partitions made on demand; retention drops whole old days', async () => {
    const service = auto();
    const device = await newDevice(store, 'partitions');
    const cols = columns({ ts: 'INTEGER', v: 'INTEGER' });
    const now = Date.now();
    const oldDay = now - 40 * 86_400_000;
    await ingest(service, device, batch('part_t', cols, 'ts', [{ seq: 1, row: [BigInt(oldDay), 1n] }, { seq: 2, row: [BigInt(now), 2n] }], uuidv7()));
    const names = (await listPartitions(store)).map((p) => p.name);
    const dayName = (ms: number) => `telemetry_values_p${new Date(ms).toISOString().slice(0, 10).replaceAll('-', '')}`;
    assert.ok(names.includes(dayName(oldDay)) && names.includes(dayName(now)), names.join(','));
    const dropped = await service.partitions.dropOlderThan(30, now);
    assert.ok(dropped.includes(dayName(oldDay)));
    assert.ok(!dropped.includes(dayName(now)));
    const { rows } = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry_values WHERE device_id = $1', [device.device_id]);
    assert.equal(rows[0]!.n, 1);
    // A day dropped and needed again is created again.
    await ingest(service, device, batch('part_t', cols, 'ts', [{ seq: 3, row: [BigInt(oldDay), 3n] }], (await store.query<{ e: string }>('SELECT journal_epoch AS e FROM telemetry_lineages WHERE device_id = $1', [device.device_id])).rows[0]!.e));
    const again = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry_values WHERE device_id = $1', [device.device_id]);
    assert.equal(again.rows[0]!.n, 2);
  });

  test('batches sent together (after_seq) are stored in seq order whatever order they reach ingest in; one whose predecessor never comes is refused as too early', async () => {
    const group = new GroupCommitter(store);
    const service = new TelemetryService({ store: (store = context.store), policy: governancePolicy('auto'), logger, group });
    const device = await newDevice(store, 'pipelined');
    const epoch = uuidv7();
    const b = (from: number, after?: number) => readingBatch('pipe_t', from, 4, epoch, undefined, after);
    // The mapping is approved and cached by the first batch; later ones run set-based.
    await service.ingest(device, b(1), 10);
    // 5 goes first; 13 and 9 arrive (in that order) while it is being stored, and follow it in one group, 9 before 13.
    const isolated = group.stats.isolated;
    const acks = await Promise.all([service.ingest(device, b(5, 4), 10), service.ingest(device, b(13, 12), 10), service.ingest(device, b(9, 8), 10)]);
    assert.deepEqual(acks.map((a) => [a.status, a.rows_applied, a.last_seq]), [['accepted', 4, 8], ['accepted', 4, 16], ['accepted', 4, 12]]);
    assert.equal(group.stats.isolated, isolated);
    assert.ok(group.stats.largest >= 2, `largest group: ${group.stats.largest}`);
    // 21 reaches ingest before 17 with nothing of the lineage in flight (bodies are parsed side by side): it waits for 17, both are taken.
    const pair = await Promise.all([service.ingest(device, b(21, 20), 10), new Promise((resolve) => setTimeout(resolve, 50)).then(() => service.ingest(device, b(17, 16), 10))]);
    assert.deepEqual(pair.map((a) => [a.status, a.last_seq]), [['accepted', 24], ['accepted', 20]]);
    // One whose predecessor never comes is refused after a while, nothing stored; after the predecessor it is taken (and a copy of it is a duplicate).
    const early = b(29, 28);
    assert.equal(await refusal(service.ingest(device, early, 10)), 'telemetry_too_early');
    assert.equal((await service.ingest(device, b(25, 24), 10)).last_seq, 28);
    assert.equal((await service.ingest(device, early, 10)).status, 'accepted');
    assert.equal((await service.ingest(device, early, 10)).status, 'duplicate');
    const { rows } = await store.query<{ n: number; last: string }>(
      `SELECT (SELECT count(*)::int FROM telemetry_values WHERE device_id = $1) AS n, (SELECT last_seq::text FROM telemetry_lineages WHERE device_id = $1) AS last`,
      [device.device_id],
    );
    // One point per row (temp; ts is the time column): every row once.
    assert.deepEqual(rows[0], { n: 32, last: '32' });
    // A server that never saw the lineage (restarted, or another worker) reads what the store holds: a batch behind
    // a stored one goes at once; one that overtook its predecessor waits for it, both taken in order.
    const fresh = new TelemetryService({ store, policy: governancePolicy('auto'), logger, group });
    const started = performance.now();
    assert.equal((await fresh.ingest(device, b(33, 32), 10)).status, 'accepted');
    assert.ok(performance.now() - started < 800, `${performance.now() - started} ms`);
    const restarted = new TelemetryService({ store, policy: governancePolicy('auto'), logger, group });
    const behind = await Promise.all([restarted.ingest(device, b(41, 40), 10), new Promise((resolve) => setTimeout(resolve, 50)).then(() => restarted.ingest(device, b(37, 36), 10))]);
    assert.deepEqual(behind.map((a) => [a.status, a.last_seq]), [['accepted', 44], ['accepted', 40]]);
    // after_seq must lie below the batch's rows.
    assert.throws(() => readingBatch('pipe_t', 5, 2, epoch, undefined, 5), (e) => isSynclineError(e) && e.code === 'row_count_mismatch');
  });
});

