import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { SharedTable } from '../../src/protocol/shared-sync.js';
import { quotedList, quoteIdent, quoteText } from '../../src/device/capture/sql-text.js';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { JOURNAL_LAYOUT_VERSION } from '../../src/device/journal/journal-schema.js';
import { deviceRowsText, scenarioSuite, serverRowsText } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';

/**
 * A two-way file of the layout before the one journal (commit 55bb377): its own
 * capture triggers named `_syncline_sync:<table>:<kind>` marking keys in
 * `_syncline_dirty` (with the row before the first unpushed write), its state in
 * `_syncline_shared_state`, no journal at all. Built here by SQL from a file the
 * current version set up: the triggers are what that version wrote (the `mark`
 * below is its trigger builder), the other tables keep their shape.
 */

const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;

function oldTriggers(table: SharedTable): string[] {
  const name = quoteIdent(table.name);
  const columns = table.columns.map((c) => c.name);
  const mark = (key: string, base: string, where = '') => {
    const values = `${quoteText(table.name)}, ${key}, ${base}, ${NOW_MS}`;
    const source = where ? `SELECT ${values} WHERE ${where}` : `VALUES (${values})`;
    return `INSERT INTO _syncline_dirty (tbl, key, base_row, wall_ms) ${source} ON CONFLICT (tbl, key) DO UPDATE SET wall_ms = excluded.wall_ms`;
  };
  const create = (kind: string, event: string, body: string) =>
    `CREATE TRIGGER ${quoteIdent(`_syncline_sync:${table.name}:${kind}`)} AFTER ${event} ON ${name} FOR EACH ROW WHEN NOT EXISTS (SELECT 1 FROM _syncline_applying) BEGIN ${body}; END`;
  const newKey = quotedList('NEW.', table.key);
  const oldKey = quotedList('OLD.', table.key);
  const oldRow = quotedList('OLD.', columns);
  const sameKey = `(${oldKey}) IS (${newKey})`;
  return [
    create('ins', 'INSERT', mark(newKey, 'NULL')),
    create('upd', 'UPDATE', `${mark(oldKey, oldRow, `NOT ${sameKey}`)}; ${mark(newKey, `CASE WHEN ${sameKey} THEN ${oldRow} END`)}`),
    create('del', 'DELETE', mark(oldKey, oldRow)),
  ];
}

/** Turns a current two-way file back into the old layout: old triggers and state, no journal. */
function downgrade(path: string, tables: readonly SharedTable[]): void {
  const db = new Database(path);
  db.exec(`
    CREATE TABLE _syncline_shared_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO _syncline_shared_state SELECT substr(key, 8), value FROM _syncline_state WHERE key LIKE 'twoway\\_%' ESCAPE '\\';
    CREATE TABLE _syncline_dirty (tbl TEXT NOT NULL, key TEXT NOT NULL, base_row TEXT, wall_ms INTEGER NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID;
    DROP TABLE _syncline_settled;`);
  for (const table of tables) {
    for (const kind of ['ins', 'upd', 'del']) db.exec(`DROP TRIGGER ${quoteIdent(`_syncline_${table.name}_${kind}`)}`);
    // A down-only table had its guard then as now, and no capture.
    if (table.direction !== 'down') for (const sql of oldTriggers(table)) db.exec(sql);
  }
  for (const own of ['journal', 'state', 'tables', 'schemas', 'cursors', 'quarantine', 'checkpoints', 'flow']) db.exec(`DROP TABLE _syncline_${own}`);
  db.close();
}

const FOLDER_COLUMNS = ['id', 'name', 'parent_id'];

