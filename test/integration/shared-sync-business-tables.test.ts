import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SynclineError } from '../../src/protocol/errors.js';
import { uninstallCapture } from '../../src/cloud/shared/uninstall.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { openSharedDevice, sharedTestConfig, startSharedServer } from '../support/shared-fixtures.js';
import { deviceRowsText } from '../support/shared-scenarios.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Shared tables that are the application's own business tables, in its own
 * schema, with its own primary key and scope column: checked at start (every
 * problem at once), changed only with --provision, captured like any other.
 */

const uuid = (n: number) => `0190a0a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

const TABLES = [
  { schema: 'business', name: 'authors', scope_column: '_sync_scope_id', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'UUID' }, { name: 'name', type: 'TEXT' }] },
  {
    schema: 'business',
    name: 'posts',
    scope_column: '_sync_scope_id',
    direction: 'both',
    key: ['id'],
    columns: [{ name: 'id', type: 'UUID' }, { name: 'author_id', type: 'UUID' }, { name: 'title', type: 'TEXT' }],
    references: [{ columns: ['author_id'], table: 'authors' }],
  },
];

const refusal = (pattern: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config' && pattern.test(e.message);

describeEachStore('shared sync: business tables in their own schema', (ctx) => {
  let dir: ReturnType<typeof tempDir>;
  let server: CloudServer | undefined;
  before(async () => {
    dir = tempDir('syncline-business-');
    await ctx.store.exec(`
      CREATE SCHEMA business;
      CREATE TABLE business.authors (_sync_scope_id text NOT NULL, id uuid NOT NULL, name text, PRIMARY KEY (_sync_scope_id, id));
      CREATE TABLE business.posts (
        id uuid PRIMARY KEY, _sync_scope_id text NOT NULL, author_id uuid, title text, body text DEFAULT 'kept by the app',
        FOREIGN KEY (_sync_scope_id, author_id) REFERENCES business.authors (_sync_scope_id, id) DEFERRABLE INITIALLY DEFERRED);
      INSERT INTO business.authors VALUES ('ann', '${uuid(1)}', 'Ann');
      INSERT INTO business.posts (id, _sync_scope_id, author_id, title) VALUES ('${uuid(2)}', 'ann', '${uuid(1)}', 'written before Syncline');
      CREATE SCHEMA broken;
      CREATE TABLE broken.parents (id bigint PRIMARY KEY, owner text NOT NULL);
      CREATE TABLE broken.children (id bigint PRIMARY KEY, owner text, parent_id bigint REFERENCES broken.parents (id), note integer);`);
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('problems are reported all at once; nothing is changed without --provision', async () => {
    const broken = [
      { schema: 'broken', name: 'parents', scope_column: 'owner', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'INTEGER' }] },
      {
        schema: 'broken',
        name: 'children',
        scope_column: 'owner',
        direction: 'both',
        key: ['id'],
        columns: [{ name: 'id', type: 'INTEGER' }, { name: 'parent_id', type: 'INTEGER' }, { name: 'note', type: 'TEXT' }],
        references: [{ columns: ['parent_id'], table: 'parents' }],
      },
      { schema: 'broken', name: 'missing', scope_column: 'owner', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'INTEGER' }] },
    ];
    await assert.rejects(startSharedServer(ctx.store, { ...sharedTestConfig({ tables: broken }), provision: true }), (e: unknown) => {
      assert.ok(e instanceof SynclineError && e.code === 'invalid_config');
      for (const part of [
        /broken\.children: scope column owner is nullable/,
        /broken\.children: column note is integer but declared TEXT/,
        /broken\.children: reference \(parent_id\) -> parents has no foreign key on \(owner, parent_id\)/,
        /broken\.missing: does not exist/,
      ]) {
        assert.match(e.message, part);
      }
      return true;
    });
    await assert.rejects(startSharedServer(ctx.store, sharedTestConfig({ tables: TABLES })), refusal(/business\.posts: lacks Syncline's bookkeeping columns .* --provision/));
    const { rows } = await ctx.store.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'business' AND column_name LIKE '\\_syncline\\_%'`);
    assert.deepEqual(rows, [{ n: 0 }]);
  });

  test('with --provision the tables sync: rows from before, device pushes and plain backend SQL', async () => {
    server = await startSharedServer(ctx.store, { ...sharedTestConfig({ tables: TABLES }), provision: true });
    const phone = await openSharedDevice(server, dir.path, 'ann', 'phone');
    await phone.sync();
    assert.deepEqual(deviceRowsText(phone, 'posts', ['id', 'title']), [[uuid(2), 'written before Syncline']]);
    phone.db.exec(`INSERT INTO posts VALUES ('${uuid(3)}', '${uuid(1)}', 'from the phone')`);
    await phone.sync();
    await ctx.store.query(`INSERT INTO business.posts (id, _sync_scope_id, author_id, title) VALUES ($1, 'ann', $2, 'from the backend')`, [uuid(4), uuid(1)]);
    await ctx.store.query(`UPDATE business.posts SET title = 'edited by the backend' WHERE id = $1`, [uuid(2)]);
    await phone.sync();
    const { rows } = await ctx.store.query<{ id: string; title: string; body: string }>(`SELECT id::text, title, body FROM business.posts WHERE _sync_scope_id = 'ann' ORDER BY id`);
    assert.deepEqual(deviceRowsText(phone, 'posts', ['id', 'title']), rows.map((r) => [r.id, r.title]));
    assert.deepEqual(rows.map((r) => r.body), ['kept by the app', 'kept by the app', 'kept by the app']);
    assert.deepEqual(rows.map((r) => r.title), ['edited by the backend', 'from the phone', 'from the backend']);
    await phone.close();
  });

  test('uninstall leaves the business tables as they were before Syncline: no bookkeeping columns, index or triggers, every row kept', async () => {
    await server?.stop();
    server = undefined;
    const before = await ctx.store.query(`SELECT id::text, _sync_scope_id, author_id::text, title, body FROM business.posts ORDER BY id`);
    const result = await uninstallCapture(ctx.store);
    assert.deepEqual(result.bookkeeping_removed, ['business.authors', 'business.posts']);
    assert.ok(result.tables.includes('business.posts') && result.tables.includes('business.authors'), JSON.stringify(result));
    const left = await ctx.store.query(
      `SELECT (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'business' AND column_name LIKE '\\_syncline\\_%')::int AS columns,
              (SELECT count(*) FROM pg_indexes WHERE schemaname = 'business' AND indexname LIKE 'syncline\\_%')::int AS indexes,
              (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'business' AND NOT t.tgisinternal)::int AS triggers`,
    );
    assert.deepEqual(left.rows, [{ columns: 0, indexes: 0, triggers: 0 }]);
    assert.deepEqual((await ctx.store.query(`SELECT id::text, _sync_scope_id, author_id::text, title, body FROM business.posts ORDER BY id`)).rows, before.rows);
    // The application's own INSERT works as it did before Syncline, and Syncline's tables in syncline_shared are not touched.
    await ctx.store.query(`INSERT INTO business.posts (id, _sync_scope_id, author_id, title) VALUES ($1, 'ann', $2, 'after Syncline')`, [uuid(5), uuid(1)]);
    assert.deepEqual((await uninstallCapture(ctx.store)).bookkeeping_removed, []);
  });
});
