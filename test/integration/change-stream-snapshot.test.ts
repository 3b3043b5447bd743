import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { listCheckpoints } from '../../src/device/change-stream/checkpoint-store.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteQueryable } from '../../src/device/driver/sqlite-driver.js';
import { maxJournalSeq } from '../../src/device/journal/journal-state.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { APP, app, assertInCommitOrder, collect, replay, tableState } from './change-stream-support.js';

const UNICODE_TABLE = 'ünïcødé "tåble", 1';

function journalMax(path: string, table?: string): number {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare(`SELECT max(seq) AS seq FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id ${table ? 'WHERE tbl = ?' : ''}`).get(...(table ? [table] : [])) as { seq: number | null };
    return row.seq ?? 0;
  } finally {
    db.close();
  }
}

/**
 * The app's file through the better-sqlite3 adapter, with one twist: before every
 * statement run inside a read transaction, `write` lets the app commit on a
 * connection of its own. A bootstrap whose rows and journal position are not read
 * in one read transaction then meets a commit between the two, every time.
 * (Without `values`, so the readers' fallback to `all` runs too.)
 */
class AppCommitsBetweenReads extends BetterSqlite3Driver {
  readonly #write: () => void;

  constructor(path: string, write: () => void) {
    super(BetterSqlite3Driver.open(path).database, path);
    this.#write = write;
  }