describeEachStore('shared sync: a file of the layout before the one journal', (ctx) => {
  const suite = scenarioSuite(ctx);

  test('converts in place on first open, pushes every unpushed change with its base, and then journals remote changes as remote', async () => {
    const laptop = await suite.device('upgrade-ann', 'laptop');
    laptop.db.prepare(`INSERT INTO folders VALUES ('f1', 'Inbox', NULL), ('f2', 'Work', NULL), ('f3', 'Old', NULL)`).run();
    await laptop.sync();
    const tables = laptop.tables;
    await laptop.close();
    downgrade(suite.path('upgrade-ann', 'laptop'), tables);

    // The app writes while no Syncline runs: only the old triggers see it.
    const app = new Database(suite.path('upgrade-ann', 'laptop'));
    app.exec(`
      UPDATE folders SET name = 'Inbox!' WHERE id = 'f1';
      UPDATE folders SET name = 'Inbox!!' WHERE id = 'f1';
      DELETE FROM folders WHERE id = 'f3';
      INSERT INTO folders VALUES ('f4', 'New', 'f2');
      INSERT INTO folders VALUES ('f5', 'Gone', NULL);
      DELETE FROM folders WHERE id = 'f5';`);
    assert.equal(app.prepare('SELECT count(*) FROM _syncline_dirty').pluck().get(), 4);
    app.close();

    const reopened = await suite.device('upgrade-ann', 'laptop');
    const file = reopened.db;
    const names = (type: string) => (file.prepare(`SELECT name FROM sqlite_master WHERE type = ? AND name LIKE '\\_syncline%' ESCAPE '\\' ORDER BY name`).pluck().all(type) as string[]);
    assert.ok(!names('table').includes('_syncline_dirty') && !names('table').includes('_syncline_shared_state'), names('table').join(' '));
    assert.ok(!names('trigger').some((n) => n.includes(':') && !n.startsWith('_syncline_sync:catalog')), `old capture triggers are gone: ${names('trigger').join(' ')}`);
    assert.equal(file.prepare(`SELECT value FROM _syncline_state WHERE key = 'layout_version'`).pluck().get(), String(JOURNAL_LAYOUT_VERSION));
    assert.equal(reopened.source, 'laptop');
    assert.ok(reopened.watermark > 0n, 'the watermark survived the move of the state');

    const pending = (await reopened.pendingChanges()).get('folders')!;
    assert.deepEqual(
      [...pending.entries()].map(([key, change]) => [key, change.base]).sort(),
      [
        ["'f1'", "'f1','Inbox',NULL"],
        ["'f3'", "'f3','Old',NULL"],
        ["'f4'", null],
      ],
      'each key keeps the row it started from; created-and-deleted f5 has nothing to push',
    );

    const report = await reopened.sync();
    assert.equal(report.push.rows, 3);
    assert.equal(report.hydrated, null, 'no new hydration');
    assert.deepEqual(await serverRowsText(ctx.store, 'folders', 'upgrade-ann', FOLDER_COLUMNS), [
      ['f1', 'Inbox!!', null],
      ['f2', 'Work', null],
      ['f4', 'New', 'f2'],
    ]);

    // From now on the one journal carries both directions; a local consumer tells them apart.
    const stream = await changes({ db: suite.path('upgrade-ann', 'laptop'), tables: ['folders'], checkpoint: 'ui', checkpointIntervalMs: 0 });
    const events = stream[Symbol.asyncIterator]();
    const phone = await suite.device('upgrade-ann', 'phone');
    await phone.sync();
    phone.db.prepare(`UPDATE folders SET name = 'Work (phone)' WHERE id = 'f2'`).run();
    await phone.sync();
    await reopened.sync();
    file.prepare(`INSERT INTO folders VALUES ('f6', 'Mine', NULL)`).run();
    const pushed = await reopened.sync();
    assert.equal(pushed.push.rows, 1, 'the remote change is not pushed back, the local one is');
    const seen: ChangeEvent[] = [(await events.next()).value as ChangeEvent, (await events.next()).value as ChangeEvent];
    await stream.close();
    assert.deepEqual(
      seen.map((e) => [e.origin, e.op, e.key.id, e.after?.name, e.before?.name]),
      [
        ['remote', 'update', 'f2', 'Work (phone)', 'Work'],
        ['local', 'insert', 'f6', 'Mine', undefined],
      ],
    );
    await phone.sync();
    assert.deepEqual(deviceRowsText(reopened, 'folders', FOLDER_COLUMNS), deviceRowsText(phone, 'folders', FOLDER_COLUMNS));
  });
});
