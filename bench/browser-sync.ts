import { join } from 'node:path';
import { SharedSync } from '../src/device/twoway/shared-sync.js';
import { buildBrowserBundle, chromiumMissing, launchChromium, servePages } from '../test/support/browser.js';
import { hs256Token } from '../test/support/jwt.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { progress, type BenchReport } from './report.js';
import { SECRET, seedServer, startBenchServer } from './shared-sync.js';

/**
 * The browser client in Chromium (the real dist/browser bundle, SQLite WASM on
 * OPFS in a worker): two-way hydration of 100k rows as a ratio to a plain bulk
 * insert of the same rows into the same browser database (one statement per
 * row in one write transaction, through the same driver), in the page (a
 * message to the SQLite worker per statement) and inside an app's own worker
 * (the database opened in place); and the push+pull round trip page -> Node
 * device -> page, both running their background sync.
 */

const HYDRATE_ROWS = 100_000;
const ROUNDS = 30;
const ECHO = 1_000_000_000;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

// Rows as bench/shared-sync.ts's row(i) writes them (about 200 bytes each).
const APP = `
import { OpfsDriver, SharedSync } from '/client.js';
const FILLER = 'x'.repeat(140);
const row = (i) => [BigInt(i), 'item-' + i, FILLER + i, i * 0.5 + 0.25, BigInt(i * 7)];
let rt;
window.bench = {
  async bulkInsert(n) {
    const db = await OpfsDriver.open({ name: 'baseline.db' });
    await db.exec('DROP TABLE IF EXISTS items; CREATE TABLE items (id INTEGER PRIMARY KEY NOT NULL, name TEXT, body TEXT, score REAL, counter INTEGER)');
    const t0 = performance.now();
    await db.writeTransaction(async (tx) => {
      for (let i = 1; i <= n; i++) await tx.run('INSERT INTO items VALUES (?, ?, ?, ?, ?)', row(i));
    });
    const ms = performance.now() - t0;
    const count = (await db.get('SELECT count(*) AS n FROM items')).n;
    await db.close();
    return { ms, rows: Number(count) };
  },
  async hydrate(token) {
    const driver = await OpfsDriver.open({ name: 'hydrate.db' });
    const sync = await SharedSync.open({ driver, serverUrl: location.origin, token });
    const t0 = performance.now();
    const report = await sync.hydrate();
    const ms = performance.now() - t0;
    const count = (await driver.get('SELECT count(*) AS n FROM items')).n;
    await sync.close();
    return { ms, rows: report.rows, count: Number(count) };
  },
  inWorker(n, token) {
    return new Promise((resolve, reject) => {
      const worker = new Worker('/hydrate-worker.js', { type: 'module' });
      worker.onmessage = ({ data }) => { worker.terminate(); resolve(data); };
      worker.onerror = (event) => reject(new Error(event.message));
      worker.postMessage({ n, token });
    });
  },
  async startRoundTrips(token) {
    const driver = await OpfsDriver.open({ name: 'round-trip.db' });
    rt = await SharedSync.open({ driver, serverUrl: location.origin, token });
    await rt.sync();
    rt.start({ pollMs: 600000 });
  },
  /** From the page's commit until the Node device's answer to it is in the page's database. */
  async roundTrip(i) {
    const echoed = new Promise((resolve) => {
      const off = rt.onChange((event) => {
        if ((event.keys.items ?? []).some((key) => key[0] === BigInt(${ECHO} + i))) { off(); resolve(); }
      });
    });
    const t0 = performance.now();
    await rt.driver.run('INSERT INTO items VALUES (?, ?, ?, ?, ?)', row(i));
    await echoed;
    return performance.now() - t0;
  },
  async stop() { await rt.close(); },
};
document.title = 'ready';
`;
// The same two measurements inside an app's own dedicated worker, where the database opens in place.
const WORKER = `
import { OpfsDriver, SharedSync } from '/client.js';
const FILLER = 'x'.repeat(140);
const row = (i) => [BigInt(i), 'item-' + i, FILLER + i, i * 0.5 + 0.25, BigInt(i * 7)];
onmessage = async ({ data: { n, token } }) => {
  const db = await OpfsDriver.open({ name: 'worker-baseline.db' });
  await db.exec('DROP TABLE IF EXISTS items; CREATE TABLE items (id INTEGER PRIMARY KEY NOT NULL, name TEXT, body TEXT, score REAL, counter INTEGER)');
  let t0 = performance.now();
  await db.writeTransaction(async (tx) => {
    for (let i = 1; i <= n; i++) await tx.run('INSERT INTO items VALUES (?, ?, ?, ?, ?)', row(i));
  });
  const baselineMs = performance.now() - t0;
  await db.close();
  const driver = await OpfsDriver.open({ name: 'worker-hydrate.db' });
  const sync = await SharedSync.open({ driver, serverUrl: location.origin, token });
  t0 = performance.now();
  const report = await sync.hydrate();
  const hydrateMs = performance.now() - t0;
  const count = (await driver.get('SELECT count(*) AS n FROM items')).n;
  await sync.close();
  postMessage({ baselineMs, hydrateMs, rows: report.rows, count: Number(count) });
};
`;
const PAGE = `<!doctype html><meta charset="utf-8"><title>bench</title><script type="module" src="/app.js"></script>`;

