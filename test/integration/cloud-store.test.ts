import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIGRATIONS, migrate, type Migration } from '../../src/cloud/store/migrations.js';
import { openStore } from '../../src/cloud/store/open-store.js';
import { PostgresStore } from '../../src/cloud/store/postgres-store.js';
import { lostToConcurrency, transactionWithRetry } from '../../src/cloud/store/store.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { describeEachStore, openTestStore, postgresReachable } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

describeEachStore('store', (ctx) => {
  test('migrations are applied once; running them again changes nothing', async () => {
    const again = await migrate(ctx.store);
    assert.deepEqual(again, { applied: [], current: MIGRATIONS.at(-1)!.version });
    const { rows } = await ctx.store.query<{ version: number; name: string }>('SELECT version, name FROM syncline_migrations ORDER BY version');
    assert.deepEqual(rows, MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    const project = await ctx.store.query('SELECT id, org_id FROM projects');
    assert.deepEqual(project.rows, [{ id: 'default', org_id: 'default' }]);
  });

  test('a new migration version is applied on its own; an unknown newer database is refused', async () => {
    const extra: Migration = { version: MIGRATIONS.at(-1)!.version + 1, name: 'test extra', sql: 'CREATE TABLE test_extra (x int); INSERT INTO test_extra VALUES (1);' };
    try {
      assert.deepEqual((await migrate(ctx.store, { migrations: [...MIGRATIONS, extra] })).applied, [extra.version]);
      assert.deepEqual((await migrate(ctx.store, { migrations: [...MIGRATIONS, extra] })).applied, []);
      await assert.rejects(migrate(ctx.store), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
    } finally {
      await ctx.store.exec(`DROP TABLE IF EXISTS test_extra; DELETE FROM syncline_migrations WHERE version = ${extra.version};`);
    }
  });

  test('a failing migration leaves nothing behind', async () => {
    const broken: Migration = { version: MIGRATIONS.at(-1)!.version + 1, name: 'broken', sql: 'CREATE TABLE half_done (x int); SELECT no_such_function();' };
    await assert.rejects(migrate(ctx.store, { migrations: [...MIGRATIONS, broken] }));
    const { rows } = await ctx.store.query<{ t: string | null; v: string }>("SELECT to_regclass('half_done')::text AS t, (SELECT max(version) FROM syncline_migrations)::text AS v");
    assert.deepEqual(rows, [{ t: null, v: String(MIGRATIONS.at(-1)!.version) }]);
  });

  test('both adapters return the same JS values: int8 as text, never a rounded number', async () => {
    const { rows } = await ctx.store.query(
      `SELECT 9223372036854775807::int8 AS big, ARRAY[1, -9223372036854775808]::int8[] AS bigs, 42::int4 AS small,
              '-0'::float8 AS neg_zero, 1.50::numeric AS num, '{"a":[1,"x"]}'::jsonb AS doc, '\\x00ff'::bytea AS bytes,
              '11111111-2222-4333-8444-555555555555'::uuid AS id, NULL::text AS nothing`,
    );
    const row = rows[0]!;
    assert.equal(row.big, '9223372036854775807');
    assert.deepEqual(row.bigs, ['1', '-9223372036854775808']);
    assert.equal(row.small, 42);
    assert.ok(Object.is(row.neg_zero, -0));
    assert.equal(row.num, '1.50');
    assert.deepEqual(row.doc, { a: [1, 'x'] });
    assert.ok(row.bytes instanceof Uint8Array);
    assert.deepEqual([...(row.bytes as Uint8Array)], [0, 255]);
    assert.equal(row.id, '11111111-2222-4333-8444-555555555555');
    assert.equal(row.nothing, null);
  });

  test('text array parameters arrive exactly, NULLs and all', async () => {
    const values = ['NULL', '', '{"a",}', 'back\\slash', "quote'\"", 'Ünï 表 🙂', null];
    const { rows } = await ctx.store.query<{ v: string | null; n: string }>('SELECT v, n::text FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n', [values]);
    assert.deepEqual(rows.map((r) => r.v), values);
  });

  test('a transaction commits on success and rolls back on error, rethrowing it unchanged', async () => {
    await ctx.store.exec('CREATE TABLE tx_probe (x int)');
    try {
      await ctx.store.transaction(async (tx) => {
        await tx.query('INSERT INTO tx_probe VALUES ($1)', [1]);
      });
      const boom = new Error('boom');
      await assert.rejects(
        ctx.store.transaction(async (tx) => {
          await tx.query('INSERT INTO tx_probe VALUES ($1)', [2]);
          throw boom;
        }),
        (e: unknown) => e === boom,
      );
      const { rows } = await ctx.store.query<{ x: number }>('SELECT x FROM tx_probe ORDER BY x');
      assert.deepEqual(rows, [{ x: 1 }]);
    } finally {
      await ctx.store.exec('DROP TABLE tx_probe');
    }
  });
});

test('processes starting together on one PostgreSQL apply each migration once', { skip: !postgresReachable && 'PostgreSQL is not reachable' }, async () => {
  const first = await openTestStore('postgres', { migrate: false });
  const second = await PostgresStore.open(first.url!);
  try {
    const results = await Promise.all([migrate(first.store), migrate(second)]);
    assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, MIGRATIONS.length]);
    const { rows } = await first.store.query<{ n: string }>('SELECT count(*) AS n FROM syncline_migrations');
    assert.equal(Number(rows[0]!.n), MIGRATIONS.length);
  } finally {
    await second.close();
    await first.close();
  }
});

