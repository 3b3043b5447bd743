import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { CaptureWatch } from '../../src/device/capture/capture-watch.js';
import { readStoredTables } from '../../src/device/capture/capture-table.js';
import { advanceCursor, readCursors } from '../../src/device/journal/cursors.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../../src/device/driver/sqlite-driver.js';
import { JournalReader } from '../../src/device/journal/journal-reader.js';
import { readEpoch } from '../../src/device/journal/journal-state.js';
import { quoteIdent } from '../../src/device/capture/sql-text.js';
import { encodeValue, type SqlValue } from '../../src/protocol/values.js';
import { keyColumnsOf, readTableShape } from '../../src/device/capture/table-shape.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const UNICODE_TABLE = 'ünïcødé "tåble", 1';

async function app(dbPath: string, scenario: string, ...args: number[]): Promise<string> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
  return result.stdout;
}

interface RawRow {
  seq: bigint;
  tbl: string;
  op: string;
  pk: string;
  row: string | null;
}

/** Values as comparable text: the wire encoding is exact per storage class. */
function render(values: readonly SqlValue[]): string {
  return JSON.stringify(values.map(encodeValue));
}

async function journal(db: SqliteDriver, table?: string): Promise<RawRow[]> {
  const rows = (await new JournalReader(db).read(0, 10_000_000)).map((e) => ({ seq: BigInt(e.seq), tbl: e.table, op: e.op, pk: render(e.pk), row: e.row ? render(e.row) : null }));
  return table === undefined ? rows : rows.filter((r) => r.tbl === table);
}

/** The table's rows rendered like journal() renders entries: key text -> row text (stored schema column order). */
async function tableState(db: SqliteDriver, table: string): Promise<Map<string, string>> {
  const shape = (await readTableShape(db, table))!;
  const stored = (await readStoredTables(db)).get(table)!;
  const key = keyColumnsOf(shape)!;
  const columns = [...key, ...stored.columns.map((c) => c.name)].map((c, i) => `s.${quoteIdent(c)} AS c${i}`).join(', ');
  const rows = (await db.all(`SELECT ${columns} FROM ${quoteIdent(table)} AS s`)).map((row) => Object.values(row) as SqlValue[]);
  return new Map(rows.map((r) => [render(r.slice(0, key.length)), render(r.slice(key.length))]));
}

/**
 * Replays a table's journal strictly: snapshot and insert only for absent keys,
 * update and delete only for present ones. A gap or a duplicate at the switch
 * from snapshot to triggers breaks one of these rules.
 */
function replay(entries: RawRow[]): Map<string, string> {
  const state = new Map<string, string>();
  let previous: RawRow | undefined;
  for (const e of entries) {
    const present = state.has(e.pk);
    // A key change journals D(old key) and U(new key) from one trigger run, at consecutive seqs.
    const keyChange = e.op === 'U' && previous?.op === 'D' && previous.seq === e.seq - 1n;
    if (e.op === 'S' || e.op === 'I') assert.ok(!present, `seq ${e.seq}: ${e.op} for a key already present: ${e.pk}`);
    else if (!keyChange) assert.ok(present, `seq ${e.seq}: ${e.op} for an absent key: ${e.pk}`);
    previous = e;
    if (e.op === 'D') state.delete(e.pk);
    else state.set(e.pk, e.row!);
  }
  return state;
}