export async function benchBrowserSync(report: BenchReport, dir: string): Promise<void> {
  if (chromiumMissing) {
    process.stderr.write(`browser-sync: skipped (${chromiumMissing})\n`);
    return;
  }
  const scratch = (await realPostgresReachable()) ? await createScratchDatabase() : undefined;
  const store = scratch ? 'postgres' : 'pglite';
  const server = await startBenchServer(dir, scratch?.url);
  const bundle = buildBrowserBundle();
  const pages = await servePages(bundle.path, { '/': PAGE, '/app.js': APP, '/hydrate-worker.js': WORKER }, server.url);
  const browser = await launchChromium();
  let node: SharedSync | undefined;
  try {
    const page = await browser.context.newPage();
    await page.goto(pages.url);
    await page.waitForFunction('document.title === "ready"');
    const call = <T>(name: string, ...args: unknown[]) => page.evaluate(([n, a]) => (globalThis as any).bench[n as string](...(a as unknown[])), [name, args] as const) as Promise<T>;

    progress(`browser sync: plain bulk insert of ${HYDRATE_ROWS.toLocaleString('en-US')} rows in the page (baseline)`);
    const baseline = await call<{ ms: number; rows: number }>('bulkInsert', HYDRATE_ROWS);
    if (baseline.rows !== HYDRATE_ROWS) throw new Error(`the baseline inserted ${baseline.rows} rows`);
    progress(`browser sync: seeding ${HYDRATE_ROWS.toLocaleString('en-US')} rows (${store}), hydrating the page`);
    await seedServer(server.store, 'bench-browser', HYDRATE_ROWS);
    const hydrate = await call<{ ms: number; rows: number; count: number }>('hydrate', await hs256Token(SECRET, { sub: 'bench-browser' }));
    if (hydrate.rows !== HYDRATE_ROWS || hydrate.count !== HYDRATE_ROWS) throw new Error(`hydration brought ${hydrate.rows} rows (${hydrate.count} in the table)`);
    const ratio = baseline.ms / hydrate.ms;
    report.add({
      name: 'browser: hydrate 100k rows vs bulk insert',
      value: ratio,
      unit: 'x',
      baseline: `plain bulk insert of the same rows in the same browser database: ${Math.round(HYDRATE_ROWS / (baseline.ms / 1000)).toLocaleString('en-US')} rows/s`,
      details: { rows: HYDRATE_ROWS, hydrate_seconds: hydrate.ms / 1000, baseline_seconds: baseline.ms / 1000, rows_per_s: HYDRATE_ROWS / (hydrate.ms / 1000), store },
    });

    progress('browser sync: the same bulk insert and hydration inside an app worker (database opened in place)');
    const worker = await call<{ baselineMs: number; hydrateMs: number; rows: number; count: number }>('inWorker', HYDRATE_ROWS, await hs256Token(SECRET, { sub: 'bench-browser' }));
    if (worker.rows !== HYDRATE_ROWS || worker.count !== HYDRATE_ROWS) throw new Error(`hydration in the worker brought ${worker.rows} rows (${worker.count} in the table)`);
    report.add({
      name: 'browser: hydrate 100k rows vs bulk insert, in a worker',
      value: worker.baselineMs / worker.hydrateMs,
      unit: 'x',
      baseline: `SharedSync in the app's worker, database opened in place: bulk insert ${Math.round(HYDRATE_ROWS / (worker.baselineMs / 1000)).toLocaleString('en-US')} rows/s, hydration ${(worker.hydrateMs / 1000).toFixed(1)} s`,
      details: { rows: HYDRATE_ROWS, hydrate_seconds: worker.hydrateMs / 1000, baseline_seconds: worker.baselineMs / 1000, rows_per_s: HYDRATE_ROWS / (worker.hydrateMs / 1000), store },
    });

    progress(`browser sync: ${ROUNDS} round trips page -> Node device -> page`);
    const token = await hs256Token(SECRET, { sub: 'bench-round-trip' });
    node = await SharedSync.open({ path: join(dir, 'node-device.db'), serverUrl: server.url, token, source: 'node-device' });
    await node.sync();
    const echo = node;
    // The Node device answers each row from the page with a row of its own.
    node.onChange((event) => {
      for (const [id] of event.keys.items ?? []) {
        if (typeof id === 'bigint' && id < ECHO) void echo.driver.run('INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?)', [BigInt(ECHO) + id, 'echo', 'echo', 0.5, 0n]);
      }
    });
    node.start({ pollMs: 600_000 });
    await call('startRoundTrips', token);
    const samples: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      samples.push(await call<number>('roundTrip', i));
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 40));
    }
    await call('stop');
    samples.sort((a, b) => a - b);
    report.add({
      name: 'browser: push+pull round trip page <-> Node, p95 ms',
      value: quantile(samples, 0.95),
      unit: 'ms',
      baseline: `p50 ${quantile(samples, 0.5).toFixed(1)} ms, max ${samples.at(-1)!.toFixed(1)} ms (two pushes and two pulls per round trip)`,
      details: { p50_ms: quantile(samples, 0.5), p95_ms: quantile(samples, 0.95), max_ms: samples.at(-1), rounds: ROUNDS, store },
    });
  } finally {
    await node?.close();
    await browser.close();
    await pages.close();
    bundle.remove();
    await server.stop();
    await scratch?.drop();
  }
}