  override readTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    return super.readTransaction((tx) =>
      fn({
        all: (sql, params) => (this.#write(), tx.all(sql, params)),
        get: (sql, params) => (this.#write(), tx.get(sql, params)),
        run: (sql, params) => (this.#write(), tx.run(sql, params)),
        exec: (sql) => (this.#write(), tx.exec(sql)),
      }),
    );
  }
}

describe('change stream: snapshot bootstrap', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-stream-snapshot-');
  });
  after(() => dir.remove());

  test('every row exactly once while another process writes during the bootstrap', async () => {
    const path = join(dir.path, 'concurrent.db');
    await app(path, 'setup');
    await app(path, 'insert', 300, 1);
    // A small buffer paces the snapshot, so its rows are still being taken while the writer
    // runs; the long poll interval means only the consumer's takes drive reading, so pausing
    // the consumer here cannot count as a stalled subscriber.
    const stream = await changes({ db: path, tables: ['items'], snapshot: true, maxBuffered: 20, pollIntervalMs: 60_000 });
    const snapshotSeq = stream.snapshotSeq!;
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal(first.done, false);
    const writer = await finished(spawnScript(APP, [path, 'churn', '1500', '7']));
    assert.equal(writer.code, 0, writer.stderr);
    const lastSeq = journalMax(path, 'items');
    assert.ok(lastSeq > snapshotSeq + 1000, 'the writer committed while the snapshot was still being read');
    const events = [first.value as ChangeEvent];
    while (events.at(-1)!.seq < lastSeq) {
      const next = await iterator.next();
      assert.equal(next.done, false, 'the stream ended early');
      events.push(next.value as ChangeEvent);
    }
    await stream.close();
    assertInCommitOrder(events);
    const snapshotRows = events.filter((e) => e.seq === snapshotSeq);
    assert.equal(snapshotRows.length, 300);
    assert.ok(snapshotRows.every((e) => e.op === 'snapshot'));
    assert.ok(events.slice(300).every((e) => e.seq > snapshotSeq && e.op !== 'snapshot'), 'then only live changes');
    assert.deepEqual(replay(events, snapshotSeq).get('items'), await tableState(path, 'items'));
  });

  test('rows and position come from one read transaction: the app commits between every two of its statements', async () => {
    const path = join(dir.path, 'interleaved.db');
    await app(path, 'setup');
    await app(path, 'insert', 40, 1);
    const writer = new Database(path);
    writer.pragma('busy_timeout = 5000');
    let commits = 0;
    // Each commit inserts an item and a kv row, updates one and deletes one of each: a gap or a duplicate shows in either table.
    const write = () => {
      const i = ++commits;
      writer.transaction(() => {
        writer.prepare('INSERT INTO items (id, name, price, qty, data) VALUES (?, ?, ?, ?, ?)').run(1000 + i, `new ${i}`, i / 2, i, Buffer.from([i]));
        writer.prepare('UPDATE items SET name = ? WHERE id = ?').run(`changed ${i}`, 40 - (i % 20));
        writer.prepare('DELETE FROM items WHERE id = ?').run(i);
      })();
      writer.prepare('INSERT INTO kv VALUES (?, ?)').run(`new ${i}`, i);
      writer.prepare('UPDATE kv SET v = ? WHERE k = ?').run(`changed ${i}`, `k${40 - (i % 20)}`);
      writer.prepare('DELETE FROM kv WHERE k = ?').run(`k${i}`);
    };
    let recording = false;
    const driver = new AppCommitsBetweenReads(path, () => recording && write());
    try {
      // Capture is installed first; only the bootstrap's transaction lets the app in.
      await (await changes({ db: driver, tables: ['items', 'kv'] })).close();
      recording = true;
      const stream = await changes({ db: driver, tables: ['items', 'kv'], snapshot: true });
      recording = false;
      assert.ok(commits >= 5, `the app committed ${commits} times during the bootstrap`);
      const snapshotSeq = stream.snapshotSeq!;
      const lastSeq = journalMax(path);
      const events = await collect(stream, (seen) => seen.at(-1)?.seq === lastSeq);
      assertInCommitOrder(events);
      assert.ok(events.some((e) => e.seq > snapshotSeq), 'commits made inside the transaction follow as live changes');
      const rebuilt = replay(events, snapshotSeq);
      for (const table of ['items', 'kv']) assert.deepEqual(rebuilt.get(table), await tableState(path, table), table);
    } finally {
      await driver.close();
      writer.close();
    }
  });

  test('every kind of table: composite, WITHOUT ROWID, rowid, unicode; values keep their storage class', async () => {
    const path = join(dir.path, 'kinds.db');
    await app(path, 'setup');
    await app(path, 'insert', 12, 1);
    const stream = await changes({ db: path, snapshot: true });
    const snapshotSeq = stream.snapshotSeq!;
    await app(path, 'update', 4, 1);
    await app(path, 'rekey', 2, 1);
    await app(path, 'delete', 2, 9);
    const lastSeq = journalMax(path);
    const events = await collect(stream, (seen) => seen.at(-1)?.seq === lastSeq);
    const rebuilt = replay(events, snapshotSeq);
    for (const table of ['items', 'order_lines', 'kv', 'log_lines', UNICODE_TABLE]) assert.deepEqual(rebuilt.get(table), await tableState(path, table), table);
    const big = events.find((e) => e.op === 'snapshot' && e.table === 'items' && e.key.id === 5n)!;
    assert.equal(big.after!.qty, 9223372036854775807n);
    assert.deepEqual(big.after!.data, new Uint8Array([5, 0, 255, 0]));
    assert.deepEqual(events.find((e) => e.table === 'log_lines')!.key, { rowid: 1n });
  });

  test("snapshot 'initial' bootstraps a new checkpoint once; a bootstrap left halfway starts over", async () => {
    const path = join(dir.path, 'initial.db');
    await app(path, 'setup');
    await app(path, 'insert', 30, 1);
    const options = { db: path, tables: ['items'], snapshot: 'initial', checkpoint: 'indexer', maxBuffered: 8, checkpointIntervalMs: 0 } as const;

    const half = await collect(await changes(options), (seen) => seen.length === 10);
    assert.ok(half.every((e) => e.op === 'snapshot'));
    const db = BetterSqlite3Driver.open(path);
    try {
      assert.deepEqual(await listCheckpoints(db), [], 'half a snapshot stores no checkpoint, and close drops the guard');
    } finally {
      await db.close();
    }

    const first = await changes(options);
    const snapshotSeq = first.snapshotSeq!;
    const full = await collect(first, (seen) => seen.length === 30);
    assert.ok(full.every((e) => e.op === 'snapshot' && e.seq === snapshotSeq));
    await app(path, 'insert', 2, 31);

    const second = await changes(options);
    assert.equal(second.snapshotSeq, undefined, 'the checkpoint exists: no second bootstrap');
    const resumed = await collect(second, (seen) => seen.length === 2);
    assert.deepEqual(resumed.map((e) => [e.op, e.key.id]), [['insert', 31n], ['insert', 32n]]);
    const check = BetterSqlite3Driver.open(path);
    try {
      assert.deepEqual((await listCheckpoints(check)).map((c) => [c.name, c.seq]), [['indexer', await maxJournalSeq(check)]]);
    } finally {
      await check.close();
    }
  });
});
