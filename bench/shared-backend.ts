import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../src/cloud/store/open-store.js';
import { SharedSync } from '../src/device/twoway/shared-sync.js';
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
 * - captured plain-SQL writes against the same writes into a table without capture
 *   (with the floor of any trigger design beside it: the row trigger filling
 *   Syncline's columns alone, no second write of the row);
 * - delivery to a device syncing in the background, with the CPU each party used,
 *   and its ceiling: the same rows pulled and applied by one sync while nothing writes.
 * Hydration through a round-robin proxy over three processes is its own group
 * (benchSharedBackendHydrate, below).
 */

const LATENCY_ROUNDS = 40;
const WRITE_ROWS = 20_000;
const WRITE_ROUNDS = 5;
const WRITE_BATCH = 100;
const HYDRATE_ROWS = Number(process.env.SYNCLINE_BENCH_BACKEND_ROWS ?? 1_000_000);
const COLUMNS = 'id, name, body, score, counter';
const values = (from: number, n: number) => `SELECT $1, i, 'item-' || i, repeat('x', 140) || i, i * 0.5 + 0.25, i * 7 FROM generate_series(${from}, ${from + n - 1}) i`;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/**
 * CPU milliseconds the PostgreSQL backend of `client` has used, when PostgreSQL runs
 * on this machine (its /proc entry is readable), else NaN. On a machine shared with
 * other work this moves far less than wall time.
 */
async function backendCpu(client: pg.Client): Promise<() => number> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return processCpu(rows[0]!.pid);
}

/** CPU milliseconds process `pid` has used so far, read from /proc (NaN where there is none). */
function processCpu(pid: number): () => number {
  return () => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      // utime + stime, in clock ticks of 10 ms (USER_HZ is 100 on Linux)
      return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      return Number.NaN;
    }
  };
}

const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

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
  const cluster = await openCluster(dir);
  const { servers, start, open } = cluster;
  const backend = new pg.Client({ connectionString: cluster.url });
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

    progress(`shared backend: ${WRITE_ROWS.toLocaleString('en-US')} rows by plain SQL, ${WRITE_BATCH} per statement, ${WRITE_ROUNDS} alternating rounds`);
    await backend.query(`CREATE TABLE plain_items (scope text NOT NULL, id bigint NOT NULL, name text, body text, score double precision, counter bigint, PRIMARY KEY (scope, id))`);
    // The floor of capture by triggers: Syncline's four columns and their unique index, filled by
    // the least a row trigger can do (assign them), and no second write of the row.
    await backend.query(`CREATE TABLE floor_items (LIKE plain_items INCLUDING ALL, k text NOT NULL, v bigint NOT NULL, src text NOT NULL, hlc text NOT NULL, UNIQUE (scope, k));
      CREATE FUNCTION floor_fill() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.k := NEW.id::text; NEW.v := 1; NEW.src := 'backend'; NEW.hlc := 'h'; RETURN NEW; END $$;
      CREATE TRIGGER floor_fill BEFORE INSERT ON floor_items FOR EACH ROW EXECUTE FUNCTION floor_fill();`);
    const cpu = await backendCpu(backend);
    const write = async (table: string, scope: string) => {
      const cols = table === 'syncline_shared.items' ? `_syncline_scope, ${COLUMNS}` : `scope, ${COLUMNS}`;
      const c0 = cpu();
      const t0 = performance.now();
      for (let from = 1; from <= WRITE_ROWS; from += WRITE_BATCH) await backend.query(`INSERT INTO ${table} (${cols}) ${values(from, WRITE_BATCH)}`, [scope]);
      return { seconds: (performance.now() - t0) / 1000, cpuMs: cpu() - c0 };
    };
    // Alternating rounds, the figure the median of per-round ratios: a busy moment of the machine skews one round, not the figure.
    const rounds: Record<'plain' | 'floor' | 'captured', { seconds: number; cpuMs: number }[]> = { plain: [], floor: [], captured: [] };
    for (let round = 0; round < WRITE_ROUNDS; round++) {
      rounds.plain.push(await write('plain_items', `r${round}`));
      rounds.floor.push(await write('floor_items', `r${round}`));
      rounds.captured.push(await write('syncline_shared.items', `captured-${round}`));
    }
    const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
    const ratio = (mode: 'floor' | 'captured', of: 'seconds' | 'cpuMs') => median(rounds[mode].map((r, i) => r[of] / rounds.plain[i]![of]));
    const plainRate = WRITE_ROWS / median(rounds.plain.map((r) => r.seconds));

    // Delivered: the device runs in the background (event stream on) while the backend writes, as in production.
    const delivered = await open(servers[0]!.url, 'delivered', 'device');
    await delivered.sync();
    let pulled = 0;
    // Counted from the change events (every key is new), not by counting the table after each bundle: that scan was the bench's own CPU in the device's figure.
    const allPulled = until<void>((resolve) => delivered.onChange((event) => {
      pulled += event.keys.items?.length ?? 0;
      if (pulled >= WRITE_ROWS) resolve();
    }));
    delivered.start({ pollMs: 600_000 });
    // Where delivery spends CPU: this process runs the device, the server is its own process.
    const serverCpu = processCpu(servers[0]!.child.pid!);
    const deviceCpu0 = process.cpuUsage();
    const serverCpu0 = serverCpu();
    const deliverStart = performance.now();
    const deliverWrite = await write('syncline_shared.items', 'delivered');
    await allPulled;
    const deliverSeconds = (performance.now() - deliverStart) / 1000;
    const deviceCpuMs = cpuMs(process.cpuUsage(deviceCpu0));
    const serverCpuMs = serverCpu() - serverCpu0;
    await delivered.stop();
    // The ceiling of delivery whatever the capture costs: the same rows written while the device
    // is stopped, then pulled and applied by one sync (no write shares the cores with it).
    const caughtUp = await open(servers[0]!.url, 'caught-up', 'device');
    await caughtUp.sync();
    await write('syncline_shared.items', 'caught-up');
    const catchUpCpu0 = process.cpuUsage();
    const catchUpStart = performance.now();
    const catchUp = await caughtUp.sync();
    const catchUpSeconds = (performance.now() - catchUpStart) / 1000;
    const catchUpCpuMs = cpuMs(process.cpuUsage(catchUpCpu0));
    if (catchUp.pull.rows !== WRITE_ROWS) throw new Error(`the catch-up pull brought ${catchUp.pull.rows} rows, expected ${WRITE_ROWS}`);
    const throughput = WRITE_ROWS / deliverSeconds / plainRate;
    report.add({
      name: 'shared: captured backend writes delivered vs plain SQL',
      value: throughput,
      unit: 'x',
      baseline: `plain SQL into a table without capture: ${Math.round(plainRate).toLocaleString('en-US')} rows/s`,
      target: '>= 0.5',
      met: throughput >= 0.5,
      details: {
        rows: WRITE_ROWS,
        rows_per_statement: WRITE_BATCH,
        delivered_rows_per_s: WRITE_ROWS / deliverSeconds,
        deliver_write_seconds: deliverWrite.seconds,
        deliver_seconds: deliverSeconds,
        // CPU while delivering: the backend's PostgreSQL connection, the device (this process) and the server process.
        deliver_backend_cpu_ms: deliverWrite.cpuMs,
        deliver_device_cpu_ms: deviceCpuMs,
        deliver_server_cpu_ms: serverCpuMs,
        catch_up_pull_rows_per_s: WRITE_ROWS / catchUpSeconds,
        catch_up_device_cpu_ms: catchUpCpuMs,
        ceiling_ratio: WRITE_ROWS / catchUpSeconds / plainRate,
      },
    });
    const cost = ratio('captured', 'seconds');
    report.add({
      name: 'shared: capture cost on the backend write',
      value: cost,
      unit: 'x slower',
      baseline: `the same INSERTs into a table without capture, same run; floor of a trigger design (4 columns filled by a row trigger, no second write): ${ratio('floor', 'seconds').toFixed(2)}x`,
      target: '<= 1.5',
      met: cost <= 1.5,
      details: {
        rounds: WRITE_ROUNDS,
        plain_rows_per_s: plainRate,
        captured_rows_per_s: WRITE_ROWS / median(rounds.captured.map((r) => r.seconds)),
        floor_ratio: ratio('floor', 'seconds'),
        ...(Number.isNaN(rounds.plain[0]!.cpuMs) ? {} : { backend_cpu_ratio: ratio('captured', 'cpuMs'), floor_backend_cpu_ratio: ratio('floor', 'cpuMs') }),
      },
    });
  } finally {
    await backend.end().catch(() => {});
    await cluster.close();
  }
}

