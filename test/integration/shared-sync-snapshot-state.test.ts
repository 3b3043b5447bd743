import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { SynclineError } from '../../src/protocol/errors.js';
import type { SnapshotChunk } from '../../src/protocol/shared-sync.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { SnapshotBuilder, type SnapshotLimits } from '../../src/cloud/shared/snapshots.js';
import { openStore } from '../../src/cloud/store/open-store.js';
import type { Store } from '../../src/cloud/store/store.js';
import { openSharedDevice, sharedTestConfig, startSharedServer } from '../support/shared-fixtures.js';
import { deviceRowsText, serverRowsText } from '../support/shared-scenarios.js';
import { describeEachStore, openTestStore, postgresReachable, type TestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Snapshot state lives in PostgreSQL, bounded per scope: any server process on
 * the database serves any chunk, and abandoned or excess snapshots are freed.
 */

const coded = (code: string) => (e: unknown) => e instanceof SynclineError && e.code === code;

async function seedFolders(store: Store, scope: string, n: number): Promise<void> {
  await store.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name) SELECT $1, 'f' || lpad(i::text, 4, '0'), 'n' || i FROM generate_series(1, $2) i`, [scope, n]);
}

async function readAll(builder: SnapshotBuilder, who: { scope: string; source: string }, id: string): Promise<SnapshotChunk[]> {
  const chunks: SnapshotChunk[] = [];
  for (let i = 0; ; i++) {
    const chunk = JSON.parse(await builder.chunk(who, id, i)) as SnapshotChunk | { end: true };
    if ('end' in chunk) return chunks;
    chunks.push(chunk);
  }
}

describeEachStore('shared sync: snapshot state in PostgreSQL', (ctx) => {
  const config = sharedTestConfig();
  const builders: SnapshotBuilder[] = [];
  const builder = (limits: Partial<SnapshotLimits>) => {
    const made = new SnapshotBuilder(ctx.store, config, { limits, logger: pino({ level: 'silent' }) });
    builders.push(made);
    return made;
  };
  let server: CloudServer;
  before(async () => {
    // Provisions the shared tables and their capture.
    server = await startSharedServer(ctx.store, config);
  });
  after(async () => {
    for (const b of builders) b.stop();
    await server.stop();
  });
  const stored = async (scope: string) =>
    (await ctx.store.query<{ n: string; chunks: string }>('SELECT count(*)::text AS n, (SELECT count(*) FROM sync_snapshot_chunks c JOIN sync_snapshots s ON s.id = c.snapshot_id WHERE s.scope = $1)::text AS chunks FROM sync_snapshots WHERE scope = $1', [scope])).rows[0]!;

  test('chunks are stored in PostgreSQL; a new snapshot past the per-scope cap frees the oldest; drop frees at once', async () => {
    const who = { scope: 'snap-cap', source: 'phone' };
    await seedFolders(ctx.store, who.scope, 25);
    const b = builder({ chunkRows: 10, maxPerScope: 2 });
    const first = await b.create(who);
    assert.deepEqual((await readAll(b, who, first.snapshot_id)).map((c) => c.rows.length), [10, 10, 5]);
    assert.deepEqual(await stored(who.scope), { n: '1', chunks: '3' });
    const second = await b.create(who);
    const third = await b.create(who);
    await assert.rejects(b.chunk(who, first.snapshot_id, 0), coded('not_found'));
    assert.equal((await readAll(b, who, third.snapshot_id)).length, 3);
    // Another scope never sees them.
    await assert.rejects(b.chunk({ scope: 'someone-else', source: 'x' }, second.snapshot_id, 0), coded('not_found'));
    await assert.rejects(b.chunk(who, 'not-a-uuid', 0), coded('not_found'));
    await b.drop(who, second.snapshot_id);
    await b.drop(who, third.snapshot_id);
    assert.deepEqual(await stored(who.scope), { n: '0', chunks: '0' });
  });

  test('a snapshot nobody reads is freed after idleMs; one past the scope byte cap fails and is freed', async () => {
    const who = { scope: 'snap-idle', source: 'phone' };
    await seedFolders(ctx.store, who.scope, 30);
    const b = builder({ chunkRows: 10, idleMs: 300 });
    const left = await b.create(who);
    await b.chunk(who, left.snapshot_id, 0);
    const deadline = Date.now() + 10_000;
    while ((await stored(who.scope)).n !== '0') {
      assert.ok(Date.now() < deadline, 'the abandoned snapshot is freed');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await assert.rejects(b.chunk(who, left.snapshot_id, 1), coded('not_found'));
    const small = builder({ chunkRows: 10, maxScopeBytes: 500 });
    const big = await small.create(who);
    await assert.rejects(readAll(small, who, big.snapshot_id), (e: unknown) => e instanceof SynclineError && (e.code === 'unavailable' || e.code === 'not_found'));
    await small.create(who).then((s) => small.drop(who, s.snapshot_id)).catch(() => {});
    assert.equal((await stored(who.scope)).chunks, '0');
  });
});

describe('shared sync: two servers on one PostgreSQL', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  let db: TestStore;
  let second: Store;
  const servers: CloudServer[] = [];
  let dir: ReturnType<typeof tempDir>;
  before(async () => {
    dir = tempDir('syncline-two-servers-');
    db = await openTestStore('postgres');
    second = await openStore({ databaseUrl: db.url! });
    servers.push(await startSharedServer(db.store), await startSharedServer(second));
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await second.close();
    await db.close();
    dir.remove();
  });

  /** Sends each request to the next server in turn, as a round-robin load balancer does. */
  function roundRobin(): typeof globalThis.fetch {
    let next = 0;
    return (input, init) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      const target = new URL(servers[next++ % servers.length]!.url);
      url.host = target.host;
      return globalThis.fetch(url, init);
    };
  }

  test('hydration, chunked pushes and pulls alternate between servers; wake-ups reach devices on either', async () => {
    const user = 'two-servers';
    await seedFolders(db.store, user, 50);
    const phone = await openSharedDevice(servers[0]!, dir.path, user, 'phone', { fetch: roundRobin(), chunkRows: 7 });
    const laptop = await openSharedDevice(servers[1]!, dir.path, user, 'laptop', { fetch: roundRobin(), chunkRows: 7 });
    try {
      const hydrated = await phone.sync();
      assert.equal(hydrated.hydrated?.rows, 50);
      phone.db.exec(`UPDATE folders SET name = 'phone ' || id WHERE id <= 'f0020'`);
      const pushed = await phone.sync();
      assert.equal(pushed.push.rows, 20);
      await laptop.sync();
      // A backend write committed through the first server's database connection wakes the laptop's stream on the second.
      const woke = new Promise<void>((resolve) => laptop.onChange(() => resolve()));
      laptop.start({ pollMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await db.store.query(`UPDATE syncline_shared.folders SET name = 'backend' WHERE _syncline_scope = $1 AND id = 'f0050'`, [user]);
      await woke;
      await laptop.stop();
      await phone.sync();
      const server = await serverRowsText(db.store, 'folders', user, ['id', 'name']);
      assert.deepEqual(deviceRowsText(phone, 'folders', ['id', 'name']), server);
      assert.deepEqual(deviceRowsText(laptop, 'folders', ['id', 'name']), server);
    } finally {
      await phone.close();
      await laptop.close();
    }
  });
});
