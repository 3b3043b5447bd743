import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import { Agent } from '../src/device/agent.js';
import { copyIn } from '../src/cloud/store/pg-copy.js';
import { Routes } from '../src/protocol/constants.js';
import { HttpTransport } from '../src/transport/http-transport.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer } from '../test/support/processes.js';
import { backendCpu, cpuVersusCopy } from './drain.js';
import { cpuMs } from './fan-in-fleet.js';
import { progress, type BenchReport } from './report.js';
import { insertReadings, reading, READINGS_DDL } from './workload.js';

const ROWS = 200_000;
const CAPTURE_ROWS = 50_000;
const ROUNDS = 5;

function insertRate(path: string, from: number): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  const start = process.hrtime.bigint();
  insertReadings(db, from, from + CAPTURE_ROWS, 1000);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  return CAPTURE_ROWS / seconds;
}

/**
 * Capture overhead of a telemetry table: the same inserts into a plain file and
 * into one whose table an agent ships as telemetry (its state installed in the
 * file), alternating rounds; the figure is the median of per-round ratios.
 */
async function captureOverhead(report: BenchReport, dir: string): Promise<void> {
  const plain = join(dir, 'plain.db');
  const synced = join(dir, 'synced.db');
  for (const path of [plain, synced]) {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(READINGS_DDL);
    db.close();
  }
  // Install the agent's state the way `syncline agent --telemetry readings=ts` does (it needs no server for that).
  const transport = { encodeRowBatch: () => Promise.reject(new Error('unused')), sendRowBatch: () => Promise.reject(new Error('unused')), sendTelemetryBatch: () => Promise.reject(new Error('offline')) };
  const agent = new Agent({ dbPath: synced, transport, telemetry: [{ table: 'readings', timeColumn: 'ts' }], logger: pino({ level: 'silent' }) });
  const running = agent.run();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await agent.stop();
  await running.catch(() => {});
  const ratios: number[] = [];
  let next = 1;
  for (let round = 0; round < ROUNDS; round++) {
    const a = insertRate(plain, next);
    const b = insertRate(synced, next);
    next += CAPTURE_ROWS;
    ratios.push(a / b);
  }
  ratios.sort((x, y) => x - y);
  const median = ratios[Math.floor(ratios.length / 2)]!;
  report.add({
    name: 'telemetry capture overhead (1,000 rows per transaction)',
    value: median,
    unit: 'x slower',
    baseline: 'the same inserts into a plain file, alternating rounds',
    target: '<= 1.05',
    met: median <= 1.05,
    details: { rounds: ratios.map((r) => Number(r.toFixed(3))) },
  });
}

