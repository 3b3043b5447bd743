import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uninstallCapture } from '../../src/cloud/shared/uninstall.js';
import type { Store } from '../../src/cloud/store/store.js';
import { runSyncline } from '../support/processes.js';
import { startSharedServer } from '../support/shared-fixtures.js';
import { describeEachStore, openTestStore, postgresReachable } from '../support/stores.js';

/** `syncline admin shared uninstall`: capture triggers and functions go, every row stays. */

const captureObjects = async (store: Store) =>
  (
    await store.query<{ n: string }>(
      `SELECT ((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'syncline\\_capture\\_%') + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'syncline\\_capture\\_%'))::text AS n`,
    )
  ).rows[0]!.n;

const bundles = async (store: Store, scope: string) => (await store.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_bundles WHERE scope = $1', [scope])).rows[0]!.n;

describeEachStore('shared sync: uninstalling capture', (ctx) => {
  test('removes the triggers and functions from every shared table and keeps the data; a later start installs them again', async () => {
    const server = await startSharedServer(ctx.store);
    await server.stop();
    await ctx.store.query(`INSERT INTO syncline_shared.catalog (_syncline_scope, sku, price) VALUES ('u', 'a', 1.5)`);
    assert.equal(await bundles(ctx.store, 'u'), '1');
    assert.ok(Number(await captureObjects(ctx.store)) > 0);
    const result = await uninstallCapture(ctx.store);
    assert.ok(result.tables.includes('syncline_shared.catalog'), JSON.stringify(result));
    assert.equal(await captureObjects(ctx.store), '0');
    // Writes are no longer captured (Syncline's columns are then the writer's to fill), and nothing was lost.
    await ctx.store.query(`INSERT INTO syncline_shared.catalog (_syncline_scope, sku, price, _syncline_key, _syncline_version, _syncline_source, _syncline_hlc) VALUES ('u', 'b', 2, '["b"]', 0, 'x', 'x')`);
    assert.equal(await bundles(ctx.store, 'u'), '1');
    assert.deepEqual((await ctx.store.query(`SELECT sku FROM syncline_shared.catalog WHERE _syncline_scope = 'u' ORDER BY sku`)).rows, [{ sku: 'a' }, { sku: 'b' }]);
    assert.deepEqual(await uninstallCapture(ctx.store), { tables: [], functions: 0, bookkeeping_removed: [] });
    // Tables Syncline created keep their columns: they are Syncline's own.
    assert.equal((await ctx.store.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'syncline_shared' AND table_name = 'catalog' AND column_name = '_syncline_key'`)).rows[0]!.n, 1);
    const again = await startSharedServer(ctx.store);
    await again.stop();
    assert.ok(Number(await captureObjects(ctx.store)) > 0);
  });
});

test('the CLI uninstalls from a real PostgreSQL', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, async () => {
  const db = await openTestStore('postgres');
  try {
    const server = await startSharedServer(db.store);
    await server.stop();
    const run = await runSyncline(['admin', 'shared', 'uninstall', '--json'], { DATABASE_URL: db.url! });
    assert.equal(run.code, 0, run.stderr);
    const answer = JSON.parse(run.stdout) as { tables: string[]; functions: number };
    assert.ok(answer.tables.includes('syncline_shared.folders') && answer.functions > 0, run.stdout);
    assert.equal(await captureObjects(db.store), '0');
  } finally {
    await db.close();
  }
});
