import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { parseSharedConfig } from '../src/cloud/shared/declarations.js';
import { CloudServer } from '../src/cloud/server.js';
import { openStore } from '../src/cloud/store/open-store.js';
import type { Store } from '../src/cloud/store/store.js';
import { SharedSync } from '../src/device/twoway/shared-sync.js';
import { hs256Token } from '../test/support/jwt.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer } from '../test/support/processes.js';
import { progress, type BenchReport } from './report.js';

const HYDRATE_ROWS = 1_000_000;
const PUSH_ROWS = 10_000;
export const SECRET = 'bench-shared-sync-secret-0123456789abcdef';
const FILLER = 'x'.repeat(140);

export const CONFIG = parseSharedConfig({
  auth: { hs256_secret: SECRET },
  tables: [
    {
      name: 'items',
      direction: 'both',
      key: ['id'],
      columns: [
        { name: 'id', type: 'INTEGER' },
        { name: 'name', type: 'TEXT' },
        { name: 'body', type: 'TEXT' },
        { name: 'score', type: 'REAL' },
        { name: 'counter', type: 'INTEGER' },
      ],
    },
  ],
});

export const LOCAL_DDL = 'CREATE TABLE items (id INTEGER PRIMARY KEY NOT NULL, name TEXT, body TEXT, score REAL, counter INTEGER)';

/** Row i as the bench writes it everywhere: about 200 bytes. */
export function row(i: number): [bigint, string, string, number, bigint] {
  return [BigInt(i), `item-${i}`, `${FILLER}${i}`, i * 0.5 + 0.25, BigInt(i * 7)];
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** The baseline: the same rows inserted into a plain SQLite table, one prepared statement in one transaction. */
function localBulkInsertSeconds(path: string): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(LOCAL_DDL);
  const insert = db.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?)');
  const start = process.hrtime.bigint();
  db.transaction(() => {
    for (let i = 1; i <= HYDRATE_ROWS; i++) insert.run(...row(i));
  })();
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  return elapsed;
}

/** The server side of a hydration: rows already committed for a user, written directly (seeding is not what is measured). */
export async function seedServer(store: Store, scope: string, rows = HYDRATE_ROWS): Promise<void> {
  await store.transaction(async (tx) => {
    // As Syncline's own writes do: the capture triggers would otherwise make a 1M-row bundle of the seed.
    await tx.query(`SELECT set_config('syncline.applying', 'on', true)`);
    await tx.query(
      `INSERT INTO syncline_shared.items (_syncline_scope, id, name, body, score, counter, _syncline_key, _syncline_version, _syncline_source, _syncline_hlc)
       SELECT $1, i, 'item-' || i, $2 || i, i * 0.5 + 0.25, i * 7, '[' || i || ']', 1, 'seed', '000000000000001-000000-seed'
         FROM generate_series(1, $3::int) AS i`,
      [scope, FILLER, rows],
    );
  });
  // Autovacuum would analyze a table this size within a minute; the bench cannot wait for it.
  await store.exec('ANALYZE syncline_shared.items');
  await store.query(`INSERT INTO sync_scopes (scope, head_seq) VALUES ($1, 1)`, [scope]);
  await store.query(`INSERT INTO sync_bundles (scope, bundle_seq, source, source_bundle_id, row_count) VALUES ($1, 1, 'seed', 'seed', $2)`, [scope, rows]);
}

/**
 * On PostgreSQL the server is its own `syncline server` process, as deployed, so
 * the device's writes and the server's reads run side by side; on PGlite (no
 * PostgreSQL reachable) it runs in this process, which holds the data directory.
 */