/** The same values as the store holds them, as CSV for COPY. */
function copyCsv(deviceId: string, points: Map<string, number>): Buffer {
  const lines: string[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const r = reading(i);
    const ts = new Date(r.ts).toISOString();
    lines.push(`${deviceId},${points.get('readings.id')},${ts},${r.id},,`);
    lines.push(`${deviceId},${points.get('readings.device')},${ts},,${r.device},`);
    lines.push(`${deviceId},${points.get('readings.value')},${ts},${r.value},,`);
    lines.push(`${deviceId},${points.get('readings.note')},${ts},,"${r.note}",`);
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

/** The same values in COPY's text format, for node-pg's COPY (the path the server uses). */
function copyTextRows(deviceId: string, points: Map<string, number>): string {
  const lines: string[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const r = reading(i);
    const ts = new Date(r.ts).toISOString();
    lines.push(`${deviceId}\t${points.get('readings.id')}\t${ts}\t${r.id}\t\\N\t\\N`);
    lines.push(`${deviceId}\t${points.get('readings.device')}\t${ts}\t\\N\t${r.device}\t\\N`);
    lines.push(`${deviceId}\t${points.get('readings.value')}\t${ts}\t${r.value}\t\\N\t\\N`);
    lines.push(`${deviceId}\t${points.get('readings.note')}\t${ts}\t\\N\t${r.note}\t\\N`);
  }
  return `${lines.join('\n')}\n`;
}

/** CPU µs per row of a raw COPY of the same values through node-pg: this process sending, the backend storing. */
async function copyCpu(client: pg.Client, text: string): Promise<{ client: number; postgres: number }> {
  await client.query('TRUNCATE bench_copy_values');
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const before = { backend: cpuMs(rows[0]!.pid), self: process.cpuUsage() };
  await copyIn(client, 'bench_copy_values', text);
  const self = process.cpuUsage(before.self);
  return { client: (self.user + self.system) / ROWS, postgres: ((cpuMs(rows[0]!.pid) - before.backend) / ROWS) * 1000 };
}

async function psqlCopy(url: string, csv: Buffer): Promise<number> {
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('psql', [url, '-v', 'ON_ERROR_STOP=1', '-c', '\\copy bench_copy_values FROM STDIN WITH (FORMAT csv)'], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql exited ${code}`))));
    child.stdin.end(csv);
  });
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Telemetry ingest: the agent ships a 200k-row telemetry table over HTTP to a
 * `syncline server` process (auto policy, 4 points per row), compared with a raw
 * COPY of the same values into a table of the store's shape (same partitions and
 * indexes), measured in the same run.
 */
export async function benchTelemetry(report: BenchReport, dir: string): Promise<void> {
  await captureOverhead(report, dir);
  if (!(await realPostgresReachable())) {
    progress('telemetry: PostgreSQL not reachable; ingest figure skipped');
    return;
  }
  const scratch = await createScratchDatabase();
  const path = join(dir, 'telemetry.db');
  const app = new Database(path);
  app.pragma('journal_mode = WAL');
  app.exec(READINGS_DDL);
  insertReadings(app, 1, ROWS + 1, 5000);
  app.close();
  const server = await startServer({ dataDir: join(dir, 'cloud'), databaseUrl: scratch.url, extraArgs: ['--schema-policy', 'auto'] });
  const client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
  try {
    const created = await fetch(`${server.url}${Routes.devices}`, { method: 'POST', headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
    const device = (await created.json()) as { device_id: string; token: string };
    progress('telemetry: agent --once --telemetry readings=ts');
    const agent = new Agent({ dbPath: path, transport: new HttpTransport({ serverUrl: server.url, token: device.token }), once: true, telemetry: [{ table: 'readings', timeColumn: 'ts' }], logger: pino({ level: 'warn' }) });
    const serverPid = server.child.pid!;
    const cpuBefore = { server: cpuMs(serverPid), device: process.cpuUsage(), postgres: await backendCpu(scratch.url) };
    const start = process.hrtime.bigint();
    await agent.run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const ingestRate = ROWS / seconds;
    const deviceUsage = process.cpuUsage(cpuBefore.device);
    const postgresMs = [...(await backendCpu(scratch.url)).entries()].reduce((sum, [pid, ms]) => sum + ms - (cpuBefore.postgres.get(pid) ?? 0), 0);
    const ingestCpu = { device: (deviceUsage.user + deviceUsage.system) / ROWS, server: ((cpuMs(serverPid) - cpuBefore.server) / ROWS) * 1000, postgres: (postgresMs / ROWS) * 1000 };
    const { rows: pointRows } = await client.query<{ name: string; id: number }>('SELECT name, id FROM telemetry_points');
    const points = new Map(pointRows.map((p) => [p.name, p.id]));
    const { rows: counted } = await client.query<{ n: string }>('SELECT count(*) AS n FROM telemetry_values');
    progress(`telemetry: ${Math.round(ingestRate)} rows/s (${counted[0]!.n} values); now raw COPY`);
    await client.query('CREATE TABLE bench_copy_values (LIKE telemetry_values) PARTITION BY RANGE (ts)');
    const { rows: parts } = await client.query<{ bound: string }>(
      `SELECT pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'telemetry_values'::regclass`,
    );
    for (const [i, p] of parts.entries()) await client.query(`CREATE TABLE bench_copy_values_${i} PARTITION OF bench_copy_values ${p.bound}`);
    await client.query('CREATE INDEX ON bench_copy_values (device_id, point_id, ts)');
    await client.query('CREATE INDEX ON bench_copy_values USING brin (ts)');
    const copySeconds = await psqlCopy(scratch.url, copyCsv(device.device_id, points));
    const copyRate = ROWS / copySeconds;
    const ratio = ingestRate / copyRate;
    const raw = await copyCpu(client, copyTextRows(device.device_id, points));
    report.add(cpuVersusCopy(`CPU per row of the telemetry ingest of ${ROWS.toLocaleString('en-US')} rows (4 points each), vs COPY`, "COPY of the same values through node-pg into a table of the store's shape (client + backend CPU), same run", 'ingest', ingestCpu, raw));
    report.add({
      name: `telemetry ingest of ${ROWS.toLocaleString('en-US')} rows (4 points each) over HTTP into PostgreSQL`,
      value: ratio,
      unit: 'x of raw COPY',
      baseline: 'psql \\copy of the same values into a table of the store\'s shape (partitions, btree + BRIN)',
      target: '>= 0.5',
      met: ratio >= 0.5,
      details: { ingest_rows_per_s: Math.round(ingestRate), copy_rows_per_s: Math.round(copyRate), seconds: Number(seconds.toFixed(2)), copy_seconds: Number(copySeconds.toFixed(2)), values: Number(counted[0]!.n) },
    });
  } finally {
    await client.end();
    await server.stop();
    await scratch.drop();
  }
}
