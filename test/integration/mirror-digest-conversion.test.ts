import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { retryRejectedAfter } from '../../src/cloud/governance/replay-intents.js';
import { readStagedRows } from '../../src/cloud/governance/staged-rows.js';
import { convertLegacyMirrors, convertMirror, legacyMirrors } from '../../src/cloud/ingest/mirror-digest-conversion.js';
import { keyDigestSql } from '../../src/cloud/ingest/mirror-schema.js';
import type { TableSpec } from '../support/cloud-batches.js';
import { allMirrorRows, decodedColumns, newDevice } from '../support/cloud-fixtures.js';
import type { RowSpec } from '../support/cloud-batches.js';
import type { SqlValue } from '../../src/protocol/values.js';
import { AUTO, FakeDevice, lineageRow, replay } from '../support/governance-fixtures.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Mirrors made before digest keys (a plain primary key on text, blob or JSON key
 * columns) are converted online to the `_syncline_key_digest` layout: rows keep
 * every value, ingest flows during the conversion, a conversion cut short is
 * finished by the next, and keys too long for the old index are mirrored after.
 */
describeEachStore('legacy mirrors are converted to digest keys', (ctx) => {
  const spec = (table: string): TableSpec => ({ table, columns: [{ name: 'site', type: 'INTEGER', pk: 1 }, { name: 'k', type: 'TEXT', pk: 2 }, { name: 'v', type: 'TEXT' }] });
  const sorted = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
  // Key (site, k).
  const upsert = (seq: number, row: SqlValue[], op: RowSpec['op'] = 'insert'): RowSpec => ({ seq, op, pk: [row[0]!, row[1]!], row });
  const remove = (seq: number, site: bigint, k: string): RowSpec => ({ seq, op: 'delete', pk: [site, k] });

  /** A mirror as releases before digest keys made it: primary key (site, k), no digest column, not listed as digest-keyed. */
  async function legacyMirror(d: FakeDevice, table: string, rows: number): Promise<{ lineageId: string; mirror: string }> {
    const first = await d.send(spec(table), Array.from({ length: rows }, (_, i) => upsert(i + 1, [BigInt(i % 3), `key-${i}`, `v${i}`])));
    const mirror = (await lineageRow(ctx.store, first.lineage_id)).mirror_table!;
    const pk = await ctx.store.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'`, [`"${mirror}"`]);
    await ctx.store.exec(`ALTER TABLE "${mirror}" DROP CONSTRAINT "${pk.rows[0]!.conname}"; ALTER TABLE "${mirror}" DROP COLUMN _syncline_key_digest; ALTER TABLE "${mirror}" ADD PRIMARY KEY (site, k)`);
    await ctx.store.query('DELETE FROM edge_mirror_key_digests WHERE mirror_table = $1', [mirror]);
    return { lineageId: first.lineage_id, mirror };
  }

  const primaryKey = async (mirror: string) =>
    (
      await ctx.store.query<{ columns: string[] }>(
        `SELECT array_agg(a.attname::text ORDER BY k.n) AS columns FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attnum = k.attnum WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' AND a.attrelid = c.conrelid`,
        [`"${mirror}"`],
      )
    ).rows[0]?.columns;

  test('rows keep every value, ingest flows meanwhile, and a key too long for the old index is mirrored after', async () => {
    const d = new FakeDevice(ctx.store, await newDevice(ctx.store), AUTO);
    const { lineageId, mirror } = await legacyMirror(d, 'legacy_notes', 300);
    const long = randomBytes(6000).toString('base64');
    const refused = await d.send(spec('legacy_notes'), [upsert(301, [1n, long, 'too long for the old index']), upsert(302, [1n, 'short', 's'])]);
    assert.equal(refused.rows_applied, 2);
    assert.deepEqual((await readStagedRows(ctx.store, lineageId)).rows.map((r) => r.reason), ['row_rejected'], 'the old layout refuses the long key');
    assert.deepEqual((await legacyMirrors(ctx.store)).map((m) => m.table), [mirror]);

    // Ingest during the conversion (on PostgreSQL truly at the same time; PGlite takes them in turn).
    const converted: string[][] = [];
    // What the server does once a mirror is converted: its refused rows are tried again.
    const [, during] = await Promise.all([
      convertLegacyMirrors(ctx.store, { onConverted: async (ids) => (converted.push(ids), retryRejectedAfter(ctx.store, ids, undefined, () => {})) }),
      d.send(spec('legacy_notes'), [upsert(303, [2n, 'during', 'd']), upsert(304, [0n, 'key-0', 'v0 changed'], 'update'), remove(305, 1n, 'key-1')]),
    ]);
    assert.equal(during.rows_applied, 3);
    assert.deepEqual(converted, [[lineageId]]);
    assert.deepEqual(await legacyMirrors(ctx.store), []);
    assert.deepEqual(await primaryKey(mirror), ['site', '_syncline_key_digest']);
    const { rows: bad } = await ctx.store.query(`SELECT site FROM "${mirror}" WHERE _syncline_key_digest IS DISTINCT FROM ${keyDigestSql([{ expr: 'k', type: 'text' }])}`);
    assert.deepEqual(bad, [], 'every row has the digest ingest computes');
    const { rows: leftovers } = await ctx.store.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal`, [`"${mirror}"`]);
    assert.deepEqual(leftovers, [], 'the filling trigger is gone');

    assert.equal((await replay(ctx.store, lineageId, AUTO)).state, 'done');
    assert.deepEqual((await readStagedRows(ctx.store, lineageId)).rows, [], 'the long key the old index refused went in');
    const longRow = decodedColumns(await allMirrorRows(ctx.store, lineageId), ['k', 'v']).find((r) => r[0] === long);
    assert.deepEqual(longRow, [long, 'too long for the old index']);

    const after = await d.send(spec('legacy_notes'), [upsert(306, [1n, long, 'long key mirrored']), upsert(307, [0n, 'key-3', 'v3 changed'], 'update'), remove(308, 2n, 'key-5')]);
    assert.equal(after.rows_applied, 3);
    const expected = Array.from({ length: 300 }, (_, i) => [BigInt(i % 3), `key-${i}`, `v${i}`]).filter((r) => r[1] !== 'key-1' && r[1] !== 'key-5');
    const changed = new Map<string, string>([['key-0', 'v0 changed'], ['key-3', 'v3 changed']]);
    const want = [...expected.map((r) => [r[0], r[1], changed.get(r[1] as string) ?? r[2]]), [1n, 'short', 's'], [2n, 'during', 'd'], [1n, long, 'long key mirrored']];
    assert.deepEqual(sorted(decodedColumns(await allMirrorRows(ctx.store, lineageId), ['site', 'k', 'v']).map((r) => r.map(String))), sorted(want.map((r) => r.map(String))));
    assert.equal((await lineageRow(ctx.store, lineageId)).status, 'active');
  });

  test('a conversion cut short is finished by the next; one already done is left alone', async () => {
    const d = new FakeDevice(ctx.store, await newDevice(ctx.store), AUTO);
    const { lineageId, mirror } = await legacyMirror(d, 'legacy_cut', 50);
    // What a server killed after step 1 and part of step 3 leaves: the column, some digests, the unique index, no trigger.
    await ctx.store.exec(`ALTER TABLE "${mirror}" ADD COLUMN _syncline_key_digest bytea`);
    await ctx.store.exec(`UPDATE "${mirror}" SET _syncline_key_digest = ${keyDigestSql([{ expr: 'k', type: 'text' }])} WHERE site = 0`);
    const found = await legacyMirrors(ctx.store);
    assert.deepEqual(found, [{ table: mirror, lineage_ids: [lineageId] }]);
    assert.equal(await convertMirror(ctx.store, mirror, [lineageId]), true);
    assert.equal(await convertMirror(ctx.store, mirror, [lineageId]), false, 'a second run finds it done');
    assert.deepEqual(await primaryKey(mirror), ['site', '_syncline_key_digest']);
    const { rows } = await ctx.store.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${mirror}" WHERE _syncline_key_digest = ${keyDigestSql([{ expr: 'k', type: 'text' }])}`);
    assert.equal(rows[0]!.n, '50');
    await d.send(spec('legacy_cut'), [upsert(51, [0n, 'key-0', 'updated'], 'update')]);
    const values = decodedColumns(await allMirrorRows(ctx.store, lineageId), ['k', 'v']);
    assert.deepEqual(values.find((r) => r[0] === 'key-0'), ['key-0', 'updated'], 'updated in place, not added twice');
    assert.equal(values.length, 50);
  });
});