/**
 * Hydration of SYNCLINE_BENCH_BACKEND_ROWS rows (1,000,000 by default) through a
 * round-robin proxy over three `syncline server` processes, against one process
 * behind the same proxy. Its own group (`shared-backend-hydrate`): seeding and
 * hydrating a million rows twice takes minutes.
 */
export async function benchSharedBackendHydrate(report: BenchReport, dir: string): Promise<void> {
  if (!(await realPostgresReachable())) {
    progress('shared backend hydrate: PostgreSQL is not reachable; skipped');
    return;
  }
  const cluster = await openCluster(dir);
  const { servers, start, open } = cluster;
  try {
    await start(0);
    progress(`shared backend: hydrating ${HYDRATE_ROWS.toLocaleString('en-US')} rows through a proxy, 1 process then 3`);
    const store = await openStore({ databaseUrl: cluster.url, migrate: false });
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
    await cluster.close();
  }
}

/** A scratch database, `syncline server` processes on it (started by index) and the devices opened, all closed together. */
async function openCluster(dir: string) {
  const scratch = await createScratchDatabase();
  const configPath = join(dir, 'shared.json');
  writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: SECRET }, tables: CONFIG.tables }));
  const servers: ServerProcess[] = [];
  const devices: SharedSync[] = [];
  return {
    url: scratch.url,
    servers,
    start: async (i: number) => (servers[i] = await startServer({ dataDir: join(dir, `s${i}`), databaseUrl: scratch.url, extraArgs: ['--shared-config', configPath] })),
    async open(url: string, user: string, name: string): Promise<SharedSync> {
      const device = await SharedSync.open({ path: join(dir, `${user}-${name}.db`), serverUrl: url, token: await hs256Token(SECRET, { sub: user }), source: name });
      devices.push(device);
      return device;
    },
    async close(): Promise<void> {
      for (const device of devices) await device.close().catch(() => {});
      for (const server of servers) await server?.stop();
      await scratch.drop();
    },
  };
}
