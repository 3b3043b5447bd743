import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { sharedTestConfig, userToken } from '../support/shared-fixtures.js';
import {
  bundleCount,
  deviceRows,
  deviceRowsText,
  failingFetch,
  removeDbFiles,
  scenarioSuite,
  serverRowsText,
} from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/**
 * A device's life: first use offline, reinstall, replacement, crashes in the
 * middle of a push, and falling behind the server's retained history.
 */

const NOTE_COLUMNS = ['id', 'folder_id', 'title', 'stars', 'score', 'attachment'];
const uuid = (n: number) => `0190a0a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

/** The app's own schema for folders and notes, as it would create it before Syncline ever ran. */
const APP_SCHEMA = `
  CREATE TABLE folders (id TEXT PRIMARY KEY NOT NULL, name TEXT, parent_id TEXT REFERENCES folders (id));
  CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, folder_id TEXT REFERENCES folders (id), title TEXT, stars INTEGER, score REAL, attachment BLOB);
`;

describeEachStore('shared sync scenarios: device lifecycle', (ctx) => {
  const suite = scenarioSuite(ctx);

  async function offlineDevice(user: string, name: string): Promise<SharedSync> {
    return SharedSync.open({ path: suite.path(user, name), serverUrl: 'http://127.0.0.1:1', token: await userToken(user), source: name });
  }

  test('a fresh install used offline pushes what it wrote at its first sync', async () => {
    const phone = await offlineDevice('offline-ann', 'phone');
    assert.deepEqual(phone.tables, [], 'no declarations before the first contact');
    phone.db.exec(APP_SCHEMA);
    phone.db.prepare(`INSERT INTO folders VALUES ('f1', 'Inbox', NULL), ('f2', 'Work', 'f1')`).run();
    const insertNote = phone.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)');
    insertNote.run(uuid(1), 'f1', 'first', 1n, 0.5, Buffer.from([1, 2, 3]));
    insertNote.run(uuid(2), 'f2', 'second', 2n, null, null);
    await assert.rejects(phone.sync(), /127\.0\.0\.1:1/, 'syncing offline fails as a network error');
    await phone.close();

    const online = await suite.device('offline-ann', 'phone');
    assert.equal(await online.pending(), 4, 'rows written before capture existed are pending');
    const report = await online.sync();
    assert.equal(report.push.rows, 4);
    assert.equal(await online.pending(), 0);
    assert.deepEqual(await serverRowsText(ctx.store, 'folders', 'offline-ann', ['id', 'name', 'parent_id']), [
      ['f1', 'Inbox', null],
      ['f2', 'Work', 'f1'],
    ]);
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', 'offline-ann', NOTE_COLUMNS), [
      [uuid(1), 'f1', 'first', '1', '0.5', '010203'],
      [uuid(2), 'f2', 'second', '2', null, null],
    ]);

    const laptop = await suite.device('offline-ann', 'laptop');
    await laptop.sync();
    assert.deepEqual(deviceRows(laptop, 'folders', 'id'), deviceRows(online, 'folders', 'id'));
    assert.deepEqual(deviceRows(laptop, 'notes', 'id'), [
      [uuid(1), 'f1', 'first', 1n, 0.5, Buffer.from([1, 2, 3])],
      [uuid(2), 'f2', 'second', 2n, null, null],
    ]);
    await online.close();
    await laptop.close();
  });

  test('an offline install joins data other devices already synced: both sets end up everywhere', async () => {
    const laptop = await suite.device('offline-ben', 'laptop');
    laptop.db.prepare(`INSERT INTO folders VALUES ('l1', 'From laptop', NULL)`).run();
    laptop.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)').run(uuid(10), 'l1', 'laptop note', 10n, 1.25, null);
    await laptop.sync();

    const phone = await offlineDevice('offline-ben', 'phone');
    phone.db.exec(APP_SCHEMA);
    phone.db.prepare(`INSERT INTO folders VALUES ('p1', 'From phone', NULL)`).run();
    phone.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)').run(uuid(20), 'p1', 'phone note', 20n, 2.5, Buffer.from('ff', 'hex'));
    await phone.close();

    const online = await suite.device('offline-ben', 'phone');
    const report = await online.sync();
    assert.equal(report.hydrated?.rows, 2, 'the first sync hydrates the laptop rows');
    assert.equal(report.push.rows, 2, 'and pushes the rows written offline');
    await laptop.sync();

    const folders = [
      ['l1', 'From laptop', null],
      ['p1', 'From phone', null],
    ];
    const notes = [
      [uuid(10), 'l1', 'laptop note', '10', '1.25', null],
      [uuid(20), 'p1', 'phone note', '20', '2.5', 'ff'],
    ];
    for (const device of [online, laptop]) {
      assert.deepEqual(deviceRowsText(device, 'folders', ['id', 'name', 'parent_id']), folders, device.source);
      assert.deepEqual(deviceRowsText(device, 'notes', NOTE_COLUMNS), notes, device.source);
      assert.equal(await device.pending(), 0);
    }
    assert.deepEqual(await serverRowsText(ctx.store, 'folders', 'offline-ben', ['id', 'name', 'parent_id']), folders);
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', 'offline-ben', NOTE_COLUMNS), notes);
    await online.close();
    await laptop.close();
  });

  test('a reinstalled device hydrates everything back, every value exact', async () => {
    const phone = await suite.device('reinstall', 'phone');
    const maxInt = 2n ** 63n - 1n;
    const minInt = -(2n ** 63n);
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    phone.db.exec(`INSERT INTO folders VALUES ('root', 'Root', NULL), ('child', 'Child', 'root')`);
    const note = phone.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)');
    note.run(uuid(1), 'root', 'max', maxInt, 2.0, bytes);
    note.run(uuid(2), 'child', 'min', minInt, 0.1, Buffer.alloc(0));
    note.run(uuid(3), 'child', 'unicode ✓ \u{1F600}', maxInt - 1n, 1.7976931348623157e308, null);
    note.run(uuid(4), null, null, 2n ** 53n + 1n, 5e-324, Buffer.from([0]));
    phone.db.prepare('INSERT INTO profiles VALUES (?, ?, ?, ?)').run(maxInt - 2n, 'Me', 'dark', 'fr');
    phone.db.prepare('INSERT INTO blobs VALUES (?, ?)').run(bytes, bytes);
    phone.db.prepare('INSERT INTO emails VALUES (?, ?)').run(minInt, 'me@example.com');
    const tables: Record<string, string> = { folders: 'id', notes: 'id', profiles: 'user_no', blobs: 'k', emails: 'id' };
    const before = Object.fromEntries(Object.entries(tables).map(([t, key]) => [t, deviceRows(phone, t, key)]));
    await phone.sync();
    const path = suite.path('reinstall', 'phone');
    await phone.close();
    removeDbFiles(path);

    const again = await suite.device('reinstall', 'phone');
    const report = await again.sync();
    assert.equal(report.hydrated?.rows, 2 + 4 + 1 + 1 + 1);
    assert.equal(report.push.rows, 0);
    for (const [table, key] of Object.entries(tables)) assert.deepEqual(deviceRows(again, table, key), before[table], table);
    const [, , , stars, score] = deviceRows(again, 'notes', 'id')[0]!;
    assert.equal(stars, maxInt);
    assert.equal(typeof score, 'number', 'an integral REAL stays REAL');
    assert.equal(again.db.prepare(`SELECT typeof(score) FROM notes WHERE id = ?`).pluck().get(uuid(1)), 'real');
    assert.equal(await again.pending(), 0);
    await again.close();
  });

  test('a replaced device: the new one has every committed row, the old one takes its unsynced changes with it', async () => {
    const old = await suite.device('replace', 'old-phone');
    old.db.exec(`INSERT INTO folders VALUES ('kept', 'Committed', NULL)`);
    old.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)').run(uuid(1), 'kept', 'committed', 1n, null, null);
    await old.sync();
    old.db.exec(`INSERT INTO folders VALUES ('lost', 'Never pushed', NULL)`);
    old.db.prepare(`UPDATE notes SET title = 'edit never pushed'`).run();
    assert.equal(await old.pending(), 2);
    await old.close(); // the phone is lost with its file

    const replacement = await suite.device('replace', 'new-phone');
    const report = await replacement.sync();
    assert.equal(report.hydrated?.rows, 2);
    assert.deepEqual(deviceRowsText(replacement, 'folders', ['id', 'name']), [['kept', 'Committed']]);
    assert.deepEqual(deviceRowsText(replacement, 'notes', ['id', 'title']), [[uuid(1), 'committed']]);
    replacement.db.exec(`INSERT INTO folders VALUES ('new', 'On the new phone', 'kept')`);
    replacement.db.prepare(`UPDATE notes SET stars = 5`).run();
    await replacement.sync();
    assert.deepEqual(await serverRowsText(ctx.store, 'folders', 'replace', ['id', 'name', 'parent_id']), [
      ['kept', 'Committed', null],
      ['new', 'On the new phone', 'kept'],
    ]);
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', 'replace', ['id', 'title', 'stars']), [[uuid(1), 'committed', '5']]);
    assert.equal(await bundleCount(ctx.store, 'replace'), 2);
    await replacement.close();
  });

  test('a crash after uploading every chunk but before the commit: the retry commits exactly one bundle', async () => {
    const user = 'crash-upload';
    const crashing = await suite.device(user, 'phone', {
      chunkRows: 50,
      fetch: failingFetch((url) => (url.pathname.endsWith('/commit') ? 'before' : undefined)),
    });
    crashing.db.exec(`INSERT INTO folders VALUES ('f', 'Bulk', NULL)`);
    const note = crashing.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)');
    crashing.db.transaction(() => {
      for (let i = 1; i < 500; i++) note.run(uuid(i), 'f', `note ${i}`, BigInt(i), i / 4, null);
    })();
    await assert.rejects(crashing.pushPending(), /simulated: connection lost before the request/);
    const frozenId = crashing.db.prepare(`SELECT value FROM _syncline_state WHERE key = 'twoway_outbox_bundle_id'`).pluck().get() as string;
    assert.ok(frozenId, 'the outbox stays frozen with its bundle id');
    assert.equal(await bundleCount(ctx.store, user), 0);
    const { rows: sessions } = await ctx.store.query<{ n: string; chunks: string }>(
      `SELECT count(DISTINCT s.id)::text AS n, count(c.chunk_index)::text AS chunks
         FROM sync_push_sessions s LEFT JOIN sync_push_chunks c ON c.session_id = s.id WHERE s.scope = $1`,
      [user],
    );
    assert.deepEqual(sessions[0], { n: '1', chunks: '10' }, 'all ten chunks arrived in one open session');
    await crashing.close();

    const restarted = await suite.device(user, 'phone', { chunkRows: 50 });
    await restarted.sync();
    assert.equal(await restarted.pending(), 0);
    assert.equal((await restarted.conflicts()).length, 0, 'its own rows never meet themselves as conflicts');
    assert.equal(await bundleCount(ctx.store, user), 1);
    const { rows: bundles } = await ctx.store.query<{ source_bundle_id: string; row_count: number }>('SELECT source_bundle_id, row_count FROM sync_bundles WHERE scope = $1', [user]);
    assert.deepEqual(bundles, [{ source_bundle_id: frozenId, row_count: 500 }], 'the bundle committed under the id frozen before the crash');
    assert.equal((await serverRowsText(ctx.store, 'notes', user, ['id'])).length, 499);
    const { rows: left } = await ctx.store.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_push_sessions WHERE scope = $1', [user]);
    assert.equal(left[0]!.n, '0', 'the session closed with the commit');
    await restarted.close();
  });

  test('a crash after the commit before the device learned of it: the retry is answered as a duplicate', async () => {
    const user = 'crash-commit';
    const crashing = await suite.device(user, 'phone', {
      chunkRows: 50,
      fetch: failingFetch((url) => (url.pathname.endsWith('/commit') ? 'after' : undefined)),
    });
    crashing.db.exec(`INSERT INTO folders VALUES ('f', 'Bulk', NULL)`);
    const note = crashing.db.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)');
    crashing.db.transaction(() => {
      for (let i = 1; i < 500; i++) note.run(uuid(i), 'f', `note ${i}`, BigInt(i), null, null);
    })();
    const expected = deviceRowsText(crashing, 'notes', NOTE_COLUMNS);
    await assert.rejects(crashing.pushPending(), /simulated: connection lost before the answer/);
    assert.equal(await bundleCount(ctx.store, user), 1, 'the commit reached the server');
    assert.equal(await crashing.pending(), 500, 'the device still holds the outbox');
    await crashing.close();

    const restarted = await suite.device(user, 'phone', { chunkRows: 50 });
    await restarted.sync();
    assert.equal(await bundleCount(ctx.store, user), 1, 'the retry is answered as a duplicate: no second bundle');
    assert.equal((await restarted.conflicts()).length, 0, 'its own rows never meet themselves as conflicts');
    assert.equal(await restarted.pending(), 0, 'the outbox is empty');
    assert.equal(restarted.db.prepare('SELECT count(*) FROM _syncline_outbox').pluck().get(), 0n);
    assert.equal(restarted.watermark, 1n);
    assert.deepEqual(deviceRowsText(restarted, 'notes', NOTE_COLUMNS), expected);
    assert.deepEqual(await serverRowsText(ctx.store, 'notes', user, NOTE_COLUMNS), expected);
    await restarted.close();
  });
});

describeEachStore('shared sync scenarios: behind the retention horizon', (ctx) => {
  const suite = scenarioSuite(ctx, () => sharedTestConfig({ retention: { bundles: 3 } }));

  test('a device behind the pruned history rebuilds, keeps its pending change, and converges', async () => {
    const user = 'horizon';
    const a = await suite.device(user, 'a');
    const b = await suite.device(user, 'b');
    const idle = await suite.device(user, 'idle');
    a.db.exec(`INSERT INTO folders VALUES ('base', 'Base', NULL), ('mine', 'Mine', NULL)`);
    await a.sync();
    await b.sync();
    await idle.sync();
    assert.equal(a.watermark, 1n);

    // a goes offline with a pending change; b commits ten bundles meanwhile.
    a.db.exec(`UPDATE folders SET name = 'Mine, renamed offline' WHERE id = 'mine'; INSERT INTO folders VALUES ('offline', 'Made offline', 'base')`);
    for (let i = 1; i <= 10; i++) {
      b.db.prepare('INSERT INTO folders VALUES (?, ?, ?)').run(`b${String(i).padStart(2, '0')}`, `from b ${i}`, 'base');
      if (i === 4) b.db.exec(`UPDATE folders SET name = 'Base, renamed by b' WHERE id = 'base'`);
      await b.sync();
    }
    const { rows } = await ctx.store.query<{ head_seq: string; floor_seq: string }>('SELECT head_seq::text AS head_seq, floor_seq::text AS floor_seq FROM sync_scopes WHERE scope = $1', [user]);
    assert.deepEqual(rows[0], { head_seq: '11', floor_seq: '8' });

    const causes = (device: SharedSync) => {
      const seen: string[] = [];
      device.onChange((event) => seen.push(event.cause));
      return seen;
    };
    const aEvents = causes(a);
    const idleEvents = causes(idle);
    const report = await a.sync();
    assert.equal(report.push.rows, 2, 'the pending change survived the rebuild and was pushed');
    assert.deepEqual(aEvents, ['hydrate'], 'the push found the history pruned: a rebuilt from a snapshot');
    assert.equal(await a.pending(), 0);
    await b.sync();
    await idle.sync();
    assert.deepEqual(idleEvents, ['hydrate'], 'with nothing to push, the pull found the history pruned and rebuilt');
    const expected = await serverRowsText(ctx.store, 'folders', user, ['id', 'name', 'parent_id']);
    assert.equal(expected.length, 13);
    assert.deepEqual(expected.find((r) => r[0] === 'mine'), ['mine', 'Mine, renamed offline', null]);
    assert.deepEqual(expected.find((r) => r[0] === 'base'), ['base', 'Base, renamed by b', null]);
    for (const device of [a, b, idle]) {
      assert.deepEqual(deviceRowsText(device, 'folders', ['id', 'name', 'parent_id']), expected, device.source);
      assert.equal(device.watermark, 12n, device.source);
      assert.equal(await device.pending(), 0, device.source);
    }
  });

  test("a rebuild does not take the device's own committed rows for remote changes that overrule its newer edits", async () => {
    const user = 'horizon-own';
    const b = await suite.device(user, 'b');
    b.db.exec(`INSERT INTO folders VALUES ('doc', 'v0', NULL)`);
    await b.sync();
    // a pushes an edit, and the pull after it fails: a never sees its own bundle come back.
    const flaky = await suite.device(user, 'a', { fetch: failingFetch((url) => (url.pathname === '/v1/shared/pull' ? 'before' : undefined)) });
    await assert.rejects(flaky.sync(), /simulated/);
    flaky.db.exec(`UPDATE folders SET name = 'v1 by a' WHERE id = 'doc'`);
    await assert.rejects(flaky.sync(), /simulated/);
    assert.equal(await bundleCount(ctx.store, user), 2, "a's first edit committed");
    const seen = flaky.watermark;
    await flaky.close();

    const a = await suite.device(user, 'a');
    assert.equal(a.watermark, seen);
    a.db.exec(`UPDATE folders SET name = 'v2 by a' WHERE id = 'doc'`);
    for (let i = 1; i <= 5; i++) {
      b.db.prepare('INSERT INTO folders VALUES (?, ?, NULL)').run(`b${i}`, `from b ${i}`);
      await b.sync();
    }
    await a.sync();
    await b.sync();
    assert.deepEqual(await a.conflicts(), [], 'nobody else touched the row: there is nothing to resolve');
    assert.deepEqual(await serverRowsText(ctx.store, 'folders', user, ['id', 'name']).then((rows) => rows.find((r) => r[0] === 'doc')), ['doc', 'v2 by a']);
    for (const device of [a, b]) assert.deepEqual(deviceRowsText(device, 'folders', ['id', 'name']), await serverRowsText(ctx.store, 'folders', user, ['id', 'name']), device.source);
  });
});
