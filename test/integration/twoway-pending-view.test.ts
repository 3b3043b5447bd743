import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { join } from 'node:path';
import { sharedTableSchema } from '../../src/protocol/shared-sync.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { readPending, settleKey } from '../../src/device/twoway/pending-view.js';
import { installSharedCapture, pushedSchemas } from '../../src/device/twoway/shared-capture.js';
import { ensureSharedSchema, withRemoteApply } from '../../src/device/twoway/shared-state.js';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { tempDir } from '../support/temp.js';

/** The pending view read from the one journal, on a real file through the driver two-way sync uses. */

const items = sharedTableSchema.parse({ name: 'items', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'v', type: 'TEXT' }] });
const prices = sharedTableSchema.parse({ name: 'prices', direction: 'down', key: ['sku'], columns: [{ name: 'sku', type: 'TEXT' }, { name: 'p', type: 'REAL' }] });

describe('two-way pending view', () => {
  const dir = tempDir();
  after(() => dir.remove());

  async function file(name: string): Promise<BetterSqlite3Driver> {
    const driver = BetterSqlite3Driver.open(join(dir.path, name), { create: true });
    await ensureSharedSchema(driver);
    await driver.exec("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, v TEXT); INSERT INTO items VALUES ('old', 'was here')");
    await installSharedCapture(driver, [items, prices]);
    return driver;
  }

  const view = async (driver: BetterSqlite3Driver, pushed = 0n) =>
    [...((await readPending(driver, await pushedSchemas(driver, [items, prices]), pushed)).get('items') ?? new Map()).entries()].map(([key, c]) => [key, c.base]).sort();

  test('one entry per key with the row before its first write; a key change leaves the old key deleted and the new one from nothing', async () => {
    const driver = await file('keys.db');
    try {
      assert.deepEqual(await view(driver), [["'old'", null]], 'rows from before capture are pending as new');
      const installed = (await driver.get<{ seq: bigint }>('SELECT max(seq) AS seq FROM _syncline_journal'))!.seq;
      await driver.exec("INSERT INTO items VALUES ('a', '1'); UPDATE items SET v = '2' WHERE id = 'a'; UPDATE items SET v = 'new' WHERE id = 'old'; UPDATE items SET id = 'b' WHERE id = 'old'");
      assert.deepEqual(await view(driver, installed), [
        ["'a'", null],
        ["'b'", null],
        ["'old'", "'old','was here'"],
      ]);
    } finally {
      await driver.close();
    }
  });

  test('remote applies are journaled as remote and never pending; a settled key restarts from its settlement', async () => {
    const driver = await file('remote.db');
    try {
      const start = (await driver.get<{ seq: bigint }>('SELECT max(seq) AS seq FROM _syncline_journal'))!.seq;
      await withRemoteApply(driver, async (tx) => {
        await tx.run("INSERT INTO items VALUES ('r', 'remote')");
        await tx.run("INSERT INTO prices VALUES ('s', 1.5)");
      });
      assert.deepEqual(await view(driver, start), []);
      assert.deepEqual((await driver.all('SELECT origin FROM _syncline_journal WHERE seq > ?', [start])).map((r) => r.origin), ['R', 'R']);
      await assert.rejects(driver.run("INSERT INTO prices VALUES ('t', 2)"), /syncs down only/, 'the guard refuses local writes to a down table');

      await driver.exec("UPDATE items SET v = 'mine' WHERE id = 'r'");
      assert.deepEqual(await view(driver, start), [["'r'", "'r','remote'"]]);
      // The remote won: the local change is no longer pending, until the app writes the key again.
      await withRemoteApply(driver, (tx) => settleKey(tx, 'items', "'r'", { pending: false }));
      assert.deepEqual(await view(driver, start), []);
      await driver.exec("UPDATE items SET v = 'again' WHERE id = 'r'");
      assert.deepEqual(await view(driver, start), [["'r'", "'r','mine'"]]);
      // Rebased: pending on the remote row as its base, with no new write needed.
      await withRemoteApply(driver, (tx) => settleKey(tx, 'items', "'r'", { pending: true, base: "'r','theirs'", ms: 1n }));
      assert.deepEqual(await view(driver, start), [["'r'", "'r','theirs'"]]);
    } finally {
      await driver.close();
    }
  });

  test('a table edge capture had is taken over by two-way sync: one set of triggers, the two-way one, and edge capture lets it be', async () => {
    const path = join(dir.path, 'takeover.db');
    const before = BetterSqlite3Driver.open(path, { create: true });
    await before.exec("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, v TEXT); INSERT INTO items VALUES ('e', 'edge')");
    await before.close();
    const edge = BetterSqlite3Driver.open(path);
    assert.deepEqual((await ensureCapture(edge)).installed, ['items']);
    const driver = BetterSqlite3Driver.open(path);
    try {
      await ensureSharedSchema(driver);
      await installSharedCapture(driver, [items]);
      assert.deepEqual((await ensureCapture(edge)).released, ['items']);
      assert.deepEqual((await ensureCapture(edge)).released, [], 'and it stays so');
      assert.equal((await edge.get<{ n: bigint }>("SELECT count(*) AS n FROM _syncline_tables WHERE name = 'items'"))!.n, 0n);
      const triggers = (await edge.all<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'")).map((r) => r.sql);
      assert.equal(triggers.length, 3);
      for (const sql of triggers) assert.match(sql, /julianday/, 'the triggers are two-way capture\'s (they stamp the write time)');
      await edge.exec("UPDATE items SET v = 'shared' WHERE id = 'e'");
      assert.deepEqual(await view(driver), [["'e'", null]]);
    } finally {
      await edge.close();
      await driver.close();
    }
  });
});
