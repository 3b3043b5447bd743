import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { isSynclineError } from '../../src/protocol/errors.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { JournalReader } from '../../src/device/journal/journal-reader.js';
import { JOURNAL_DDL } from '../../src/device/journal/journal-schema.js';
import { slotLayout, slotsNeeded } from '../../src/device/journal/journal-slots.js';
import { ensureJournalSlots } from '../../src/device/journal/journal-state.js';
import { concatBalanced, quoteIdent, quoteText } from '../../src/device/capture/sql-text.js';
import { createTriggerStatements, dropTriggerStatements, isOwnTriggerOf, rowAtKeyStatement, snapshotStatement, triggerName, type CaptureSpec } from '../../src/device/capture/trigger-sql.js';

const HOSTILE = 'x"; DROP TABLE y; --';

function memoryDb(): Database.Database {
  const db = new Database(':memory:');
  db.defaultSafeIntegers(true);
  db.exec(JOURNAL_DDL);
  return db;
}

/** The triggers plus what capture records beside them: journal width and the schema record the reader decodes by. */
async function install(db: Database.Database, spec: CaptureSpec): Promise<void> {
  await ensureJournalSlots(new BetterSqlite3Driver(db), slotsNeeded(slotLayout(spec.columns, spec.key), spec.beforeImages), spec.table);
  const columns = spec.columns.map((name) => ({ name, declared_type: '', affinity: 'BLOB', pk: 0, notnull: false, has_default: false }));
  db.prepare('INSERT OR IGNORE INTO _syncline_schemas (id, tbl, hash, columns, key, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(spec.schemaId, spec.table, 'h', JSON.stringify(columns), JSON.stringify(spec.key), '');
  for (const sql of createTriggerStatements(spec)) db.exec(sql);
}

/** The journal as the engine reads it, through the driver over the app's own connection. */
async function journal(db: Database.Database): Promise<{ op: string; tbl: string; pk: unknown[]; row: unknown[] | null; old: unknown[] | null }[]> {
  return (await new JournalReader(new BetterSqlite3Driver(db)).read(0, 1_000_000)).map((e) => ({ op: e.op, tbl: e.table, pk: e.pk, row: e.row ?? null, old: e.oldRow ?? null }));
}

function pkKey(columns: string[]): CaptureSpec['key'] {
  return { kind: 'primary_key', columns };
}

const ROWID_KEY: CaptureSpec['key'] = { kind: 'rowid', columns: ['rowid'] };

// SQLite identifiers cannot hold NUL; everything else is fair game.
const identifier = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }).filter((s) => !s.includes('\0'));

