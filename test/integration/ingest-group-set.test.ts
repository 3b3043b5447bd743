import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import type { DeviceIdentity } from '../../src/cloud/auth/devices.js';
import { governancePolicy, type GovernancePolicy } from '../../src/cloud/governance/policy.js';
import { GroupCommitter } from '../../src/cloud/ingest/group-commit.js';
import { createDevice, authenticateDevice } from '../../src/cloud/auth/devices.js';
import { setProjectCoalescing } from '../../src/cloud/governance/coalescing.js';
import { ingestRowBatch } from '../../src/cloud/ingest/ingest-row-batch.js';
import type { Queryable, Store } from '../../src/cloud/store/store.js';
import type { RowBatch } from '../../src/protocol/batch.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { rowBatch, type RowSpec, type TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const READINGS: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'TEXT' }] };
const WIDER: TableSpec = { table: 'readings', columns: [...READINGS.columns, { name: 'w', type: 'TEXT' }] };
const rows = (from: number, to: number, tag: string, wide = false): RowSpec[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, op: 'insert', pk: [BigInt(from + i)], row: [BigInt(from + i), `${tag}${from + i}`, ...(wide ? ['w'] : [])] }));

/** The store, counting the statements its transactions run (the set-based steps are what this file proves), and keeping the multi-statement queries. */
function counting(store: Store): { store: Store; statements: number[]; execs: string[] } {
  const statements: number[] = [];
  const execs: string[] = [];
  return {
    statements,
    execs,
    store: {
      ...store,
      kind: store.kind,
      query: (sql, params) => store.query(sql, params),
      exec: (sql) => store.exec(sql),
      copyIn: (target, data) => store.copyIn(target, data),
      transaction: (fn) =>
        store.transaction((tx) => {
          const slot = statements.push(0) - 1;
          const wrapped: Queryable = { query: (sql, params) => ((statements[slot]! += 1), tx.query(sql, params)), exec: (sql) => ((statements[slot]! += 1), execs.push(sql), tx.exec(sql)), copyIn: (target, data) => ((statements[slot]! += 1), tx.copyIn(target, data)) };
          return fn(wrapped);
        }),
      ping: () => store.ping(),
      listen: (channel, handlers) => store.listen(channel, handlers),
      close: () => store.close(),
    },
  };
}

const IDS = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** What a device's batches left behind, with ids blanked so two devices' outcomes compare. */
async function outcomeOf(store: Store, deviceId: string, answers: unknown[]): Promise<unknown> {
  const lineage = await store.query<Record<string, unknown>>(
    `SELECT id::text, status, pause_cause, status_reason, schema_hash, journal_epoch, last_seq, rows_received, rows_applied FROM edge_table_lineages WHERE device_id = $1`,
    [deviceId],
  );
  const l = lineage.rows[0]!;
  const staged = await store.query('SELECT seq, op, pk, row, schema_hash, reason, detail FROM edge_staged_rows WHERE lineage_id = $1 ORDER BY id', [l.id]);
  const ledger = await store.query('SELECT first_seq, last_seq, row_count, ack FROM edge_export_segments WHERE device_id = $1 ORDER BY first_seq, last_seq, received_at', [deviceId]);
  const mirror = l.schema_hash === null ? [] : decodedColumns(await allMirrorRows(store, String(l.id)), ['id', 'v']);
  return JSON.parse(JSON.stringify({ answers, lineage: { ...l, id: undefined }, staged: staged.rows, ledger: ledger.rows, mirror }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).replace(IDS, '<id>'));
}

interface Plan {
  /** Sent one by one before the group forms. */
  setup: RowBatch[];
  /** Sent at once: into one group, or one by one for the oracle. */
  together: RowBatch[];
}

