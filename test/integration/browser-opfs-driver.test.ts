import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { replay, rowText } from './change-stream-support.js';
import { buildBrowserBundle, chromiumMissing, launchChromium, servePages, type PageServer } from '../support/browser.js';

// The browser adapter end to end: the real bundle (dist/browser layout), SQLite
// WASM in a dedicated Worker on OPFS, in real Chromium.
const PAGE = `<!doctype html><meta charset="utf-8"><title>driver</title>
<script type="module">import * as syncline from '/client.js'; window.syncline = syncline; document.title = 'ready';</script>`;

// An app's own worker: the database opens right there (no worker of its own, no message per statement).
const IN_WORKER = `import { OpfsDriver } from '/client.js';
globalThis.Worker = undefined; // so a nested worker could not stand in for the in-place path
const db = await OpfsDriver.open({ name: 'in-worker.db' });
await db.exec('CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)');
await db.writeTransaction(async (tx) => { for (let i = 0; i < 1000; i++) await tx.run('INSERT OR REPLACE INTO t VALUES (?, ?)', [BigInt(i), new Uint8Array([i % 256])]); });
const row = await db.get('SELECT count(*) AS n, sum(k) AS s, typeof(max(v)) AS blob FROM t');
const duplicate = await db.run('INSERT INTO t VALUES (1, NULL)').catch((error) => error.code);
await db.close();
postMessage({ n: String(row.n), s: typeof row.s + ' ' + String(row.s), blob: row.blob, duplicate });`;