describe('trigger SQL', () => {
  test('quoting doubles the quote characters and nothing else', () => {
    assert.equal(quoteIdent('a"b'), '"a""b"');
    assert.equal(quoteText("it's"), "'it''s'");
    assert.equal(concatBalanced(['a']), 'a');
    assert.equal(concatBalanced(['a', 'b', 'c']), "(a)||','||((b)||','||(c))");
  });

  test('edge capture names neither origin nor time (the app\'s, no clock read); two-way capture stamps the write time; a remote snapshot says so', async () => {
    const db = memoryDb();
    db.exec('CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const edge: CaptureSpec = { table: 'e', columns: ['id', 'v'], key: pkKey(['id']), keyColumns: ['id'], schemaId: 1, beforeImages: false };
    const twoWay: CaptureSpec = { table: 't', columns: ['id', 'v'], key: pkKey(['id']), keyColumns: ['id'], schemaId: 2, beforeImages: true, writeTime: true };
    for (const sql of createTriggerStatements(edge)) assert.ok(!/\bms\b|origin|julianday/.test(sql), sql);
    await install(db, edge);
    await install(db, twoWay);
    const before = Date.now();
    db.exec("INSERT INTO e VALUES (1, 'a'); INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b'");
    db.exec(snapshotStatement(twoWay, 'R'));
    const rows = db.prepare('SELECT seq, op, origin, ms FROM _syncline_journal ORDER BY seq').raw().all() as [bigint, string, string, bigint | null][];
    assert.deepEqual(rows.map(([seq, op, origin, ms]) => [seq, op, origin, ms === null ? null : 'ms']), [
      [1n, 'I', 'L', null],
      [2n, 'I', 'L', 'ms'],
      [3n, 'U+', 'L', 'ms'],
      [4n, 'S', 'R', 'ms'],
    ]);
    for (const [, , , ms] of rows.slice(1)) assert.ok(Math.abs(Number(ms) - before) < 60_000, `write time ${ms} near ${before}`);
    assert.deepEqual((await new JournalReader(new BetterSqlite3Driver(db)).readRaw(0, 10)).map((e) => e.origin), ['L', 'L', 'L', 'R']);
  });

  test('a table named like an injection is captured without running anything', async () => {
    const db = memoryDb();
    db.exec(`CREATE TABLE y (id INTEGER PRIMARY KEY); CREATE TABLE ${quoteIdent(HOSTILE)} ("a""b" INTEGER PRIMARY KEY, "--c" TEXT, "'; DROP TABLE y; --" BLOB)`);
    const spec: CaptureSpec = { table: HOSTILE, columns: ['a"b', '--c', "'; DROP TABLE y; --"], key: pkKey(['a"b']), keyColumns: ['a"b'], schemaId: 7, beforeImages: true };
    await install(db, spec);
    db.prepare(`INSERT INTO ${quoteIdent(HOSTILE)} VALUES (1, 'v', x'01')`).run();
    db.prepare(`UPDATE ${quoteIdent(HOSTILE)} SET "a""b" = 2`).run();
    db.prepare(`DELETE FROM ${quoteIdent(HOSTILE)}`).run();
    assert.ok(db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'y'").get(), 'table y still exists');
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name").pluck().all() as string[]).sort();
    assert.deepEqual(names, ['del', 'ins', 'upd'].map((k) => triggerName(HOSTILE, k as 'ins')).sort());
    const blob = new Uint8Array([1]);
    assert.deepEqual(await journal(db), [
      { op: 'I', tbl: HOSTILE, pk: [1n], row: [1n, 'v', blob], old: null },
      { op: 'D', tbl: HOSTILE, pk: [1n], row: null, old: [1n, 'v', blob] },
      { op: 'U', tbl: HOSTILE, pk: [2n], row: [2n, 'v', blob], old: [1n, 'v', blob] },
      { op: 'D', tbl: HOSTILE, pk: [2n], row: null, old: [2n, 'v', blob] },
    ]);
    for (const sql of dropTriggerStatements(HOSTILE)) db.exec(sql);
    assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").pluck().get(), 0n);
  });

  test('any table and column names journal exactly the row written (property)', async () => {
    await fc.assert(
      fc.asyncProperty(identifier, fc.uniqueArray(identifier, { minLength: 1, maxLength: 5, comparator: (a, b) => a.toLowerCase() === b.toLowerCase() }), async (table, columns) => {
        fc.pre(!table.toLowerCase().startsWith('sqlite_'));
        const db = memoryDb();
        db.exec(`CREATE TABLE ${quoteIdent(table)} (${columns.map((c, i) => `${quoteIdent(c)}${i === 0 ? ' PRIMARY KEY' : ''}`).join(', ')}) WITHOUT ROWID`);
        const spec: CaptureSpec = { table, columns, key: pkKey([columns[0]!]), keyColumns: [columns[0]!], schemaId: 1, beforeImages: false };
        await install(db, spec);
        const values = columns.map((c, i) => (i === 0 ? `key,'${c}` : i % 2 === 0 ? BigInt(i) : `v'${c}`));
        db.prepare(`INSERT INTO ${quoteIdent(table)} VALUES (${columns.map(() => '?').join(', ')})`).run(...values);
        db.exec(snapshotStatement(spec));
        const entries = await journal(db);
        assert.deepEqual(entries.map((e) => [e.op, e.tbl, e.pk, e.row]), [
          ['I', table, [values[0]], values],
          ['S', table, [values[0]], values],
        ]);
        db.close();
      }),
      { numRuns: 150 },
    );
  });

  test('composite keys: a key change journals a delete of the old key, then the new row', async () => {
    const db = memoryDb();
    db.exec('CREATE TABLE t (a TEXT COLLATE NOCASE, b INTEGER, v, PRIMARY KEY (a, b))');
    await install(db, { table: 't', columns: ['a', 'b', 'v'], key: pkKey(['a', 'b']), keyColumns: ['a', 'b'], schemaId: 1, beforeImages: false });
    db.exec("INSERT INTO t VALUES ('k', 1, 'x'); UPDATE t SET v = 'y'; UPDATE t SET a = 'K'; UPDATE t SET b = 2");
    assert.deepEqual((await journal(db)).map((e) => [e.op, e.pk, e.row]), [
      ['I', ['k', 1n], ['k', 1n, 'x']],
      ['U', ['k', 1n], ['k', 1n, 'y']],
      ['D', ['k', 1n], null],
      ['U', ['K', 1n], ['K', 1n, 'y']],
      ['D', ['K', 1n], null],
      ['U', ['K', 2n], ['K', 2n, 'y']],
    ]);
  });

  test('rowid tables use the rowid as key; the row re-read statement binds the key', async () => {
    const db = memoryDb();
    db.exec('CREATE TABLE t (v TEXT)');
    const spec: CaptureSpec = { table: 't', columns: ['v'], key: ROWID_KEY, keyColumns: ['rowid'], schemaId: 3, beforeImages: false };
    await install(db, spec);
    db.exec("INSERT INTO t (rowid, v) VALUES (42, 'x')");
    db.prepare(rowAtKeyStatement(spec)).run(42n);
    db.prepare(rowAtKeyStatement(spec)).run(43n);
    assert.deepEqual((await journal(db)).map((e) => [e.op, e.pk, e.row]), [
      ['I', [42n], ['x']],
      ['U', [42n], ['x']],
    ]);
  });

  test('a table with 1,500 columns is captured value for value; with before-images it is refused by name', async () => {
    const db = memoryDb();
    const columns = Array.from({ length: 1500 }, (_, i) => `c${i}`);
    db.exec(`CREATE TABLE wide (${columns.join(', ')})`);
    const spec: CaptureSpec = { table: 'wide', columns, key: ROWID_KEY, keyColumns: ['rowid'], schemaId: 1, beforeImages: false };
    await install(db, spec);
    db.exec('INSERT INTO wide (c0, c1499) VALUES (1, 2); UPDATE wide SET c1 = 3; DELETE FROM wide');
    const [insert, update, del] = await journal(db);
    assert.equal(insert!.row!.length, 1500);
    assert.deepEqual([insert!.row![0], insert!.row![1499], insert!.pk], [1n, 2n, [1n]]);
    assert.deepEqual([update!.row![1], del!.pk, del!.row], [3n, [1n], null]);
    await assert.rejects(
      () => install(db, { ...spec, beforeImages: true }),
      (e) => isSynclineError(e) && e.code === 'capture_failed' && e.context.table === 'wide' && /before-images/.test(e.message),
    );
  });

  test('values are journaled as stored: 64-bit integers, -0.0, TEXT with NUL, empty and binary BLOBs', async () => {
    const db = memoryDb();
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v)');
    await install(db, { table: 't', columns: ['id', 'v'], key: pkKey(['id']), keyColumns: ['id'], schemaId: 1, beforeImages: false });
    const values = [9223372036854775807n, -9223372036854775808n, -0, 0.1, 'a\0b', new Uint8Array(0), new Uint8Array([0, 255]), null, 2.0];
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (const value of values) insert.run(value);
    const rows = (await journal(db)).map((e) => e.row![1]);
    assert.deepEqual(rows, values);
    assert.ok(Object.is(rows[2], -0));
    assert.equal(typeof rows[8], 'number', 'a REAL stays a REAL, even when integral');
  });

  test('trigger names map back to their table only', () => {
    assert.ok(isOwnTriggerOf(triggerName('a_ins', 'upd'), 'a_ins'));
    assert.ok(!isOwnTriggerOf(triggerName('a', 'ins'), 'a_ins'));
    assert.ok(!isOwnTriggerOf(triggerName('t', 'ins'), 't2'));
  });
});
