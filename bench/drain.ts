import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import { Agent } from '../src/device/agent.js';
import { ensureCapture } from '../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../src/device/driver/better-sqlite3-driver.js';
import { copyIn } from '../src/cloud/store/pg-copy.js';
import { Routes } from '../src/protocol/constants.js';
import { HttpTransport } from '../src/transport/http-transport.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer } from '../test/support/processes.js';
import { measureDrainStages, type DrainStages } from './drain-stages.js';
import { cpuMs } from './fan-in-fleet.js';
import { progress, type BenchReport, type Figure } from './report.js';
import { insertReadings, reading, READINGS_DDL } from './workload.js';

export const ROWS = 200_000;
const BASELINE_CHUNK = 1000;

interface SqlTarget {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/** The raw baseline: the same rows into a plain table with multi-row INSERTs, no Syncline in between. */
async function rawBulkInsert(target: SqlTarget): Promise<number> {
  await target.query('DROP TABLE IF EXISTS bench_raw_readings');
  await target.query(RAW_TABLE_DDL);
  const start = process.hrtime.bigint();
  for (let from = 1; from <= ROWS; from += BASELINE_CHUNK) {
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (let i = from; i < Math.min(ROWS + 1, from + BASELINE_CHUNK); i++) {
      const r = reading(i);
      const n = params.push(r.id, r.device, r.ts, r.value, r.note);
      tuples.push(`($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`);
    }
    await target.query(`INSERT INTO bench_raw_readings (id, device, ts, value, note) VALUES ${tuples.join(', ')}`, params);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await target.query('DROP TABLE bench_raw_readings');
  return ROWS / seconds;
}

const RAW_TABLE_DDL = 'CREATE TABLE bench_raw_readings (id bigint PRIMARY KEY, device text NOT NULL, ts bigint NOT NULL, value double precision, note text)';

/** The same rows as CSV, for COPY. */
function readingsCsv(): string {
  const lines: string[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const r = reading(i);
    lines.push(`${r.id},${r.device},${r.ts},${r.value},${r.note}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The fastest raw baseline: COPY of the same rows (CSV, one stream) into a plain
 * table with the same primary key. On PostgreSQL through psql's \copy (node-pg has
 * no COPY of its own), whose start-up (a few ms) is inside the time; on PGlite
 * through its /dev/blob input.
 */
async function rawCopy(dir: string, databaseUrl: string | undefined): Promise<number> {
  const csv = readingsCsv();
  if (databaseUrl) {
    const path = join(dir, 'readings.csv');
    writeFileSync(path, csv);
    const psql = (command: string) => execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', databaseUrl, '-c', command], { stdio: ['ignore', 'ignore', 'inherit'] });
    psql(`DROP TABLE IF EXISTS bench_raw_readings; ${RAW_TABLE_DDL}`);
    const start = process.hrtime.bigint();
    psql(`\\copy bench_raw_readings FROM '${path}' WITH (FORMAT csv)`);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    psql('DROP TABLE bench_raw_readings');
    return ROWS / seconds;
  }
  const pglite = new PGlite();
  try {
    await pglite.exec(RAW_TABLE_DDL);
    const start = process.hrtime.bigint();
    await pglite.query(`COPY bench_raw_readings FROM '/dev/blob' WITH (FORMAT csv)`, [], { blob: new Blob([csv]) });
    return ROWS / (Number(process.hrtime.bigint() - start) / 1e9);
  } finally {
    await pglite.close();
  }
}

/** Tab-separated text of the same rows, for COPY's text format through node-pg. */
function readingsText(): string {
  const lines: string[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const r = reading(i);
    lines.push(`${r.id}\t${r.device}\t${r.ts}\t${r.value}\t${r.note}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * CPU a raw COPY of the same rows costs, in µs per row: the client sending them
 * (node-pg, the COPY path the server itself uses) plus the PostgreSQL backend
 * storing them. CPU time, unlike wall time, hardly moves with the machine's load.
 */
async function rawCopyCpu(databaseUrl: string): Promise<{ client: number; postgres: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS bench_raw_readings; ${RAW_TABLE_DDL}`);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const backend = rows[0]!.pid;
    const text = readingsText();
    const before = { backend: cpuMs(backend), self: process.cpuUsage() };
    await copyIn(client, 'bench_raw_readings (id, device, ts, value, note)', text);
    const self = process.cpuUsage(before.self);
    const postgres = cpuMs(backend) - before.backend;
    await client.query('DROP TABLE bench_raw_readings');
    return { client: ((self.user + self.system) / 1000 / ROWS) * 1000, postgres: (postgres / ROWS) * 1000 };
  } finally {
    await client.end();
  }
}

/** A pipeline's CPU per row (device, server, PostgreSQL) against a raw COPY's (client, backend), with the ceiling that sets. */
export function cpuVersusCopy(name: string, baseline: string, prefix: string, cpu: { device: number; server: number; postgres: number }, copy: { client: number; postgres: number }): Figure {
  const total = cpu.device + cpu.server + cpu.postgres;
  const us = (n: number) => Number(n.toFixed(2));
  return {
    name,
    value: total / (copy.client + copy.postgres),
    unit: "x of raw COPY's CPU",
    baseline,
    details: {
      [`${prefix}_device_us_per_row`]: us(cpu.device),
      [`${prefix}_server_us_per_row`]: us(cpu.server),
      [`${prefix}_postgres_us_per_row`]: us(cpu.postgres),
      copy_client_us_per_row: us(copy.client),
      copy_postgres_us_per_row: us(copy.postgres),
      // COPY runs at the pace of its busier process; the pipeline, spread perfectly over two otherwise
      // idle cores, at two cores over its CPU per row: the best share of COPY's rate it could reach here.
      two_core_ceiling_x_of_copy: us((2 * Math.max(copy.client, copy.postgres)) / total),
      // With the device and the server free, PostgreSQL's own work alone would still cap the pipeline here.
      postgres_only_ceiling_x_of_copy: us(Math.max(copy.client, copy.postgres) / cpu.postgres),
      load_average_1m: Number(loadavg()[0]!.toFixed(1)),
    },
  };
}

/**
 * Where the drain's CPU goes, stage by stage: the JavaScript stages timed apart on
 * the same journal (drain-stages.ts), and what the end-to-end run spent beyond them
 * in each process.
 */
function stageFigure(stages: DrainStages, cpu: { device: number; server: number; postgres: number }): Figure {
  const us = (n: number) => Number(n.toFixed(2));
  const device = stages.journal_read + stages.build_json + stages.gzip + stages.ack_commit;
  const server = stages.gunzip_parse + stages.validate_decode;
  return {
    name: `CPU per row of the drain's stages (${ROWS.toLocaleString('en-US')} rows)`,
    value: us(cpu.device + cpu.server + cpu.postgres),
    unit: 'µs of CPU per row in all',
    baseline: 'the device and server stages timed one by one in the bench process on the same journal; the rest of each process from the end-to-end run',
    details: {
      device_journal_read: stages.journal_read,
      device_build_json: stages.build_json,
      device_gzip: stages.gzip,
      device_ack_commit: stages.ack_commit,
      device_rest_http_loop_sidecar: us(Math.max(0, cpu.device - device)),
      server_gunzip_json_parse: stages.gunzip_parse,
      server_validate_decode: stages.validate_decode,
      server_rest_http_ledger_copy_text: us(Math.max(0, cpu.server - server)),
      postgres: us(cpu.postgres),
      load_average_1m: Number(loadavg()[0]!.toFixed(1)),
    },
  };
}

/** CPU ms each PostgreSQL backend of the database has used so far. */
export async function backendCpu(databaseUrl: string): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    return new Map(rows.map((r) => [r.pid, cpuMs(r.pid)]));
  } finally {
    await client.end();
  }
}

/** A journal of ROWS captured inserts, as an app would leave it while the agent was away (bench/mqtt.ts drains copies of it too). */
export async function prepareJournal(dir: string, rows = ROWS): Promise<string> {
  const path = join(dir, 'drain.db');
  const app = new Database(path);
  app.pragma('journal_mode = WAL');
  app.exec(READINGS_DDL);
  const agentDb = BetterSqlite3Driver.open(path);
  await ensureCapture(agentDb);
  await agentDb.close();
  insertReadings(app, 1, rows + 1, 5000);
  app.close();
  return path;
}

/**
 * End-to-end drain: the agent ships a 200k-row journal over HTTP to a
 * `syncline server` process, which materializes it; compared with a raw bulk
 * insert of the same rows from this process. Also counts the bytes on the wire.
 */
export async function benchDrain(report: BenchReport, dir: string): Promise<void> {
  const onPostgres = await realPostgresReachable();
  const scratch = onPostgres ? await createScratchDatabase() : undefined;
  progress(`drain: writing a ${ROWS.toLocaleString('en-US')}-row journal`);
  const dbPath = await prepareJournal(dir);
  progress('drain: timing its JavaScript stages one by one on the same journal');
  const stages = await measureDrainStages(dbPath);
  progress(`drain: starting syncline server on ${onPostgres ? 'PostgreSQL' : 'PGlite'}`);
  const server = await startServer({ dataDir: join(dir, 'cloud'), databaseUrl: scratch?.url, extraArgs: ['--schema-policy', 'auto'] });
  try {
    const created = await fetch(`${server.url}${Routes.devices}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bench' }),
    });
    const device = (await created.json()) as { token: string };
    let wireBytes = 0;
    let requests = 0;
    // Time with a batch at the server (request sent until its answer's headers): one batch per table is in
    // flight, so the rest of the drain's wall time is the device's own share between an ack and the next send.
    let inFlightMs = 0;
    const countingFetch: typeof fetch = async (input, init) => {
      const body = init?.body;
      wireBytes += typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : 0;
      requests += 1;
      if (requests % 10 === 0) progress(`drain: ${requests} batches sent`);
      const sent = performance.now();
      try {
        return await fetch(input, init);
      } finally {
        inFlightMs += performance.now() - sent;
      }
    };
    const agent = new Agent({ dbPath, transport: new HttpTransport({ serverUrl: server.url, token: device.token, fetch: countingFetch }), once: true, logger: pino({ level: 'warn' }) });
    progress('drain: agent --once');
    const serverPid = server.child.pid!;
    const cpuBefore = { server: cpuMs(serverPid), device: process.cpuUsage(), postgres: scratch ? await backendCpu(scratch.url) : new Map<number, number>() };
    const start = process.hrtime.bigint();
    await agent.run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const deviceUsage = process.cpuUsage(cpuBefore.device);
    // Backends there at the start count from then; one the server's pool opened during the drain counts whole.
    const postgresMs = scratch ? [...(await backendCpu(scratch.url)).entries()].reduce((sum, [pid, ms]) => sum + ms - (cpuBefore.postgres.get(pid) ?? 0), 0) : 0;
    const drainCpu = { device: (deviceUsage.user + deviceUsage.system) / ROWS, server: ((cpuMs(serverPid) - cpuBefore.server) / ROWS) * 1000, postgres: (postgresMs / ROWS) * 1000 };
    const drainRate = ROWS / seconds;
    progress(`drain: ${Math.round(drainRate)} rows/s; now the raw baseline`);

    let baseline: number;
    if (scratch) {
      const client = new pg.Client({ connectionString: scratch.url });
      await client.connect();
      baseline = await rawBulkInsert(client).finally(() => client.end());
    } else {
      const pglite = new PGlite();
      baseline = await rawBulkInsert(pglite).finally(() => pglite.close());
    }
    const copyRate = await rawCopy(dir, scratch?.url);
    const copyCpu = scratch ? await rawCopyCpu(scratch.url) : undefined;
    const ratio = drainRate / baseline;
    if (copyCpu) {
      report.add(cpuVersusCopy(`CPU per row of the drain of ${ROWS.toLocaleString('en-US')} rows into PostgreSQL, vs COPY`, 'COPY of the same rows through node-pg (client + backend CPU), same run', 'drain', drainCpu, copyCpu));
    }
    report.add(stageFigure(stages, drainCpu));
    report.add({
      name: `end-to-end drain of ${ROWS.toLocaleString('en-US')} rows over HTTP into ${onPostgres ? 'PostgreSQL' : 'PGlite'}, vs COPY`,
      value: drainRate / copyRate,
      unit: 'x of raw COPY',
      baseline: `COPY (CSV) of the same rows into a plain table with the same primary key, same run${onPostgres ? " (psql's \\copy)" : ''}`,
      target: '>= 0.5',
      met: drainRate / copyRate >= 0.5,
      details: { drain_rows_per_s: Math.round(drainRate), raw_copy_rows_per_s: Math.round(copyRate), raw_insert_rows_per_s: Math.round(baseline), load_average_1m: Number(loadavg()[0]!.toFixed(1)) },
    });
    report.add({
      name: `end-to-end drain of ${ROWS.toLocaleString('en-US')} rows over HTTP into ${onPostgres ? 'PostgreSQL' : 'PGlite'}`,
      value: ratio,
      unit: 'x of raw bulk insert',
      baseline: `multi-row INSERT (${BASELINE_CHUNK} rows per statement) of the same rows from the bench process`,
      target: '>= 0.5',
      met: ratio >= 0.5,
      details: { drain_rows_per_s: Math.round(drainRate), raw_insert_rows_per_s: Math.round(baseline), seconds: Number(seconds.toFixed(2)), batches: requests, batch_at_server_share: Number((inFlightMs / 1000 / seconds).toFixed(2)) },
    });
    const plainJson = Array.from({ length: 1000 }, (_, i) => Buffer.byteLength(JSON.stringify(reading(i + 1)))).reduce((a, b) => a + b) / 1000;
    report.add({
      name: 'bytes on the wire per row',
      value: wireBytes / ROWS / plainJson,
      unit: 'x of the row as plain JSON',
      baseline: `plain JSON object of the row (${plainJson.toFixed(1)} bytes)`,
      details: { wire_bytes_per_row: Number((wireBytes / ROWS).toFixed(1)), plain_json_bytes_per_row: Number(plainJson.toFixed(1)), gzip: 'on when it helps (default)' },
    });
  } finally {
    await server.stop();
    await scratch?.drop();
  }
}
