import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { readStoredTables } from '../../src/device/capture/capture-table.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../../src/device/driver/sqlite-driver.js';
import { JournalReader } from '../../src/device/journal/journal-reader.js';
import { JOURNAL_LAYOUT_VERSION } from '../../src/device/journal/journal-schema.js';
import { readEpoch, readState } from '../../src/device/journal/journal-state.js';
import { tempDir } from '../support/temp.js';

/**
 * A file captured by journal layout 1 (key and rows as quote() text) is turned
 * into the current layout in place. The layout-1 journal and triggers below are
 * what that version wrote; the schema records and tables are the same in both.
 */
const V1_JOURNAL = `CREATE TABLE _syncline_journal (
  seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, pk TEXT NOT NULL, row TEXT, old_row TEXT, schema_id INTEGER NOT NULL)`;

function v1Triggers(items: number, notes: number): string {
  const into = 'INSERT INTO _syncline_journal (tbl, op, pk, row, old_row, schema_id)';
  const itemRow = (p: string) => `quote(${p}.id)||','||quote(${p}.name)||','||quote(${p}.qty)||','||quote(${p}.data)`;
  return `
    CREATE TRIGGER _syncline_items_ins AFTER INSERT ON items BEGIN ${into} VALUES ('items', 'I', quote(NEW.id), ${itemRow('NEW')}, NULL, ${items}); END;
    CREATE TRIGGER _syncline_items_upd AFTER UPDATE ON items BEGIN
      ${into} SELECT 'items', 'D', quote(OLD.id), NULL, NULL, ${items} WHERE quote(OLD.id) IS NOT quote(NEW.id);
      ${into} VALUES ('items', 'U', quote(NEW.id), ${itemRow('NEW')}, NULL, ${items}); END;
    CREATE TRIGGER _syncline_items_del AFTER DELETE ON items BEGIN ${into} VALUES ('items', 'D', quote(OLD.id), NULL, NULL, ${items}); END;
    CREATE TRIGGER _syncline_notes_ins AFTER INSERT ON notes BEGIN ${into} VALUES ('notes', 'I', quote(NEW.rowid), quote(NEW.body), NULL, ${notes}); END;
    CREATE TRIGGER _syncline_notes_upd AFTER UPDATE ON notes BEGIN
      ${into} VALUES ('notes', 'U', quote(NEW.rowid), quote(NEW.body), quote(OLD.body), ${notes}); END;
    CREATE TRIGGER _syncline_notes_del AFTER DELETE ON notes BEGIN ${into} VALUES ('notes', 'D', quote(OLD.rowid), NULL, quote(OLD.body), ${notes}); END;`;
}

async function entries(db: SqliteDriver): Promise<unknown[]> {
  return (await new JournalReader(db).read(0, 1000)).map((e) => [e.seq, e.table, e.op, e.pk, e.row ?? null, e.oldRow ?? null]);
}