test('a deadlock victim is run again; once the tries run out it is unavailable (503), never an internal error', { skip: !postgresReachable && 'PostgreSQL is not reachable' }, async () => {
  const db = await openTestStore('postgres');
  try {
    await db.store.exec('CREATE TABLE dl_probe (k text PRIMARY KEY, n int NOT NULL); INSERT INTO dl_probe VALUES (\'a\', 0), (\'b\', 0);');
    // Two transactions lock a and b in opposite orders, each waiting until the other holds its first row.
    const crossing = (attempts: number) => {
      let arrived = 0;
      let release!: () => void;
      const bothHoldOne = new Promise<void>((resolve) => (release = resolve));
      const run = (first: string, second: string) =>
        transactionWithRetry(
          db.store,
          async (tx) => {
            // The deadlock is found after 50 ms of waiting instead of PostgreSQL's default 1 s.
            await tx.query(`SET LOCAL deadlock_timeout = '50ms'`);
            await tx.query('UPDATE dl_probe SET n = n + 1 WHERE k = $1', [first]);
            if (++arrived === 2) release();
            await bothHoldOne;
            await tx.query('UPDATE dl_probe SET n = n + 1 WHERE k = $1', [second]);
          },
          attempts,
        );
      return Promise.allSettled([run('a', 'b'), run('b', 'a')]);
    };
    const once = await crossing(1);
    const failed = once.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(failed.length, 1);
    const error = failed[0]!.reason as unknown;
    assert.ok(error instanceof SynclineError && error.code === 'unavailable' && error.status === 503, String(error));
    assert.equal(error.context.sqlstate, '40P01');
    assert.ok(lostToConcurrency(error));
    const retried = await crossing(3);
    assert.deepEqual(retried.map((r) => r.status), ['fulfilled', 'fulfilled']);
    const { rows } = await db.store.query<{ n: number }>('SELECT n FROM dl_probe ORDER BY k');
    assert.deepEqual(rows.map((r) => r.n), [3, 3]);
  } finally {
    await db.close();
  }
});

test('PGlite in a data directory keeps its data across restarts', async () => {
  const dir = tempDir('syncline-pglite-');
  try {
    const first = await openStore({ dataDir: `${dir.path}/data` });
    await first.query("INSERT INTO orgs (id, name) VALUES ('kept', 'kept')");
    await first.close();
    const second = await openStore({ dataDir: `${dir.path}/data` });
    try {
      const { rows } = await second.query<{ id: string }>('SELECT id FROM orgs ORDER BY id');
      assert.deepEqual(rows.map((r) => r.id), ['default', 'kept']);
      assert.deepEqual((await migrate(second)).applied, []);
    } finally {
      await second.close();
    }
  } finally {
    dir.remove();
  }
});