/** Each device's story: steady batches, a redelivery, a stale journal, two batches of one lineage, a new column, rows already held, an insert of a key the mirror holds. */
function plans(): Plan[] {
  const epoch = uuidv7();
  const old = uuidv7();
  const newer = uuidv7();
  const first = rowBatch(READINGS, rows(1, 3, 'a'), { epoch });
  return [
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, rows(4, 6, 'b'), { epoch })] },
    { setup: [first], together: [first] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch: newer })], together: [rowBatch(READINGS, rows(4, 5, 'b'), { epoch: old })] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, rows(4, 5, 'b'), { epoch }), rowBatch(READINGS, rows(6, 8, 'c'), { epoch })] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(WIDER, rows(4, 5, 'b', true), { epoch })] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, rows(2, 3, 'a'), { epoch })] },
    { setup: [], together: [rowBatch(READINGS, rows(1, 2, 'a'), { epoch })] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, rows(4, 4, 'b'), { epoch })] },
    // An INSERT OR REPLACE journals an insert of a key the mirror holds: the group's unguarded COPY fails and its rows go again guarded.
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, [{ seq: 4, op: 'insert', pk: [2n], row: [2n, 'replaced'] }], { epoch })] },
    // Deletes and updates between fresh batches: their own statements, in the group's order, between the shared COPYs.
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, [{ seq: 4, op: 'delete', pk: [2n] }, { seq: 5, op: 'update', pk: [3n], row: [3n, 'edited'] }, ...rows(6, 7, 'd')], { epoch })] },
    { setup: [rowBatch(READINGS, rows(1, 3, 'a'), { epoch })], together: [rowBatch(READINGS, rows(4, 9, 'e'), { epoch })] },
  ];
}

const answer = (settled: PromiseSettledResult<unknown>): unknown => (settled.status === 'fulfilled' ? settled.value : isSynclineError(settled.reason) ? settled.reason.code : 'database error');

async function run(store: Store, policy: GovernancePolicy, group: GroupCommitter | undefined): Promise<{ devices: DeviceIdentity[]; answers: unknown[][] }> {
  const stories = plans();
  const devices = await Promise.all(stories.map(() => newDevice(store)));
  for (const [d, story] of stories.entries()) for (const batch of story.setup) await ingestRowBatch(store, devices[d]!, batch, 10, { policy });
  const sends = stories.flatMap((story, d) => story.together.map((batch) => ({ d, batch })));
  let settled: PromiseSettledResult<unknown>[] = [];
  if (group) settled = await Promise.allSettled(sends.map((s) => ingestRowBatch(store, devices[s.d]!, s.batch, 10, { policy, group })));
  else for (const s of sends) settled.push(...(await Promise.allSettled([ingestRowBatch(store, devices[s.d]!, s.batch, 10, { policy })])));
  const answers = stories.map(() => [] as unknown[]);
  sends.forEach((s, i) => answers[s.d]!.push(answer(settled[i]!)));
  return { devices, answers };
}

/** Every kind of value a mirror column or its overflow holds, with the characters a COPY line or a string literal must escape. */
const KINDS: TableSpec = {
  table: 'kinds',
  columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'i', type: 'INTEGER' }, { name: 'r', type: 'REAL' }, { name: 't', type: 'TEXT' }, { name: 'n', type: 'NUMERIC' }, { name: 'b', type: 'BLOB' }, { name: 'any' }],
};
const KIND_ROWS: RowSpec[] = [
  [1n, 2n ** 63n - 1n, -0, "it's \\ a \t tab\nline", 1.5, new Uint8Array([0, 39, 92, 255]), 42n],
  [2n, -(2n ** 63n), 5e-324, 'Ünïcödé 表 🙂 "quoted" \\ back \\N', 12345678901234567n, new Uint8Array(), "text ' in an untyped column"],
  [3n, 'abc', 7n, 99n, 'not a number', "not ' a blob \\", new Uint8Array([9])],
  [4n, 1.5, 0.1, 'a\u0000b', 2.0, 3n, -(2n ** 63n)],
  [5n, null, null, "E'x'", null, null, '{"a",NULL}'],
].map((row, i) => ({ seq: i + 1, op: 'insert', pk: [row[0]!], row }));