describe('journal layout upgrade', () => {
  const dir = tempDir();
  after(() => dir.remove());

  /** An app's file with its schema, captured as this version does: its path, the open connection and the epoch. */
  async function capturedFile(name: string, schema: string, beforeImages: string[]): Promise<{ path: string; db: SqliteDriver; epoch: string }> {
    const path = join(dir.path, name);
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec(schema);
    app.close();
    const db = BetterSqlite3Driver.open(path);
    await ensureCapture(db, { beforeImages });
    return { path, db, epoch: await readEpoch(db) };
  }

  /** Opens the file as the agent does after the app wrote under the old layout: converted, nothing captured afresh, same epoch. */
  async function reopenConverted(path: string, epoch: string): Promise<SqliteDriver> {
    const db = BetterSqlite3Driver.open(path);
    const report = await ensureCapture(db);
    assert.deepEqual([report.installed, report.journalRecreated], [[], false], 'no table is captured afresh');
    assert.equal(await readEpoch(db), epoch);
    assert.equal(await readState(db, 'layout_version'), String(JOURNAL_LAYOUT_VERSION));
    return db;
  }

  test('a layout-1 journal is converted in place: same seqs, same values, same epoch, no new snapshot', async () => {
    // Set up capture as this version does, then put back what layout 1 had instead.
    const file = await capturedFile('v1.db', 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, data BLOB); CREATE TABLE notes (body TEXT)', ['notes']);
    const { path, epoch } = file;
    let db = file.db;
    const stored = await readStoredTables(db);
    await db.exec(`DROP TABLE _syncline_journal; ${V1_JOURNAL}; DROP TRIGGER _syncline_items_ins; DROP TRIGGER _syncline_items_upd; DROP TRIGGER _syncline_items_del;
      DROP TRIGGER _syncline_notes_ins; DROP TRIGGER _syncline_notes_upd; DROP TRIGGER _syncline_notes_del;
      UPDATE _syncline_state SET value = '1' WHERE key = 'layout_version';`);
    await db.exec(v1Triggers(stored.get('items')!.schemaId, stored.get('notes')!.schemaId));
    await db.close();

    const writer = new Database(path);
    writer.defaultSafeIntegers(true);
    writer.exec(`
      INSERT INTO items VALUES (1, 'one', 9223372036854775807, x'00ff'), (2, 'it''s', -9223372036854775808, NULL), (3, 'three', 3, x'');
      UPDATE items SET name = 'two' WHERE id = 2;
      DELETE FROM items WHERE id = 3;
      UPDATE items SET id = 10 WHERE id = 1;
      INSERT INTO notes (rowid, body) VALUES (5, 'first');
      UPDATE notes SET body = 'second';
      DELETE FROM notes;`);
    writer.close();

    db = await reopenConverted(path, epoch);
    try {
      assert.equal((await db.get<{ n: bigint }>("SELECT count(*) AS n FROM sqlite_master WHERE name = '_syncline_journal_v1'"))!.n, 0n);
      const blob = new Uint8Array([0, 255]);
      assert.deepEqual(await entries(db), [
        [1, 'items', 'I', [1n], [1n, 'one', 9223372036854775807n, blob], null],
        [2, 'items', 'I', [2n], [2n, "it's", -9223372036854775808n, null], null],
        [3, 'items', 'I', [3n], [3n, 'three', 3n, new Uint8Array(0)], null],
        [4, 'items', 'U', [2n], [2n, 'two', -9223372036854775808n, null], null],
        [5, 'items', 'D', [3n], null, null],
        [6, 'items', 'D', [1n], null, null],
        [7, 'items', 'U', [10n], [10n, 'one', 9223372036854775807n, blob], null],
        [8, 'notes', 'I', [5n], ['first'], null],
        [9, 'notes', 'U', [5n], ['second'], ['first']],
        [10, 'notes', 'D', [5n], null, ['second']],
      ]);

      // The rewritten triggers capture in the new layout, after the converted seqs.
      const later = new Database(path);
      later.exec("INSERT INTO items VALUES (11, 'eleven', 11, NULL); INSERT INTO notes (rowid, body) VALUES (6, 'third'); DELETE FROM notes");
      later.close();
      assert.deepEqual(((await entries(db)) as unknown[][]).slice(10), [
        [11, 'items', 'I', [11n], [11n, 'eleven', 11n, null], null],
        [12, 'notes', 'I', [6n], ['third'], null],
        [13, 'notes', 'D', [6n], null, ['third']],
      ]);
      assert.deepEqual((await ensureCapture(db)).installed, [], 'a second start changes nothing');
    } finally {
      await db.close();
    }
  });

  test('a layout-2 journal (no origin, no ms) is rebuilt in place: same seqs and values, origin local, the triggers keep capturing', async () => {
    // Set up capture as this version does (its edge triggers are byte for byte those of layout 2), then give the
    // journal layout 2's shape: seq, schema_id, op and the slots.
    const file = await capturedFile('v2.db', 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, data BLOB)', ['items']);
    const { path, epoch } = file;
    let db = file.db;
    const slots = (await db.all<{ name: string }>(`SELECT name FROM pragma_table_info('_syncline_journal') WHERE name LIKE 'v%'`)).map((r) => r.name).join(', ');
    await db.exec(`PRAGMA legacy_alter_table = ON;
      CREATE TABLE v2 (seq INTEGER PRIMARY KEY, schema_id INTEGER NOT NULL, op TEXT NOT NULL, ${slots});
      DROP TABLE _syncline_journal; ALTER TABLE v2 RENAME TO _syncline_journal; PRAGMA legacy_alter_table = OFF;
      UPDATE _syncline_state SET value = '2' WHERE key = 'layout_version';`);
    await db.close();

    const writer = new Database(path);
    writer.exec(`INSERT INTO items VALUES (1, 'one', 1, x'00ff'), (2, 'two', 2, NULL); UPDATE items SET name = 'uno' WHERE id = 1; DELETE FROM items WHERE id = 2;`);
    assert.deepEqual(writer.prepare('SELECT seq, op FROM _syncline_journal').raw().all(), [[1, 'I'], [2, 'I'], [3, 'U+'], [4, 'D+']], 'the triggers wrote the layout-2 journal');
    writer.close();

    db = await reopenConverted(path, epoch);
    try {
      assert.deepEqual(
        (await db.all<{ name: string }>(`SELECT name FROM pragma_table_info('_syncline_journal')`)).map((r) => r.name).slice(0, 5),
        ['seq', 'schema_id', 'op', 'origin', 'ms'],
      );
      const blob = new Uint8Array([0, 255]);
      const converted = [
        [1, 'items', 'I', [1n], [1n, 'one', 1n, blob], null],
        [2, 'items', 'I', [2n], [2n, 'two', 2n, null], null],
        [3, 'items', 'U', [1n], [1n, 'uno', 1n, blob], [1n, 'one', 1n, blob]],
        [4, 'items', 'D', [2n], null, [2n, 'two', 2n, null]],
      ];
      assert.deepEqual(await entries(db), converted);
      assert.deepEqual((await new JournalReader(db).readRaw(0, 10)).map((e) => e.origin), ['L', 'L', 'L', 'L']);

      const later = new Database(path);
      later.exec("INSERT INTO items VALUES (3, 'three', 3, NULL)");
      later.close();
      assert.deepEqual(((await entries(db)) as unknown[][]).slice(4), [[5, 'items', 'I', [3n], [3n, 'three', 3n, null], null]]);
      assert.deepEqual((await ensureCapture(db)).installed, [], 'a second start changes nothing');
    } finally {
      await db.close();
    }
  });
});
