import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../src/cloud/store/open-store.js';
import { SharedSync } from '../src/device/shared/shared-sync.js';
import { hs256Token } from '../test/support/jwt.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer, type ServerProcess } from '../test/support/processes.js';
import { startRoundRobinProxy } from '../test/support/round-robin-proxy.js';
import { progress, type BenchReport } from './report.js';
import { CONFIG, SECRET, seedServer } from './shared-sync.js';

/**
 * PostgreSQL as the source of truth, on real PostgreSQL with `syncline server`
 * processes as deployed:
 * - backend write -> visible on a synced device (event stream on), against a device push;
 * - captured plain-SQL writes against the same writes into a table without capture;
 * - hydration through a round-robin proxy over three processes against one.
 * SYNCLINE_BENCH_BACKEND_ROWS sets the hydration size (default 1,000,000).
 */

const LATENCY_ROUNDS = 40;
const WRITE_ROWS = 20_000;
const WRITE_BATCH = 100;
const HYDRATE_ROWS = Number(process.env.SYNCLINE_BENCH_BACKEND_ROWS ?? 1_000_000);
const COLUMNS = 'id, name, body, score, counter';
const values = (from: number, n: number) => `SELECT $1, i, 'item-' || i, repeat('x', 140) || i, i * 0.5 + 0.25, i * 7 FROM generate_series(${from}, ${from + n - 1}) i`;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

function until<T>(subscribe: (resolve: (value: T) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve) => {
    const off = subscribe((value) => {
      off();
      resolve(value);
    });
  });
}