describeEachStore('set-based group ingest', (ctx) => {
  test('a group writes every value exactly as a batch alone does (one query of INSERTs against a COPY each)', async () => {
    const policy = { policy: governancePolicy('auto') };
    const counted = counting(ctx.store);
    const mirrors = async (group: GroupCommitter | undefined) => {
      const devices = await Promise.all([1, 2, 3].map(() => newDevice(ctx.store)));
      const epoch = uuidv7();
      // A lineage's first batch creates its mirror by its own path; the group's set-based steps take the next ones.
      for (const d of devices) await ingestRowBatch(ctx.store, d, rowBatch(KINDS, [{ seq: 1, op: 'insert', pk: [0n], row: [0n, 1n, 1.5, 'first', 1n, new Uint8Array([1]), 'x'] }], { epoch }), 10, policy);
      const later = KIND_ROWS.map((r) => ({ ...r, seq: r.seq + 1 }));
      counted.statements.length = 0;
      const send = (d: DeviceIdentity) => ingestRowBatch(counted.store, d, rowBatch(KINDS, later, { epoch }), 10, { ...policy, ...(group ? { group } : {}) });
      const acks = group ? await Promise.all(devices.map(send)) : await devices.reduce<Promise<unknown[]>>(async (done, d) => [...(await done), await send(d)], Promise.resolve([]));
      return Promise.all(
        (acks as { lineage_id: string }[]).map(async ({ lineage_id }) => {
          const [{ mirror_table }] = (await ctx.store.query<{ mirror_table: string }>('SELECT mirror_table FROM edge_table_lineages WHERE id = $1', [lineage_id])).rows as [{ mirror_table: string }];
          const native = await ctx.store.query(`SELECT id::text, i::text, r::text, t, n::text, encode(b, 'hex') AS b, "any"::text, _syncline_overflow::text AS overflow FROM "${mirror_table}" ORDER BY id`);
          return { decoded: decodedColumns(await allMirrorRows(ctx.store, lineage_id), KINDS.columns.map((c) => c.name)), native: native.rows };
        }),
      );
    };
    const group = new GroupCommitter(counted.store);
    const grouped = await mirrors(group);
    assert.equal(group.stats.largest, 3, 'the three batches went into one group');
    // One transaction: the group's query of INSERTs went through (a failing one would roll back and run the batches again by COPY).
    assert.equal(counted.statements.length, 1, `transactions: ${counted.statements.join(', ')}`);
    const alone = await mirrors(undefined);
    const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? [...x] : typeof x === 'number' && Object.is(x, -0) ? '-0' : x));
    assert.equal(json(grouped), json(alone));
    assert.equal(grouped[0]!.native.length, KIND_ROWS.length + 1);
  });

  for (const policy of ['review', 'auto'] as const) {
    test(`a group's batches under ${policy} end exactly as each batch alone would (ledger, acks, lineage, staged rows, mirror)`, async () => {
      const group = new GroupCommitter(ctx.store);
      const grouped = await run(ctx.store, governancePolicy(policy), group);
      assert.equal(group.stats.largest, 12, 'all twelve went into one group');
      const alone = await run(ctx.store, governancePolicy(policy), undefined);
      for (let d = 0; d < grouped.devices.length; d++) {
        assert.deepEqual(await outcomeOf(ctx.store, grouped.devices[d]!.device_id, grouped.answers[d]!), await outcomeOf(ctx.store, alone.devices[d]!.device_id, alone.answers[d]!), `device ${d}`);
      }
    });
  }

  test("a project's coalesced mirror takes a group's batches in one INSERT, each device's rows its own", async () => {
    const project = `fleet_${Math.random().toString(36).slice(2, 8)}`;
    await ctx.store.query(`INSERT INTO projects (id, org_id, name) VALUES ($1, 'default', 'fleet')`, [project]);
    await ctx.store.transaction((tx) => setProjectCoalescing(tx, project, 'project', 'admin (token t1)'));
    const policy = { policy: governancePolicy('auto') };
    const devices = await Promise.all([1, 2, 3, 4].map(async (i) => authenticateDevice(ctx.store, (await createDevice(ctx.store, { name: `coalesced-${i}`, projectId: project })).token)));
    const epoch = uuidv7();
    for (const d of devices) await ingestRowBatch(ctx.store, d!, rowBatch(READINGS, rows(1, 2, 'a'), { epoch }), 10, policy);
    const counted = counting(ctx.store);
    const group = new GroupCommitter(counted.store);
    // The same keys from every device: the mirror tells them apart by device id.
    const acks = await Promise.all(devices.map((d) => ingestRowBatch(counted.store, d!, rowBatch(READINGS, rows(3, 5, 'b'), { epoch }), 10, { ...policy, group })));
    assert.ok(acks.every((a) => a.status === 'accepted' && a.rows_applied === 3));
    assert.equal(counted.statements.length, 1, 'one transaction, no fallback');
    assert.equal(counted.execs.length, 1);
    assert.equal(counted.execs[0]!.match(/INSERT INTO/g)?.length, 1, 'one statement for the four batches');
    for (const [i, d] of devices.entries()) {
      const mirror = decodedColumns(await allMirrorRows(ctx.store, acks[i]!.lineage_id), ['id', 'v']);
      assert.deepEqual(mirror.map(([id, v]) => `${id}:${v}`), [...rows(1, 2, 'a'), ...rows(3, 5, 'b')].map((r) => `${r.row![0]}:${r.row![1]}`), `device ${d!.device_id}`);
    }
  });

  test('steady-state batches of many devices cost a few statements per group, not per batch', async () => {
    for (const policy of ['review', 'auto'] as const) {
      const { store, statements } = counting(ctx.store);
      const devices = await Promise.all(Array.from({ length: 40 }, () => newDevice(ctx.store)));
      const epoch = uuidv7();
      for (const device of devices) await ingestRowBatch(store, device, rowBatch(READINGS, rows(1, 5, 'a'), { epoch }), 10, { policy: governancePolicy(policy) });
      const group = new GroupCommitter(store);
      statements.length = 0;
      const acks = await Promise.all(devices.map((device) => ingestRowBatch(store, device, rowBatch(READINGS, rows(6, 10, 'b'), { epoch }), 10, { policy: governancePolicy(policy), group })));
      assert.ok(acks.every((a) => a.status === 'accepted' && a.rows_applied === 5 && a.last_seq === 10));
      assert.equal(group.stats.groups, 1);
      // review: dedupe, lock, latest reviews, ledger, staged rows, lineages (the schema waiting for its review is already recorded).
      // auto: + pending replays, two for the mirror targets, a savepoint and its release, and one query of every batch's INSERT.
      const perGroup = policy === 'review' ? 6 : 11;
      assert.ok(statements[0]! <= perGroup, `${policy}: ${statements[0]} statements for ${devices.length} batches`);
      if (policy === 'review') {
        const { rows: staged } = await ctx.store.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM edge_staged_rows s JOIN edge_table_lineages l ON l.id = s.lineage_id WHERE l.device_id = ANY($1::uuid[]) AND s.reason = 'schema_review'`,
          [devices.map((d) => d.device_id)],
        );
        assert.equal(staged[0]!.n, String(devices.length * 10));
      } else {
        for (const device of devices) {
          const [lineage] = (await ctx.store.query<{ id: string }>('SELECT id::text FROM edge_table_lineages WHERE device_id = $1', [device.device_id])).rows;
          const mirror = decodedColumns(await allMirrorRows(ctx.store, lineage!.id), ['id', 'v']);
          assert.deepEqual(mirror.map(([id, v]) => `${id}:${v}`), [...rows(1, 5, 'a'), ...rows(6, 10, 'b')].map((r) => `${r.row![0]}:${r.row![1]}`), `device ${device.device_id}: every row, from its own batch`);
        }
      }
    }
  });
});
