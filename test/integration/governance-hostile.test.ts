import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getReviewDetail } from '../../src/cloud/governance/review-view.js';
import { SynclineError } from '../../src/protocol/errors.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, deviceState, newDevice } from '../support/cloud-fixtures.js';
import { approve, FakeDevice, openReview, replay, upsert } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

/** Names that are valid SQLite identifiers and must arrive in PostgreSQL exactly, only ever as quoted identifiers. */
const QUOTED = ['x"; DROP TABLE edge_audit_log; --', "Robert'); DELETE FROM projects; --", '__proto__', 'constructor', 'a b c', 'ünï "cødé" 😀', 'SELECT', '$1', 'ends with quote"'];
/** Names no mirror can hold faithfully: refused before anything is stored. */
const REFUSED: [string, RegExp][] = [
  ['_syncline_seq', /reserved prefix/],
  ['x'.repeat(64), /longer than 63 bytes/],
  ['nul\u0000here', /contains NUL/],
  ['lone \uDC00', /not well-formed/],
  // Terminal control characters would act on an operator's terminal when a name is printed.
  ['a\u0001\u001b[31mred\n', /contains a control character/],
  ['tab\there', /contains a control character/],
  ['bidi \u202egnp.exe', /contains a control character/],
  ['c1 \u009b31m', /contains a control character/],
];

describeEachStore('schema governance: hostile names', (ctx) => {
  const coreTables = async () => (await ctx.store.query<{ n: string }>(`SELECT count(*) AS n FROM pg_tables WHERE tablename IN ('edge_audit_log', 'projects', 'edge_schema_reviews')`)).rows[0]!.n;

  test('hostile column names in an incoming schema are staged, reviewed and mirrored verbatim, always quoted', async () => {
    const spec: TableSpec = { table: 'tbl "; DROP TABLE projects; --', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, ...QUOTED.map((name) => ({ name, type: 'TEXT' }))] };
    const d = new FakeDevice(ctx.store, await newDevice(ctx.store));
    const ack = await d.send(spec, [upsert(1, [1n, ...QUOTED.map((_, i) => `v${i}`)])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    assert.deepEqual((await getReviewDetail(ctx.store, review.id)).schema.columns.map((c) => c.name), ['id', ...QUOTED]);
    // Half mirrored as they are, half renamed to other hostile names.
    const columns = QUOTED.map((name, i) => (i % 2 === 0 ? { name, action: 'mirror' as const } : { name, action: 'mirror_as' as const, target: `${name}' OR '1'='1` }));
    const result = await approve(ctx.store, review.id, { columns, default_action: 'mirror' });
    assert.equal((await replay(ctx.store, ack.lineage_id)).state, 'done');
    const physical = await ctx.store.query<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_syncline\\_%' ORDER BY attnum`, [`"${result.mirror_table.replaceAll('"', '""')}"`]);
    assert.deepEqual(physical.rows.map((r) => r.attname), ['id', ...QUOTED.map((name, i) => (i % 2 === 0 ? name : `${name}' OR '1'='1`))]);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', ...QUOTED]), [[1n, ...QUOTED.map((_, i) => `v${i}`)]]);
    assert.equal(await coreTables(), '3', 'nothing was executed');
  });

  for (const [name, reason] of REFUSED) {
    test(`an incoming column named ${JSON.stringify(name.slice(0, 20))} is refused before anything is stored`, async () => {
      const device = await newDevice(ctx.store);
      const d = new FakeDevice(ctx.store, device);
      const spec: TableSpec = { table: 'refused', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name, type: 'TEXT' }] };
      await assert.rejects(d.send(spec, [upsert(1, [1n, 'v'])]), (e: unknown) => e instanceof SynclineError && e.code === 'hostile_identifier' && reason.test(e.message));
      assert.deepEqual(await deviceState(ctx.store, device.device_id), { lineages: [], ledger: [], staged: [], mirrors: {} });
    });
  }

  test('a table name with control characters is refused before anything is stored, and printed escaped', async () => {
    const device = await newDevice(ctx.store);
    const d = new FakeDevice(ctx.store, device);
    const spec: TableSpec = { table: 'a\u0001\u001b[31mred\n', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] };
    await assert.rejects(d.send(spec, [upsert(1, [1n])]), (e: unknown) => e instanceof SynclineError && e.code === 'hostile_identifier' && !/[\u0000-\u001f]/.test(e.message) && e.context.table === '"a\\u0001\\u001b[31mred\\n"');
    assert.deepEqual(await deviceState(ctx.store, device.device_id), { lineages: [], ledger: [], staged: [], mirrors: {} });
  });

  test('hostile names in approve actions are refused or quoted; a refused approval changes nothing', async () => {
    const d = new FakeDevice(ctx.store, await newDevice(ctx.store));
    const spec: TableSpec = { table: 'plain', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'v', type: 'TEXT' }] };
    const ack = await d.send(spec, [upsert(1, [1n, 'one'])]);
    const review = await openReview(ctx.store, ack.lineage_id);
    const refusals: [unknown[], RegExp][] = [
      [[{ name: 'v"; DROP TABLE projects; --', action: 'ignore' }], /is not in the reviewed schema/],
      [[{ name: 'v', action: 'mirror_as', target: '_syncline_op' }], /reserved prefix/],
      [[{ name: 'v', action: 'mirror_as', target: 'x'.repeat(70) }], /longer than 63 bytes/],
      [[{ name: 'v', action: 'mirror_as', target: 'id' }], /would share mirror column "id"/],
    ];
    for (const [columns, reason] of refusals) {
      await assert.rejects(approve(ctx.store, review.id, { columns: columns as never, default_action: 'mirror' }, 'mallory'), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_request' && reason.test(e.message), reason.source);
    }
    const state = await ctx.store.query<{ mirror_table: string | null; status: string }>('SELECT mirror_table, status FROM edge_table_lineages WHERE id = $1', [ack.lineage_id]);
    assert.deepEqual(state.rows[0], { mirror_table: null, status: 'paused' });
    const target = 'v"); DROP TABLE edge_audit_log; --';
    await approve(ctx.store, review.id, { columns: [{ name: 'v', action: 'mirror_as', target }], default_action: 'mirror' }, 'mallory');
    await replay(ctx.store, ack.lineage_id);
    assert.deepEqual(decodedColumns(await allMirrorRows(ctx.store, ack.lineage_id), ['id', 'v']), [[1n, 'one']]);
    assert.equal(await coreTables(), '3');
  });
});
