import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';
import { startServer, type ServerProcess } from '../support/processes.js';
import { startRoundRobinProxy, type RoundRobinProxy } from '../support/round-robin-proxy.js';
import { JWT_SECRET, userToken } from '../support/shared-fixtures.js';
import { postgresReachable } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Three real `syncline server` processes on one real PostgreSQL behind a
 * round-robin proxy written here. Devices hydrate, push chunked bundles and pull
 * through it while a backend writes plain SQL the whole time and one server is
 * SIGKILLed and restarted: at the end every device equals PostgreSQL and no
 * bundle or row is duplicated.
 */

const USER = 'fleet';
const TABLES = [
  { name: 'folders', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'name', type: 'TEXT' }, { name: 'n', type: 'INTEGER' }] },
  { name: 'catalog', direction: 'down', key: ['sku'], columns: [{ name: 'sku', type: 'TEXT' }, { name: 'price', type: 'REAL' }] },
];

describe('shared sync: three server processes behind a round-robin proxy', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  let db: ScratchDatabase;
  let dir: ReturnType<typeof tempDir>;
  let configPath: string;
  const servers: (ServerProcess | undefined)[] = [];
  let proxy: RoundRobinProxy;
  let proxyUrl: string;
  const start = (i: number) => startServer({ dataDir: join(dir.path, `s${i}`), databaseUrl: db.url, extraArgs: ['--shared-config', configPath] });

  before(async () => {
    dir = tempDir('syncline-fleet-');
    db = await createScratchDatabase();
    configPath = join(dir.path, 'shared.json');
    writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: JWT_SECRET }, tables: TABLES }));
    // The first server migrates and provisions; the other two start against the result.
    servers[0] = await start(0);
    [servers[1], servers[2]] = await Promise.all([start(1), start(2)]);
    proxy = await startRoundRobinProxy(() => servers.flatMap((s) => (s ? [s.url] : [])));
    proxyUrl = proxy.url;
  });
  after(async () => {
    await proxy?.close();
    for (const s of servers) await s?.stop('SIGKILL');
    await db?.drop();
    dir?.remove();
  });

  test('devices converge on PostgreSQL while a server dies and a backend writes plain SQL', async () => {
    const backend = new pg.Client({ connectionString: db.url });
    await backend.connect();
    const devices: SharedSync[] = [];
    try {
      await backend.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name, n) SELECT $1, 'seed-' || lpad(i::text, 5, '0'), 'seed', i FROM generate_series(1, 3000) i`, [USER]);
      await backend.query(`INSERT INTO syncline_shared.catalog (_syncline_scope, sku, price) SELECT $1, 'sku-' || i, i * 1.5 FROM generate_series(1, 500) i`, [USER]);
      const token = await userToken(USER);
      const open = (name: string) => SharedSync.open({ path: join(dir.path, `${name}.db`), serverUrl: proxyUrl, token, source: name, chunkRows: 150 });
      devices.push(await open('phone'), await open('laptop'));
      let running = true;
      const failures: string[] = [];
      const loop = async (device: SharedSync, n: number) => {
        for (let round = 0; running; round++) {
          // Every third round a change of 400 rows: pushed in chunks, which may commit on another process.
          const rows = round % 3 === 2 ? 400 : 3;
          device.db.exec(`UPDATE folders SET name = '${device.source}-${round}', n = n + 1 WHERE id IN (SELECT id FROM folders ORDER BY random() LIMIT ${rows})`);
          device.db.exec(`INSERT INTO folders (id, name, n) VALUES ('${device.source}-${round}', 'new', ${n})`);
          await device.sync().catch((error: unknown) => failures.push(String(error)));
        }
      };
      const writer = async () => {
        for (let i = 0; running; i++) {
          await backend.query('BEGIN');
          await backend.query(`UPDATE syncline_shared.folders SET name = 'backend-' || $2::text, n = n + 1 WHERE _syncline_scope = $1 AND id IN (SELECT id FROM syncline_shared.folders WHERE _syncline_scope = $1 ORDER BY random() LIMIT 5)`, [USER, i]);
          await backend.query(`INSERT INTO syncline_shared.folders (_syncline_scope, id, name, n) VALUES ($1, 'backend-' || $2::text, 'b', $2::bigint)`, [USER, i]);
          if (i % 4 === 3) await backend.query(`DELETE FROM syncline_shared.folders WHERE _syncline_scope = $1 AND id = 'backend-' || $2::text`, [USER, i - 2]);
          await backend.query(`UPDATE syncline_shared.catalog SET price = price + 1 WHERE _syncline_scope = $1 AND sku = $2`, [USER, `sku-${i % 500}`]);
          await backend.query('COMMIT');
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
      };
      const work = Promise.all([loop(devices[0]!, 1), loop(devices[1]!, 2), writer()]);
      // A third device hydrates (3,500 rows in chunks spread over the three processes) while server 1 is killed.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const tablet = await open('tablet');
      devices.push(tablet);
      const hydrating = (async () => {
        for (let attempt = 0; attempt < 20 && tablet.watermark === 0n; attempt++) await tablet.sync().catch((error: unknown) => failures.push(`tablet: ${String(error)}`));
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const killed = servers[1]!;
      servers[1] = undefined;
      await killed.stop('SIGKILL');
      await hydrating;
      servers[1] = await start(1);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      running = false;
      await work;
      // Quiet: each device syncs until nothing is pending and it pulled everything.
      for (let pass = 0; pass < 2; pass++) for (const device of devices) for (let i = 0; i < 5 && ((await device.pending()) > 0 || i === 0); i++) await device.sync();
      const { rows: head } = await backend.query<{ head: string }>('SELECT head_seq::text AS head FROM sync_scopes WHERE scope = $1', [USER]);
      const { rows: seqs } = await backend.query<{ n: string; max: string }>('SELECT count(*)::text AS n, max(bundle_seq)::text AS max FROM sync_bundles WHERE scope = $1', [USER]);
      assert.equal(seqs[0]!.n, head[0]!.head, 'gap-free bundle_seq');
      assert.equal(seqs[0]!.max, head[0]!.head);
      for (const table of ['folders', 'catalog']) {
        const cols = table === 'folders' ? 'id, name, n::text' : 'sku, price::text';
        const { rows } = await backend.query(`SELECT ${cols} FROM syncline_shared.${table} WHERE _syncline_scope = $1 ORDER BY 1`, [USER]);
        const server = rows.map((r) => Object.values(r).map(String));
        for (const device of devices) {
          const local = (device.db.prepare(`SELECT ${cols.replace('::text', '')} FROM ${table} ORDER BY 1`).raw().all() as unknown[][]).map((r) => r.map(String));
          assert.equal(local.length, server.length, `${device.source} ${table} row count`);
          assert.deepEqual(local, server, `${device.source} ${table}`);
        }
      }
      // Every device push committed once: one bundle per (source, source_bundle_id) is a constraint; each device's new rows are there once.
      const { rows: pushed } = await backend.query<{ source: string; n: string }>(`SELECT source, count(*)::text AS n FROM sync_bundles WHERE scope = $1 GROUP BY source ORDER BY source`, [USER]);
      assert.ok(pushed.some((p) => p.source === 'backend'), 'backend bundles were captured');
      assert.ok(pushed.some((p) => p.source === 'phone') && pushed.some((p) => p.source === 'laptop'), JSON.stringify(pushed));
      assert.ok(tablet.watermark > 0n, `the tablet hydrated (failures: ${failures.slice(0, 3).join(' | ')})`);
    } finally {
      for (const device of devices) await device.close().catch(() => {});
      await backend.end();
    }
  });
});
