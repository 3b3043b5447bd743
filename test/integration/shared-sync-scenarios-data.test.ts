import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHlc } from '../../src/protocol/hlc.js';
import type { ChangeEvent, SharedSync } from '../../src/device/twoway/shared-sync.js';
import { adminBundle, bundleCount, countingFetch, deviceRows, deviceRowsText, scenarioSuite, serverRowsText } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/**
 * What travels: foreign-key graphs as one bundle, bundles and snapshots of many
 * chunks, BLOB keys, tables that sync one way only, and the change events a
 * device gets for what pulls changed.
 */

const uuid = (n: number) => `0190a0a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

/** Every row of the given tables, exactly as SQLite holds them. */
function snapshotOf(device: SharedSync, tables: Record<string, string>): Record<string, unknown[][]> {
  return Object.fromEntries(Object.entries(tables).map(([table, orderBy]) => [table, deviceRows(device, table, orderBy)]));
}

const GRAPH_TABLES = { folders: 'id', notes: 'id', tags: 'note_id, tag', a_nodes: 'id', b_nodes: 'id' };

describeEachStore('shared sync scenarios: data in transit', (ctx) => {
  const suite = scenarioSuite(ctx);

  test('a foreign-key graph goes as one bundle, children before parents, and is deleted as one bundle', async () => {
    const user = 'graph';
    const phone = await suite.device(user, 'phone');
    const laptop = await suite.device(user, 'laptop');
    await laptop.sync(); // hydrated while empty, so the graph arrives by pull
    phone.db.exec(`
      BEGIN;
      INSERT INTO folders VALUES ('a-leaf', 'Leaf', 'm-mid');
      INSERT INTO folders VALUES ('m-mid', 'Middle', 'z-root');
      INSERT INTO folders VALUES ('z-root', 'Root', NULL);
      INSERT INTO tags VALUES ('${uuid(1)}', 'x', 'red'), ('${uuid(2)}', 'y', NULL);
      INSERT INTO notes (id, folder_id, title) VALUES ('${uuid(1)}', 'a-leaf', 'in leaf'), ('${uuid(2)}', 'z-root', 'in root');
      INSERT INTO a_nodes VALUES (1, 1), (2, 2);
      INSERT INTO b_nodes VALUES (1, 1), (2, 1);
      COMMIT;
    `);
    const pushed = await phone.sync();
    assert.equal(pushed.push.rows, 11);
    assert.equal(await bundleCount(ctx.store, user), 1);
    const { rows: order } = await ctx.store.query<{ key: string }>(`SELECT key::text AS key FROM sync_bundle_rows WHERE scope = $1 AND tbl = 'folders' ORDER BY ordinal`, [user]);
    assert.deepEqual(order.map((r) => r.key), ['["a-leaf"]', '["m-mid"]', '["z-root"]'], 'each child travels before its parent');

    const pulled = await laptop.sync();
    assert.deepEqual(pulled.pull, { bundles: 1, rows: 11 });
    const graph = snapshotOf(phone, GRAPH_TABLES);
    assert.deepEqual(snapshotOf(laptop, GRAPH_TABLES), graph);
    assert.deepEqual(graph.folders, [
      ['a-leaf', 'Leaf', 'm-mid'],
      ['m-mid', 'Middle', 'z-root'],
      ['z-root', 'Root', null],
    ]);
    assert.deepEqual(graph.b_nodes, [
      [1n, 1n],
      [2n, 1n],
    ]);
    assert.deepEqual(await serverRowsText(ctx.store, 'a_nodes', user, ['id', 'b_id']), [
      ['1', '1'],
      ['2', '2'],
    ]);
    assert.deepEqual(await serverRowsText(ctx.store, 'tags', user, ['note_id', 'tag', 'color']), [
      [uuid(1), 'x', 'red'],
      [uuid(2), 'y', null],
    ]);
    assert.deepEqual(laptop.db.pragma('foreign_key_check'), []);

    // Parents first this time: the deferred keys let the transaction (and the bundle) hold any order.
    phone.db.exec('BEGIN; DELETE FROM folders; DELETE FROM a_nodes; DELETE FROM notes; DELETE FROM b_nodes; DELETE FROM tags; COMMIT;');
    const deleted = await phone.sync();
    assert.equal(deleted.push.rows, 11);
    assert.equal(await bundleCount(ctx.store, user), 2);
    const emptied = await laptop.sync();
    assert.deepEqual(emptied.pull, { bundles: 1, rows: 11 });
    for (const device of [phone, laptop]) {
      for (const [table, rows] of Object.entries(snapshotOf(device, GRAPH_TABLES))) assert.deepEqual(rows, [], `${device.source} ${table}`);
    }
    for (const table of Object.keys(GRAPH_TABLES)) assert.deepEqual(await serverRowsText(ctx.store, table, user, ['_syncline_key']), [], table);
    assert.deepEqual(laptop.db.pragma('foreign_key_check'), []);
  });

  test('many chunks every way: a chunked push, a bundle split across pull pages, a snapshot of many chunks', async () => {
    const user = 'bulk';
    const phoneNet = countingFetch();
    const laptopNet = countingFetch();
    const tabletNet = countingFetch();
    const phone = await suite.device(user, 'phone', { chunkRows: 100, fetch: phoneNet.fetch });
    const laptop = await suite.device(user, 'laptop', { chunkRows: 100, fetch: laptopNet.fetch });
    await laptop.sync();
    phone.db.transaction(() => {
      const folder = phone.db.prepare('INSERT INTO folders VALUES (?, ?, NULL)');
      const note = phone.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)');
      for (let f = 0; f < 50; f++) folder.run(`f${f}`, `folder ${f}`);
      for (let i = 0; i < 1000; i++) note.run(uuid(i), `f${i % 50}`, `note ${i}`, BigInt(i) * 1_000_000_007n, i / 8, Buffer.from([i % 256, (i * 7) % 256]));
    })();
    const pushed = await phone.sync();
    assert.equal(pushed.push.rows, 1050);
    assert.equal(phoneNet.counts.get('PUT /v1/shared/push/:id/chunks/:n'), 11);
    assert.equal(phoneNet.counts.get('POST /v1/shared/push/:id/commit'), 1);
    assert.equal(await bundleCount(ctx.store, user), 1);

    laptopNet.counts.clear();
    const pulled = await laptop.sync();
    assert.deepEqual(pulled.pull, { bundles: 1, rows: 1050 }, 'one bundle, applied whole');
    assert.equal(laptopNet.counts.get('GET /v1/shared/pull'), 11, 'pages of 100 rows');

    const tablet = await suite.device(user, 'tablet', { chunkRows: 100, fetch: tabletNet.fetch });
    const hydrated = await tablet.sync();
    assert.equal(hydrated.hydrated?.rows, 1050);
    assert.equal(tabletNet.counts.get('GET /v1/shared/snapshots/:id/chunks/:n'), 11 + 1, 'snapshot chunks of at most 100 rows (50 folders, 10 x 100 notes), then the end marker');

    const expected = snapshotOf(phone, { folders: 'id', notes: 'id' });
    assert.equal(expected.notes!.length, 1000);
    for (const device of [laptop, tablet]) assert.deepEqual(snapshotOf(device, { folders: 'id', notes: 'id' }), expected, device.source);
    const columns = ['id', 'folder_id', 'title', 'stars', 'score', 'attachment'];
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', user, columns), deviceRowsText(phone, 'notes', columns));
  });

  test('BLOB keys and values, the empty blob and every byte included, survive push, pull and hydration', async () => {
    const user = 'blobs';
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const phone = await suite.device(user, 'phone');
    const laptop = await suite.device(user, 'laptop');
    await laptop.sync();
    const put = phone.db.prepare('INSERT INTO blobs VALUES (?, ?)');
    put.run(Buffer.alloc(0), all);
    put.run(Buffer.from([0]), Buffer.alloc(0));
    put.run(Buffer.from([0, 0]), null);
    put.run(all, Buffer.from([0]));
    put.run(Buffer.from([0xff]), Buffer.from("it's", 'latin1'));
    await phone.sync();
    await laptop.sync();
    const tablet = await suite.device(user, 'tablet');
    await tablet.sync();
    const expected = [
      [Buffer.alloc(0), all],
      [Buffer.from([0]), Buffer.alloc(0)],
      [Buffer.from([0, 0]), null],
      [all, Buffer.from([0])],
      [Buffer.from([0xff]), Buffer.from("it's", 'latin1')],
    ];
    for (const device of [phone, laptop, tablet]) {
      assert.deepEqual(deviceRows(device, 'blobs', 'k'), expected, device.source);
      assert.deepEqual(device.db.prepare('SELECT typeof(k), typeof(v) FROM blobs ORDER BY k').raw().all().slice(0, 3), [
        ['blob', 'blob'],
        ['blob', 'blob'],
        ['blob', 'null'],
      ]);
    }
    assert.deepEqual(await serverRowsText(ctx.store, 'blobs', user, ['k', 'v']), deviceRowsText(phone, 'blobs', ['k', 'v']));

    // Changes addressed by BLOB keys: the empty key updated, the 0x00 key deleted (0x0000 stays).
    laptop.db.prepare('UPDATE blobs SET v = ? WHERE k = ?').run(Buffer.from([1, 2]), Buffer.alloc(0));
    laptop.db.prepare('DELETE FROM blobs WHERE k = ?').run(Buffer.from([0]));
    assert.equal((await laptop.sync()).push.rows, 2);
    await phone.sync();
    await tablet.sync();
    const after = [[Buffer.alloc(0), Buffer.from([1, 2])], ...expected.slice(2)];
    for (const device of [phone, laptop, tablet]) assert.deepEqual(deviceRows(device, 'blobs', 'k'), after, device.source);
    assert.deepEqual((await serverRowsText(ctx.store, 'blobs', user, ['k', 'v'])).length, 4);
  });

  test('a down table takes server-side writes and refuses local ones; an up table reaches PostgreSQL only', async () => {
    const user = 'directions';
    const phone = await suite.device(user, 'phone');
    const laptop = await suite.device(user, 'laptop');
    const hlc = () => formatHlc({ ms: Date.now(), counter: 0, source: 'server:ops' });
    const written = await adminBundle(suite.server, user, {
      source_bundle_id: 'price-list-1',
      rows: [
        { table: 'catalog', op: 'upsert', key: ['apple'], row: ['apple', 0.5], hlc: hlc() },
        { table: 'catalog', op: 'upsert', key: ['melon'], row: ['melon', { $real: '3' }], hlc: hlc() },
      ],
    });
    assert.equal(written.status, 200);
    assert.equal(written.answer.status, 'committed');
    await phone.sync();
    assert.deepEqual(deviceRows(phone, 'catalog', 'sku'), [
      ['apple', 0.5],
      ['melon', 3],
    ]);

    for (const sql of [`INSERT INTO catalog VALUES ('pear', 1.0)`, `UPDATE catalog SET price = 0 WHERE sku = 'apple'`, `DELETE FROM catalog WHERE sku = 'melon'`]) {
      assert.throws(() => phone.db.exec(sql), (error: Error) => error.message.includes('catalog syncs down only') && (error as { code?: string }).code === 'SQLITE_CONSTRAINT_TRIGGER', sql);
    }
    assert.equal(await phone.pending(), 0);

    const removed = await adminBundle(suite.server, user, { source_bundle_id: 'price-list-2', rows: [{ table: 'catalog', op: 'delete', key: ['apple'], hlc: hlc() }] });
    assert.equal(removed.answer.status, 'committed');
    await phone.sync();
    assert.deepEqual(deviceRows(phone, 'catalog', 'sku'), [['melon', 3]]);
    assert.deepEqual(await serverRowsText(ctx.store, 'catalog', user, ['sku', 'price']), [['melon', '3']]);

    phone.db.exec('INSERT INTO readings VALUES (1, 0.25), (2, 1.5)');
    assert.equal((await phone.sync()).push.rows, 2);
    assert.deepEqual(await serverRowsText(ctx.store, 'readings', user, ['id', 'value']), [
      ['1', '0.25'],
      ['2', '1.5'],
    ]);
    const pulled = await laptop.sync();
    assert.equal(pulled.pull.rows, 0, 'bundles of up tables are not pulled');
    assert.deepEqual(deviceRows(laptop, 'readings', 'id'), []);
    assert.deepEqual(deviceRows(laptop, 'catalog', 'sku'), [['melon', 3]]);
    const tablet = await suite.device(user, 'tablet');
    await tablet.sync();
    assert.deepEqual(deviceRows(tablet, 'readings', 'id'), [], 'nor is an up table in a snapshot');
    assert.deepEqual(deviceRows(phone, 'readings', 'id'), [
      [1n, 0.25],
      [2n, 1.5],
    ], 'the device keeps what it wrote');
  });

  test('onChange reports the tables and keys each pull changed; pulled changes never echo back', async () => {
    const user = 'events';
    const phone = await suite.device(user, 'phone');
    const laptop = await suite.device(user, 'laptop');
    const events: ChangeEvent[] = [];
    const unsubscribe = laptop.onChange((event) => events.push(event));
    await laptop.sync();
    const pulledTables = laptop.tables.filter((t) => t.direction === 'down' || t.direction === 'both').map((t) => t.name);
    assert.ok(pulledTables.includes('catalog') && !pulledTables.includes('readings'));
    assert.deepEqual(events.splice(0), [{ cause: 'hydrate', tables: pulledTables, keys: {}, full: true }]);

    phone.db.exec(`INSERT INTO folders VALUES ('f1', 'One', NULL); INSERT INTO notes (id, folder_id, title) VALUES ('${uuid(1)}', 'f1', 'x'); INSERT INTO profiles VALUES (42, 'me', NULL, NULL)`);
    await phone.sync();
    phone.db.exec(`DELETE FROM notes; UPDATE folders SET name = 'Uno'`);
    await phone.sync();
    const heads = await bundleCount(ctx.store, user);

    const report = await laptop.sync();
    assert.equal(report.pull.bundles, 2);
    assert.deepEqual(events.splice(0), [
      { cause: 'pull', tables: ['folders', 'notes', 'profiles'], keys: { folders: [['f1']], notes: [[uuid(1)]], profiles: [[42n]] }, full: false },
      { cause: 'pull', tables: ['notes', 'folders'], keys: { notes: [[uuid(1)]], folders: [['f1']] }, full: false },
    ]);
    assert.deepEqual(deviceRows(laptop, 'folders', 'id'), [['f1', 'Uno', null]]);
    assert.equal(await laptop.pending(), 0, 'applying remote changes left nothing to push');
    assert.equal((await laptop.pendingChanges()).size, 0, 'remote changes are journaled as remote, never as pending');
    assert.equal((await laptop.sync()).push.rows, 0);
    assert.equal(await bundleCount(ctx.store, user), heads, 'no bundle echoed back');

    unsubscribe();
    phone.db.exec(`UPDATE folders SET name = 'Eins'`);
    await phone.sync();
    await laptop.sync();
    assert.deepEqual(events, [], 'an unsubscribed listener hears nothing');
    assert.deepEqual(deviceRows(laptop, 'folders', 'id'), [['f1', 'Eins', null]]);
  });
});