export async function benchSharedBackend(report: BenchReport, dir: string): Promise<void> {
  if (!(await realPostgresReachable())) {
    progress('shared backend: PostgreSQL is not reachable; skipped');
    return;
  }
  const scratch = await createScratchDatabase();
  const configPath = join(dir, 'shared.json');
  writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: SECRET }, tables: CONFIG.tables }));
  const servers: ServerProcess[] = [];
  const start = async (i: number) => (servers[i] = await startServer({ dataDir: join(dir, `s${i}`), databaseUrl: scratch.url, extraArgs: ['--shared-config', configPath] }));
  const backend = new pg.Client({ connectionString: scratch.url });
  const devices: SharedSync[] = [];
  const open = async (url: string, user: string, name: string) => {
    const device = await SharedSync.open({ path: join(dir, `${user}-${name}.db`), serverUrl: url, token: await hs256Token(SECRET, { sub: user }), source: name });
    devices.push(device);
    return device;
  };
  try {
    await start(0);
    await backend.connect();

    progress(`shared backend: write -> visible latency, ${LATENCY_ROUNDS} rounds each`);
    const reader = await open(servers[0]!.url, 'latency', 'reader');
    const writer = await open(servers[0]!.url, 'latency', 'writer');
    await reader.sync();
    await writer.sync();
    reader.start({ pollMs: 600_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const backendMs: number[] = [];
    const pushMs: number[] = [];
    for (let i = 1; i <= LATENCY_ROUNDS; i++) {
      const seen = until<void>((resolve) => reader.onChange(() => resolve()));
      const t0 = performance.now();
      await backend.query(`INSERT INTO syncline_shared.items (_syncline_scope, ${COLUMNS}) VALUES ('latency', $1, 'b', 'b', 1.5, 1)`, [i]);
      await seen;
      backendMs.push(performance.now() - t0);
      const seenPush = until<void>((resolve) => reader.onChange(() => resolve()));
      const t1 = performance.now();
      writer.db.prepare(`INSERT INTO items (${COLUMNS}) VALUES (?, 'd', 'd', 1.5, 1)`).run(BigInt(100_000 + i));
      await writer.pushPending();
      await seenPush;
      pushMs.push(performance.now() - t1);
    }
    await reader.stop();
    backendMs.sort((a, b) => a - b);
    pushMs.sort((a, b) => a - b);
    report.add({
      name: 'shared: backend write -> device, p95 ms',
      value: quantile(backendMs, 0.95),
      unit: 'ms',
      baseline: `device push -> other device: p50 ${quantile(pushMs, 0.5).toFixed(1)} ms, p95 ${quantile(pushMs, 0.95).toFixed(1)} ms`,
      target: 'p95 < 250 ms',
      met: quantile(backendMs, 0.95) < 250,
      details: { backend_p50_ms: quantile(backendMs, 0.5), backend_p95_ms: quantile(backendMs, 0.95), push_p50_ms: quantile(pushMs, 0.5), push_p95_ms: quantile(pushMs, 0.95), rounds: LATENCY_ROUNDS },
    });

    progress(`shared backend: ${WRITE_ROWS.toLocaleString('en-US')} rows by plain SQL, ${WRITE_BATCH} per transaction, captured vs not`);
    await backend.query(`CREATE TABLE plain_items (scope text NOT NULL, id bigint NOT NULL, name text, body text, score double precision, counter bigint, PRIMARY KEY (scope, id))`);
    const write = async (table: string, scope: string) => {
      const t0 = performance.now();
      for (let from = 1; from <= WRITE_ROWS; from += WRITE_BATCH) {
        const cols = table === 'plain_items' ? `scope, ${COLUMNS}` : `_syncline_scope, ${COLUMNS}`;
        await backend.query(`INSERT INTO ${table} (${cols}) ${values(from, WRITE_BATCH)}`, [scope]);
      }
      return (performance.now() - t0) / 1000;
    };
    // Alternating rounds, so a busy moment of the machine hits both sides.
    let plainSeconds = 0;
    let capturedSeconds = 0;
    for (let round = 0; round < 2; round++) {
      plainSeconds += await write('plain_items', `plain-${round}`);
      capturedSeconds += await write('syncline_shared.items', `captured-${round}`);
    }
    const delivered = await open(servers[0]!.url, 'delivered', 'device');
    await delivered.sync();
    const deliverStart = performance.now();
    const deliverWrite = await write('syncline_shared.items', 'delivered');
    let pulled = 0;
    while (pulled < WRITE_ROWS) pulled += (await delivered.pull()).rows;
    const deliverSeconds = (performance.now() - deliverStart) / 1000;
    const plainRate = (2 * WRITE_ROWS) / plainSeconds;
    const throughput = WRITE_ROWS / deliverSeconds / plainRate;
    const cost = capturedSeconds / plainSeconds;
    report.add({
      name: 'shared: captured backend writes delivered vs plain SQL',
      value: throughput,
      unit: 'x',
      baseline: `plain SQL into a table without capture: ${Math.round(plainRate).toLocaleString('en-US')} rows/s`,
      target: '>= 0.5',
      met: throughput >= 0.5,
      details: { rows: WRITE_ROWS, rows_per_statement: WRITE_BATCH, delivered_rows_per_s: WRITE_ROWS / deliverSeconds, deliver_write_seconds: deliverWrite, deliver_seconds: deliverSeconds },
    });
    report.add({
      name: 'shared: capture cost on the backend write',
      value: cost,
      unit: 'x slower',
      baseline: 'the same INSERTs into a table without capture, same run',
      target: '<= 1.5',
      met: cost <= 1.5,
      details: { plain_rows_per_s: plainRate, captured_rows_per_s: (2 * WRITE_ROWS) / capturedSeconds },
    });

    progress(`shared backend: hydrating ${HYDRATE_ROWS.toLocaleString('en-US')} rows through a proxy, 1 process then 3`);
    const store = await openStore({ databaseUrl: scratch.url, migrate: false });
    await seedServer(store, 'hydrate', HYDRATE_ROWS).finally(() => store.close());
    const hydrateThrough = async (count: number, name: string) => {
      const proxy = await startRoundRobinProxy(() => servers.slice(0, count).map((s) => s.url));
      try {
        const device = await open(proxy.url, 'hydrate', name);
        const t0 = performance.now();
        const rows = (await device.hydrate()).rows;
        if (rows !== HYDRATE_ROWS) throw new Error(`hydration brought ${rows} rows, expected ${HYDRATE_ROWS}`);
        return (performance.now() - t0) / 1000;
      } finally {
        await proxy.close();
      }
    };
    const one = await hydrateThrough(1, 'one');
    await Promise.all([start(1), start(2)]);
    const three = await hydrateThrough(3, 'three');
    report.add({
      name: 'shared: hydrate via proxy, 3 processes vs 1',
      value: one / three,
      unit: 'x',
      baseline: `one process behind the proxy: ${Math.round(HYDRATE_ROWS / one).toLocaleString('en-US')} rows/s`,
      target: '>= 0.9',
      met: one / three >= 0.9,
      details: { rows: HYDRATE_ROWS, one_process_seconds: one, three_processes_seconds: three },
    });
  } finally {
    for (const device of devices) await device.close().catch(() => {});
    await backend.end().catch(() => {});
    for (const server of servers) await server?.stop();
    await scratch.drop();
  }
}