describe('OPFS SQLite driver in Chromium', { skip: chromiumMissing }, () => {
  let bundle: { path: string; remove(): void };
  let pages: PageServer;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    bundle = buildBrowserBundle();
    pages = await servePages(bundle.path, { '/': PAGE, '/in-worker.js': IN_WORKER });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await pages?.close();
    bundle?.remove();
  });

  async function ready(page: Page): Promise<void> {
    await page.goto(pages.url);
    await page.waitForFunction('document.title === "ready"');
  }

  test('a database written before a reload is there after it, values in their storage class', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await ready(page);
    const wrote = await page.evaluate(async () => {
      const { OpfsDriver } = (globalThis as any).syncline;
      const db = await OpfsDriver.open({ name: 'notes.db' });
      await db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, big INTEGER, ratio REAL, body TEXT, data BLOB, anything)');
      const run = await db.run('INSERT INTO notes (big, ratio, body, data, anything) VALUES (?, ?, ?, ?, ?)', [2n ** 62n + 1n, 2, 'héllo ✓', new Uint8Array([0, 1, 250, 255]), 3]);
      await db.run('INSERT INTO notes (big, ratio, body, data, anything) VALUES (?, ?, ?, ?, ?)', [-(2n ** 63n), 0.5, '', new Uint8Array([]), true]);
      await db.run('INSERT INTO notes (big, ratio, body, data, anything) VALUES (?, ?, ?, ?, ?)', [null, 2.5, null, null, 2 ** 60]);
      await db.close();
      return { changes: run.changes, rowid: String(run.lastInsertRowid), rowidType: typeof run.lastInsertRowid };
    });
    assert.deepEqual(wrote, { changes: 1, rowid: '1', rowidType: 'bigint' });

    await page.reload();
    await page.waitForFunction('document.title === "ready"');
    const read = await page.evaluate(async () => {
      const { OpfsDriver } = (globalThis as any).syncline;
      const db = await OpfsDriver.open({ name: 'notes.db' });
      const rows = await db.all('SELECT id, big, ratio, body, data, anything, typeof(anything) AS stored FROM notes ORDER BY id');
      await db.close();
      // (No named helper functions in here: the test loader would wrap them in a __name the page lacks.)
      return rows.map((row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Uint8Array ? { blob: [...v] } : { [typeof v]: v === null ? null : String(v) }])));
    });
    assert.deepEqual(read, [
      { id: { bigint: '1' }, big: { bigint: String(2n ** 62n + 1n) }, ratio: { number: '2' }, body: { string: 'héllo ✓' }, data: { blob: [0, 1, 250, 255] }, anything: { bigint: '3' }, stored: { string: 'integer' } },
      { id: { bigint: '2' }, big: { bigint: String(-(2n ** 63n)) }, ratio: { number: '0.5' }, body: { string: '' }, data: { blob: [] }, anything: { bigint: '1' }, stored: { string: 'integer' } },
      // A whole number past 2^53 binds as REAL, as the better-sqlite3 adapter binds it.
      { id: { bigint: '3' }, big: { object: null }, ratio: { number: '2.5' }, body: { object: null }, data: { object: null }, anything: { number: String(2 ** 60) }, stored: { string: 'real' } },
    ]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('transactions: a throw rolls back, calls from outside wait their turn, SQLite errors keep their code', async () => {
    const page = await browser.context.newPage();
    await ready(page);
    const result = await page.evaluate(async () => {
      const { OpfsDriver } = (globalThis as any).syncline;
      const db = await OpfsDriver.open({ name: 'tx.db' });
      await db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)');
      const order: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const tx = db.writeTransaction(async (t: any) => {
        await t.run('INSERT INTO t VALUES (?, ?)', ['a', 1n]);
        await held;
        order.push('tx end');
      });
      const outside = db.get('SELECT count(*) AS n FROM t').then((row: any) => order.push(`outside saw ${row.n}`));
      await new Promise((resolve) => setTimeout(resolve, 50));
      release();
      await Promise.all([tx, outside]);
      const failed = await db
        .writeTransaction(async (t: any) => {
          await t.run('INSERT INTO t VALUES (?, ?)', ['b', 2n]);
          throw new Error('app says no');
        })
        .catch((error: Error) => error.message);
      const duplicate = await db.run('INSERT INTO t VALUES (?, ?)', ['a', 9n]).catch((error: any) => error.code);
      const wrongArity = await db.run('INSERT INTO t VALUES (?, ?)', ['z']).catch((error: Error) => error.message);
      const inRead = await db.readTransaction(async (t: any) => (await t.all('SELECT k FROM t ORDER BY k')).map((r: any) => r.k));
      await db.close();
      const closed = await db.all('SELECT 1').catch((error: Error) => error.message);
      return { order, failed, duplicate, wrongArity, inRead, closed };
    });
    assert.deepEqual(result.order, ['tx end', 'outside saw 1']);
    assert.equal(result.failed, 'app says no');
    assert.equal(result.duplicate, 'SQLITE_CONSTRAINT_PRIMARYKEY');
    assert.match(result.wrongArity, /takes 2 parameters, 1 given/);
    assert.deepEqual(result.inRead, ['a']);
    assert.match(result.closed, /tx\.db is closed/);
    await page.close();
  });

  test('a change stream bootstraps from a snapshot while the page keeps writing: every row once, then the changes after it', async () => {
    const page = await browser.context.newPage();
    await ready(page);
    const result = await page.evaluate(async () => {
      const { OpfsDriver, changes } = (globalThis as any).syncline;
      const db = await OpfsDriver.open({ name: 'stream.db' });
      await db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)');
      await db.writeTransaction(async (tx: any) => {
        for (let i = 1; i <= 300; i++) await tx.run('INSERT INTO items VALUES (?, ?)', [i, `row ${i}`]);
      });
      // A small buffer paces the snapshot, so most of it is still to be taken while the page writes
      // below; the long poll interval means only takes drive reading (a pause is no stalled subscriber).
      const stream = await changes({ db, tables: ['items'], snapshot: true, maxBuffered: 20, pollIntervalMs: 60_000 });
      const iterator = stream[Symbol.asyncIterator]();
      const events: any[] = [(await iterator.next()).value];
      // The page's own writes on the one connection: they must not wait for the snapshot to be taken.
      const writes = (async () => {
        for (let i = 1; i <= 60; i++) {
          await db.run('INSERT INTO items VALUES (?, ?)', [1000 + i, `new ${i}`]);
          await db.run('UPDATE items SET v = ? WHERE id = ?', [`changed ${i}`, 300 - i]);
          await db.run('DELETE FROM items WHERE id = ?', [i]);
        }
      })();
      const wrote = await Promise.race([writes.then(() => 'wrote'), new Promise((resolve) => setTimeout(() => resolve('held up'), 20_000))]);
      const last = Number((await db.get('SELECT max(seq) AS seq FROM _syncline_journal')).seq);
      while (events.at(-1).seq < last) events.push((await iterator.next()).value);
      await stream.close();
      const rows = await db.all('SELECT id, v FROM items ORDER BY id');
      await db.close();
      // (No named helper functions in here: the test loader would wrap them in a __name the page lacks.)
      return {
        wrote,
        snapshotSeq: stream.snapshotSeq as number,
        events: events.map((e) => ({ op: e.op, seq: e.seq, origin: e.origin, id: String(e.key.id), v: e.after?.v as string | undefined })),
        rows: rows.map((row: any) => ({ id: String(row.id), v: row.v as string })),
      };
    });
    assert.equal(result.wrote, 'wrote', "the page's writes went through while the snapshot was being taken");
    const events = result.events.map(({ id, v, ...e }) => ({ ...e, table: 'items', key: { id: BigInt(id) }, ...(v === undefined ? {} : { after: { id: BigInt(id), v } }), at: 0 }) as ChangeEvent);
    const bootstrap = events.filter((e) => e.op === 'snapshot');
    assert.equal(bootstrap.length, 300);
    assert.ok(bootstrap.every((e) => e.seq === result.snapshotSeq));
    assert.equal(events.length, 300 + 180, "then each of the page's writes once");
    assert.ok(events.slice(300).every((e) => e.seq > result.snapshotSeq && e.origin === 'local'));
    const state = new Map(result.rows.map(({ id, v }: { id: string; v: string }) => [rowText({ id: BigInt(id) }), rowText({ id: BigInt(id), v })]));
    assert.deepEqual(replay(events, result.snapshotSeq).get('items'), state);
    await page.close();
  });

  test("inside an app's dedicated worker the database opens in place, with the same values and errors", async () => {
    const page = await browser.context.newPage();
    await ready(page);
    const result = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const worker = new (globalThis as any).Worker('/in-worker.js', { type: 'module' });
          worker.onmessage = (event: { data: unknown }) => resolve(event.data);
          worker.onerror = (event: { message: string }) => reject(new Error(event.message));
        }),
    );
    assert.deepEqual(result, { n: '1000', s: 'bigint 499500', blob: 'blob', duplicate: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    await page.close();
  });
});