export async function startBenchServer(dir: string, scratchUrl: string | undefined): Promise<{ url: string; store: Store; stop(): Promise<void> }> {
  if (!scratchUrl) {
    const store = await openStore({});
    const server = await CloudServer.start({ store, httpPort: 0, adminToken: 'bench-admin-token-0123456789', schemaPolicy: 'auto', logger: pino({ level: 'warn' }), shared: CONFIG });
    return { url: server.url, store, stop: async () => (await server.stop(), await store.close()) };
  }
  const configPath = join(dir, 'shared.json');
  writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: SECRET }, tables: CONFIG.tables }));
  const server = await startServer({ dataDir: join(dir, 'server'), databaseUrl: scratchUrl, extraArgs: ['--shared-config', configPath] });
  const store = await openStore({ databaseUrl: scratchUrl });
  return { url: server.url, store, stop: async () => (await server.stop(), await store.close()) };
}

export async function benchSharedSync(report: BenchReport, dir: string): Promise<void> {
  const usePostgres = await realPostgresReachable();
  const scratch = usePostgres ? await createScratchDatabase() : undefined;
  const server = await startBenchServer(dir, scratch?.url);
  const store = server.store;
  const open = async (user: string, name: string) =>
    SharedSync.open({ path: join(dir, `${user}-${name}.db`), serverUrl: server.url, token: await hs256Token(SECRET, { sub: user }), source: name });
  try {
    progress(`shared sync: local bulk insert of ${HYDRATE_ROWS.toLocaleString('en-US')} rows (baseline)`);
    const baseline = localBulkInsertSeconds(join(dir, 'baseline.db'));
    progress(`shared sync: seeding ${HYDRATE_ROWS.toLocaleString('en-US')} rows in ${usePostgres ? 'PostgreSQL' : 'PGlite'}`);
    await seedServer(store, 'bench-hydrate');
    const device = await open('bench-hydrate', 'fresh');
    progress('shared sync: hydrating a fresh device');
    let hydrated = 0;
    const hydrate = await seconds(async () => {
      hydrated = (await device.hydrate()).rows;
    });
    await device.close();
    if (hydrated !== HYDRATE_ROWS) throw new Error(`hydration brought ${hydrated} rows, expected ${HYDRATE_ROWS}`);
    const ratio = baseline / hydrate;
    report.add({
      name: 'shared: hydrate 1M rows vs local bulk insert',
      value: ratio,
      unit: 'x',
      baseline: `plain SQLite bulk insert of the same rows: ${Math.round(HYDRATE_ROWS / baseline).toLocaleString('en-US')} rows/s`,
      target: '>= 0.3 and < 15 s',
      met: ratio >= 0.3 && hydrate < 15,
      details: { rows: HYDRATE_ROWS, seconds: hydrate, rows_per_s: HYDRATE_ROWS / hydrate, baseline_seconds: baseline, store: usePostgres ? 'postgres' : 'pglite' },
    });
    report.add({ name: 'shared: hydrate 1M rows, seconds', value: hydrate, unit: 's', target: '< 15 s', met: hydrate < 15 });

    progress(`shared sync: push of a ${PUSH_ROWS.toLocaleString('en-US')}-row bundle, pulled by a second device`);
    const writer = await open('bench-push', 'writer');
    const reader = await open('bench-push', 'reader');
    await reader.sync();
    const insert = writer.db.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?)');
    writer.db.transaction(() => {
      for (let i = 1; i <= PUSH_ROWS; i++) insert.run(...row(i));
    })();
    let pulled = 0;
    const push = await seconds(() => writer.pushPending());
    const pull = await seconds(async () => {
      pulled = (await reader.pull()).rows;
    });
    if (pulled !== PUSH_ROWS) throw new Error(`the reader pulled ${pulled} rows, expected ${PUSH_ROWS}`);
    report.add({
      name: 'shared: push 10k-row bundle + pull, seconds',
      value: push + pull,
      unit: 's',
      details: { push_seconds: push, pull_seconds: pull, rows: PUSH_ROWS, store: usePostgres ? 'postgres' : 'pglite' },
    });
    await writer.close();
    await reader.close();
  } finally {
    await server.stop();
    await scratch?.drop();
  }
}
