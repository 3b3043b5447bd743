import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { maxJournalSeq } from '../../src/device/journal/journal-state.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { APP, app, assertInCommitOrder, collect, replay, tableState } from './change-stream-support.js';

const TABLES = ['items', 'order_lines', 'kv', 'log_lines', 'ünïcødé "tåble", 1'];

async function journalMax(path: string): Promise<number> {
  const db = BetterSqlite3Driver.open(path);
  try {
    return await maxJournalSeq(db);
  } finally {
    await db.close();
  }
}

describe('change stream: live changes', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-stream-live-');
  });
  after(() => dir.remove());

  test('two processes writing, one subscriber: every change once, in commit order, matching the file', async () => {
    const path = join(dir.path, 'two-writers.db');
    await app(path, 'setup');
    const stream = await changes({ db: path });
    const writers = await Promise.all([
      finished(spawnScript(APP, [path, 'insert', '150', '1'])),
      finished(spawnScript(APP, [path, 'insert', '150', '1001'])),
    ]);
    for (const w of writers) assert.equal(w.code, 0, w.stderr);
    await app(path, 'update', 20, 1001);
    const lastSeq = await journalMax(path);
    const events = await collect(stream, (seen) => seen.at(-1)?.seq === lastSeq);
    assertInCommitOrder(events);
    assert.equal(events.length, lastSeq, 'one event per journal entry');
    assert.equal(new Set(events.map((e) => e.seq)).size, events.length);
    for (const table of TABLES) {
      assert.equal(events.filter((e) => e.table === table && e.op === 'insert').length, 300, table);
      assert.deepEqual(replay(events).get(table), await tableState(path, table), table);
    }
    assert.ok(events.every((e) => e.origin === 'local'));
  });

  test('a rolled-back transaction is never delivered', async () => {
    const path = join(dir.path, 'rollback.db');
    await app(path, 'setup');
    await app(path, 'insert', 3, 1);
    const stream = await changes({ db: path });
    assert.equal(JSON.parse((await app(path, 'rollback')).trim().split('\n').at(-1)!).rolledBack, true);
    await app(path, 'insert', 1, 50);
    const events = await collect(stream, (seen) => seen.length >= 5);
    assert.deepEqual(
      events.map((e) => [e.op, e.table]),
      TABLES.map((t) => ['insert', t]),
    );
    assert.equal(events[0]!.key.id, 50n);
  });

  test('before-images where a table opts in, none where it does not', async () => {
    const path = join(dir.path, 'before.db');
    await app(path, 'setup');
    const stream = await changes({ db: path, tables: [{ name: 'items', beforeImages: true }, 'kv'] });
    await app(path, 'insert', 3, 1);
    await app(path, 'update', 3, 1);
    await app(path, 'delete', 3, 1);
    const events = await collect(stream, (seen) => seen.filter((e) => e.op === 'delete').length === 6);
    const last = new Map<string, ChangeEvent>();
    for (const e of events.filter((x) => x.table === 'items')) {
      const key = String(e.key.id);
      if (e.op !== 'insert') assert.deepEqual(e.before, last.get(key)!.after, `seq ${e.seq}: before is the row as it was`);
      if (e.op === 'delete') assert.equal(e.after, undefined);
      last.set(key, e);
    }
    const kv = events.filter((e) => e.table === 'kv' && e.op !== 'insert');
    assert.equal(kv.length, 6);
    assert.ok(kv.every((e) => e.before === undefined));
  });

  test('table allowlist is case-insensitive; op filter; events name the table as SQLite does', async () => {
    const path = join(dir.path, 'filters.db');
    await app(path, 'setup');
    const picky = await changes({ db: path, tables: ['ITEMS', 'Kv'] });
    const deletes = await changes({ db: path, ops: ['delete'] });
    await app(path, 'insert', 4, 1);
    await app(path, 'update', 4, 1);
    await app(path, 'delete', 2, 1);
    const selected = await collect(picky, (seen) => seen.filter((e) => e.op === 'delete').length === 4);
    assert.deepEqual([...new Set(selected.map((e) => e.table))].sort(), ['items', 'kv']);
    assert.equal(selected.length, 4 * 2 + 4 * 2 + 2 * 2);
    const deleted = await collect(deletes, (seen) => seen.length === 2 * TABLES.length);
    assert.ok(deleted.every((e) => e.op === 'delete' && e.after === undefined));
  });

  test('from: resumes right after a seq, including changes made while no subscriber ran', async () => {
    const path = join(dir.path, 'from.db');
    await app(path, 'setup');
    const first = await changes({ db: path, tables: ['items'] });
    await app(path, 'insert', 10, 1);
    const seen = await collect(first, (events) => events.length === 10);
    await app(path, 'update', 10, 1);
    const resumed = await collect(await changes({ db: path, tables: ['items'], from: seen[3]!.seq }), (events) => events.length === 16);
    assert.deepEqual(
      resumed.map((e) => [e.op, e.key.id]),
      [...seen.slice(4).map((e) => [e.op, e.key.id]), ...Array.from({ length: 10 }, (_, i) => ['update', BigInt(i + 1)])],
    );
  });

  test("on the app's own driver: its commits arrive, its open or rolled-back transaction never", async () => {
    const path = join(dir.path, 'shared.db');
    await app(path, 'setup');
    const db = BetterSqlite3Driver.open(path);
    try {
      const stream = await changes({ db, tables: ['items'], pollIntervalMs: 5 });
      const rollback = new Error('rolled back on purpose');
      const aborted = db.writeTransaction(async (tx) => {
        await tx.run("INSERT INTO items (id, name) VALUES (1, 'never')");
        // Several polls come due while the transaction is open; the driver holds them until it ends.
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw rollback;
      });
      await assert.rejects(aborted, rollback);
      await db.run("INSERT INTO items (id, name) VALUES (2, 'kept')");
      const events = await collect(stream, (seen) => seen.length === 1);
      assert.deepEqual(events.map((e) => [e.op, e.key.id, e.after!.name]), [['insert', 2n, 'kept']]);
      assert.deepEqual(await db.get('SELECT 1 AS one'), { one: 1n }, 'the stream leaves a driver it was given open');
    } finally {
      await db.close();
    }
  });
});