describe('device capture on a file another process writes', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-capture-');
  });
  after(() => dir.remove());

  test('composite, WITHOUT ROWID, rowid and unicode tables: snapshot, insert, update, key change, delete', async () => {
    const path = join(dir.path, 'kinds.db');
    await app(path, 'setup');
    await app(path, 'insert', 10, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const report = await ensureCapture(db);
      assert.deepEqual(report.installed.sort(), ['items', 'kv', 'log_lines', 'order_lines', UNICODE_TABLE].sort());
      assert.equal((await journal(db)).length, 50);
      assert.ok((await journal(db)).every((e) => e.op === 'S'));
      await app(path, 'insert', 10, 11);
      await app(path, 'update', 5, 1);
      await app(path, 'rekey', 3, 1);
      await app(path, 'delete', 2, 6);
      for (const table of ['items', 'kv', 'log_lines', 'order_lines', UNICODE_TABLE]) {
        assert.deepEqual(replay(await journal(db, table)), await tableState(db, table), table);
      }
      const entries = (await new JournalReader(db).read(0, 10_000));
      const items = entries.filter((e) => e.table === 'items');
      const qty = items.find((e) => e.op === 'I' && e.pk[0] === 15n)!.row![3];
      assert.equal(qty, 9223372036854775807n);
      assert.equal(items.find((e) => e.op === 'I' && e.pk[0] === 16n)!.row![3], -9223372036854775808n);
      assert.deepEqual(items.find((e) => e.op === 'I' && e.pk[0] === 11n)!.row![4], new Uint8Array([11, 0, 255, 0]));
      const moved = items.filter((e) => e.pk[0] === 1n || e.pk[0] === 1_000_001n).map((e) => `${e.op}${e.pk[0]}`);
      assert.deepEqual(moved, ['S1', 'U1', 'D1', 'U1000001']);
      const unicode = entries.filter((e) => e.table === UNICODE_TABLE && e.op === 'I');
      assert.deepEqual(unicode[0]!.row, ['ключ-11-😀', 'значение 11']);
      assert.deepEqual(entries.find((e) => e.table === 'order_lines' && e.op === 'D')!.pk, [6n, 0n]);
      const log = entries.filter((e) => e.table === 'log_lines');
      assert.deepEqual(log[0]!.schema.key, { kind: 'rowid', columns: ['rowid'] });
      assert.equal(log.find((e) => e.op === 'I')!.pk[0], 11n);
    } finally {
      await db.close();
    }
  });

  test('rows that exist at install are snapshotted exactly once while another process keeps writing', async () => {
    const path = join(dir.path, 'concurrent.db');
    await app(path, 'setup');
    await app(path, 'insert', 300, 1);
    const child = spawnScript(APP, [path, 'churn-across-capture', '600', '42']);
    const started = new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const done = finished(child);
    await started;
    const db = BetterSqlite3Driver.open(path);
    try {
      await ensureCapture(db);
      const result = await done;
      assert.equal(result.code, 0, result.stderr);
      const entries = await journal(db, 'items');
      assert.ok(entries.some((e) => e.op === 'S'));
      assert.ok(entries.some((e) => e.op !== 'S'), 'the writer committed after the switch too');
      // Fails when triggers and snapshot are not one transaction (checked by taking the snapshot outside it).
      assert.deepEqual(replay(entries), await tableState(db, 'items'));
    } finally {
      await db.close();
    }
  });

  test('a row written between ALTER TABLE ADD COLUMN and trigger regeneration reaches the journal with the new column', async () => {
    const path = join(dir.path, 'alter.db');
    await app(path, 'setup');
    await app(path, 'insert', 4, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const watch = new CaptureWatch(db);
      await watch.ensure();
      const epoch = await readEpoch(db);
      await app(path, 'update', 1, 1);
      // Everything so far is acked except the update of item 1 and the items after it.
      const ackedThrough = Number((await journal(db, 'items')).find((e) => e.op === 'U')!.seq) - 1;
      await advanceCursor(db, 'items', ackedThrough, epoch);
      await app(path, 'add-nullable-column');
      const stale = (await journal(db, 'items')).at(-1)!;
      assert.equal(stale.op, 'I');
      assert.ok(!stale.row!.includes('"fresh"'), 'the old trigger does not know the new column');
      const report = await watch.refresh();
      assert.deepEqual(report?.regenerated, ['items']);
      const refreshed = (await journal(db, 'items')).filter((e) => Number(e.seq) > Number(stale.seq));
      assert.deepEqual(refreshed.map((e) => e.op), ['U', 'U']);
      assert.deepEqual(
        refreshed.map((e) => e.pk),
        ['[1]', '[900002]'],
        'only keys with unacked entries are refreshed',
      );
      assert.match(refreshed[1]!.row!, /"fresh"\]$/);
      assert.equal(await watch.refresh(), undefined, 'nothing to do until the schema changes again');
      await app(path, 'insert', 1, 50);
      assert.match((await journal(db, 'items')).at(-1)!.row!, /null\]$/);
    } finally {
      await db.close();
    }
  });

  test('ADD COLUMN with a DEFAULT changes every existing row, so the table is snapshotted again', async () => {
    const path = join(dir.path, 'alter-default.db');
    await app(path, 'setup');
    await app(path, 'insert', 4, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const watch = new CaptureWatch(db);
      await watch.ensure();
      await app(path, 'add-column');
      const before = (await journal(db, 'items')).at(-1)!;
      assert.deepEqual((await watch.refresh())?.regenerated, ['items']);
      const resnapshot = (await journal(db, 'items')).filter((e) => Number(e.seq) > Number(before.seq));
      assert.deepEqual(resnapshot.map((e) => e.op), ['S', 'S', 'S', 'S', 'S']);
      assert.deepEqual(resnapshot.map((e) => e.pk).sort(), ['[1]', '[2]', '[3]', '[4]', '[900001]']);
      for (const entry of resnapshot) assert.match(entry.row!, entry.pk === '[900001]' ? /"fresh"\]$/ : /"none"\]$/);
    } finally {
      await db.close();
    }
  });

  test('changes made while the agent is not running are in the journal; rolled-back transactions leave nothing', async () => {
    const path = join(dir.path, 'offline.db');
    await app(path, 'setup');
    let db = BetterSqlite3Driver.open(path);
    await ensureCapture(db);
    await db.close();
    await app(path, 'insert', 5, 1);
    await app(path, 'delete', 1, 1);
    await app(path, 'rollback');
    db = BetterSqlite3Driver.open(path);
    try {
      const items = await journal(db, 'items');
      assert.deepEqual(items.map((e) => e.op), ['I', 'I', 'I', 'I', 'I', 'D']);
      assert.ok(!(await journal(db)).some((e) => (e.tbl === 'items' && e.pk === '[-1]') || (e.row ?? '').includes('rolled back')));
    } finally {
      await db.close();
    }
  });

  test('a recreated or truncated journal starts a new epoch with a fresh snapshot', async () => {
    const path = join(dir.path, 'recreate.db');
    await app(path, 'setup');
    await app(path, 'insert', 3, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const first = (await ensureCapture(db)).epoch;
      const max = Number((await journal(db)).at(-1)!.seq);
      for (const table of (await readCursors(db, first)).keys()) await advanceCursor(db, table, max, first);
      await db.exec('DROP TABLE _syncline_journal');
      const second = await ensureCapture(db);
      assert.ok(second.journalRecreated);
      assert.notEqual(second.epoch, first);
      assert.equal((await journal(db)).filter((e) => e.op === 'S').length, 15);
      for (const [table, cursor] of (await readCursors(db, second.epoch))) {
        assert.ok(cursor < Number((await journal(db, table))[0]!.seq), `${table}'s cursor sits just below its snapshot`);
      }

      const top = Number((await journal(db)).at(-1)!.seq);
      for (const table of (await readCursors(db, second.epoch)).keys()) await advanceCursor(db, table, top, second.epoch);
      await db.exec('DELETE FROM _syncline_journal');
      const third = await ensureCapture(db);
      assert.ok(third.journalRecreated, 'seqs would restart below the acked cursors');
      assert.notEqual(third.epoch, second.epoch);
      assert.equal((await journal(db)).filter((e) => e.op === 'S').length, 15);
    } finally {
      await db.close();
    }
  });

  test('a rebuilt table is captured again with a snapshot; a dropped table keeps its unpublished entries', async () => {
    const path = join(dir.path, 'rebuild.db');
    await app(path, 'setup');
    await app(path, 'insert', 3, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const watch = new CaptureWatch(db);
      await watch.ensure();
      const before = (await journal(db)).length;
      await app(path, 'rebuild');
      await app(path, 'drop-log');
      const report = (await watch.refresh())!;
      assert.deepEqual(report.installed, ['items']);
      assert.deepEqual(report.released, ['log_lines']);
      const fresh = (await journal(db)).slice(before);
      assert.deepEqual(fresh.map((e) => `${e.tbl}:${e.op}`), ['items:S', 'items:S', 'items:S']);
      assert.equal((await journal(db, 'log_lines')).length, 3, 'entries of the dropped table stay until published');
      assert.ok(!(await readStoredTables(db)).has('log_lines'));
      await db.exec("INSERT INTO items (id, name) VALUES (10, 'after rebuild')");
      assert.equal((await journal(db, 'items')).at(-1)!.op, 'I');
    } finally {
      await db.close();
    }
  });

  test('a renamed table loses its stale triggers and is captured under its new name', async () => {
    const path = join(dir.path, 'rename.db');
    await app(path, 'setup');
    await app(path, 'insert', 2, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const watch = new CaptureWatch(db);
      await watch.ensure();
      await db.exec('ALTER TABLE kv RENAME TO kv2');
      const report = (await watch.refresh())!;
      assert.deepEqual(report.installed, ['kv2']);
      assert.deepEqual(report.released, ['kv']);
      await db.exec("INSERT INTO kv2 VALUES ('new', 1)");
      assert.equal((await journal(db)).at(-1)!.tbl, 'kv2');
      const triggers = (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'kv2'")).map((r) => r.name);
      assert.deepEqual(triggers.sort(), ['_syncline_kv2_del', '_syncline_kv2_ins', '_syncline_kv2_upd']);
    } finally {
      await db.close();
    }
  });

  test('a table that cannot be keyed is reported and skipped; the others are captured', async () => {
    const path = join(dir.path, 'unkeyable.db');
    await app(path, 'setup');
    const db = BetterSqlite3Driver.open(path);
    try {
      await db.exec('CREATE TABLE hides_rowid (rowid TEXT, _rowid_ TEXT, oid TEXT)');
      const watch = new CaptureWatch(db);
      const report = await watch.ensure();
      assert.deepEqual(report.failed.map((f) => [f.table, (f.error as { code?: string }).code]), [['hides_rowid', 'capture_failed']]);
      assert.equal(report.installed.length, 5);
      assert.equal(await watch.refresh(), undefined, 'not retried until the schema changes');
    } finally {
      await db.close();
    }
  });

  test('an allowlist captures only the listed tables; before-images fill old_row', async () => {
    const path = join(dir.path, 'allow.db');
    await app(path, 'setup');
    await app(path, 'insert', 2, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      const report = await ensureCapture(db, { tables: ['kv'], beforeImages: ['kv'] });
      assert.deepEqual(report.installed, ['kv']);
      await app(path, 'update', 1, 1);
      const [update] = (await new JournalReader(db).read(0, 100)).filter((e) => e.op === 'U');
      assert.equal(update!.table, 'kv');
      assert.deepEqual(update!.oldRow, ['k1', 1e20]);
      assert.deepEqual(update!.row, ['k1', 'line\nbreak']);
    } finally {
      await db.close();
    }
  });
});
