import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { tempDir } from '../support/temp.js';

let dir: ReturnType<typeof tempDir>;
let counter = 0;
before(() => {
  dir = tempDir('syncline-driver-');
});
after(() => dir.remove());

async function openFresh(ddl = 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)'): Promise<{ driver: BetterSqlite3Driver; path: string }> {
  const path = join(dir.path, `f${++counter}.db`);
  const driver = BetterSqlite3Driver.open(path, { create: true });
  await driver.exec(ddl);
  return { driver, path };
}

test('values cross in one form: INTEGER bigint (64-bit exact), REAL number, TEXT, BLOB a plain Uint8Array, NULL', async () => {
  const { driver } = await openFresh('CREATE TABLE v (i INTEGER, r REAL, s TEXT, b BLOB, n)');
  const big = 2n ** 62n + 1n;
  await driver.run('INSERT INTO v VALUES (?, ?, ?, ?, ?)', [big, 1.5, 'é', new Uint8Array([0, 255, 7]), null]);
  await driver.run('INSERT INTO v VALUES (?, ?, ?, ?, ?)', [true, 2, 'x', new Uint8Array(0), false]);
  const rows = await driver.all('SELECT i, r, s, b, n FROM v ORDER BY rowid');
  assert.equal(rows[0]!.i, big);
  assert.equal(rows[0]!.r, 1.5);
  assert.equal(rows[0]!.s, 'é');
  assert.equal(Object.getPrototypeOf(rows[0]!.b), Uint8Array.prototype);
  assert.deepEqual([...(rows[0]!.b as Uint8Array)], [0, 255, 7]);
  assert.equal(rows[0]!.n, null);
  assert.equal(rows[1]!.i, 1n);
  assert.equal(rows[1]!.n, 0n);
  assert.equal(rows[1]!.r, 2);
  const result = await driver.run('INSERT INTO v (i) VALUES (3)');
  assert.deepEqual(result, { changes: 1, lastInsertRowid: 3n });
  assert.equal(await driver.get('SELECT 1 AS one WHERE 0'), undefined);
  await driver.close();
});

test('a write transaction holds the write lock from BEGIN and keeps calls from outside it waiting while it awaits', async () => {
  const { driver, path } = await openFresh();
  const other = new Database(path, { timeout: 0 });
  const order: string[] = [];
  let otherError: unknown;
  const transaction = driver.writeTransaction(async (tx) => {
    // BEGIN IMMEDIATE took the lock before any write: another connection cannot write now.
    try {
      other.prepare(`INSERT INTO t (v) VALUES ('other')`).run();
    } catch (error) {
      otherError = error;
    }
    await tx.run(`INSERT INTO t (v) VALUES ('tx-1')`);
    await delay(30);
    await tx.run(`INSERT INTO t (v) VALUES ('tx-2')`);
    order.push('tx');
    return 'done';
  });
  // Issued while the transaction awaits: it lands after the transaction's writes, not between them.
  const outside = driver.run(`INSERT INTO t (v) VALUES ('outside')`);
  const second = driver.writeTransaction(async (tx) => {
    order.push('second');
    return tx.all<{ v: string }>('SELECT v FROM t ORDER BY id');
  });
  assert.equal(await transaction, 'done');
  const seen = await second;
  await outside;
  assert.equal((otherError as { code?: string }).code, 'SQLITE_BUSY');
  assert.deepEqual(order, ['tx', 'second']);
  assert.deepEqual(
    seen.map((r) => r.v),
    ['tx-1', 'tx-2', 'outside'],
  );
  other.close();
  await driver.close();
});

test('a throw inside a write transaction rolls it back, rethrows, and leaves the driver usable', async () => {
  const { driver } = await openFresh();
  await driver.run(`INSERT INTO t (v) VALUES ('kept')`);
  await assert.rejects(
    driver.writeTransaction(async (tx) => {
      await tx.run(`INSERT INTO t (v) VALUES ('gone')`);
      await delay(5);
      throw new Error('app failure');
    }),
    /app failure/,
  );
  assert.equal(driver.database.inTransaction, false);
  assert.deepEqual(await driver.all('SELECT v FROM t'), [{ v: 'kept' }]);
  assert.equal(await driver.writeTransaction(async (tx) => (await tx.run(`INSERT INTO t (v) VALUES ('after')`)).changes), 1);
  await driver.close();
});

test('a COMMIT refused by a deferred foreign key rolls back instead of leaving the transaction open', async () => {
  const { driver } = await openFresh(`CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)`);
  await driver.exec('PRAGMA foreign_keys = ON');
  await assert.rejects(
    driver.writeTransaction(async (tx) => {
      await tx.run('INSERT INTO c VALUES (1, 42)');
    }),
    (error: Error & { code?: string }) => error.code === 'SQLITE_CONSTRAINT_FOREIGNKEY',
  );
  assert.equal(driver.database.inTransaction, false);
  assert.deepEqual(await driver.all('SELECT * FROM c'), []);
  await driver.close();
});

test('a read transaction sees one snapshot while another connection commits', async () => {
  const { driver, path } = await openFresh();
  await driver.run(`INSERT INTO t (v) VALUES ('a')`);
  const other = new Database(path);
  const counts = await driver.readTransaction(async (tx) => {
    const first = await tx.get<{ n: bigint }>('SELECT count(*) AS n FROM t');
    other.prepare(`INSERT INTO t (v) VALUES ('b')`).run();
    await delay(5);
    const second = await tx.get<{ n: bigint }>('SELECT count(*) AS n FROM t');
    return [first!.n, second!.n];
  });
  assert.deepEqual(counts, [1n, 1n]);
  assert.deepEqual(await driver.get('SELECT count(*) AS n FROM t'), { n: 2n });
  other.close();
  await driver.close();
});

test('statements are cached and evicted past the cache size without failing', async () => {
  const { driver } = await openFresh();
  for (let i = 0; i < 600; i++) await driver.run(`INSERT INTO t (id, v) VALUES (?, 'v${i}')`, [BigInt(i)]);
  for (let i = 0; i < 3; i++) await driver.run(`INSERT INTO t (id, v) VALUES (?, 'v0')`, [BigInt(1000 + i)]);
  assert.deepEqual(await driver.get('SELECT count(*) AS n FROM t'), { n: 603n });
  await driver.close();
});

test('opening a missing file without create is a typed error', () => {
  assert.throws(() => BetterSqlite3Driver.open(join(dir.path, 'missing.db')), (error: Error & { code?: string }) => error.code === 'capture_failed');
});

test("watch hints at another connection's commit, and stops when asked", async () => {
  const { driver, path } = await openFresh();
  let hints = 0;
  const unwatch = driver.watch((): void => void hints++);
  assert.ok(unwatch, 'a WAL file can be watched');
  const other = new Database(path);
  other.prepare(`INSERT INTO t (v) VALUES ('x')`).run();
  const deadline = Date.now() + 5000;
  while (hints === 0 && Date.now() < deadline) await delay(5);
  assert.ok(hints > 0, 'the commit was hinted');
  unwatch();
  await delay(50);
  const before = hints;
  other.prepare(`INSERT INTO t (v) VALUES ('y')`).run();
  await delay(100);
  assert.equal(hints, before, 'no hints after unwatch');
  other.close();
  await driver.close();
});
