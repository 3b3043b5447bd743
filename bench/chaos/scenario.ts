import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../../src/device/capture.js';
import { openDeviceDb } from '../../src/device/device-db.js';
import { freePort } from '../../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../../test/support/postgres.js';
import { createDeviceToken } from '../../test/support/processes.js';
import { lineages, type Lineage } from '../../test/support/replication-check.js';
import { ChaosAgent, ChaosServer, ChaosWriter, terminateBackends, type WriterResult } from './actors.js';
import { diffTable, type TableDiff } from './compare.js';

export type FaultKind = 'server_sigkill' | 'server_restart' | 'pg_backend_termination' | 'agent_sigkill' | 'device_disk_full';

export interface ChaosOptions {
  dir: string;
  /** How many times the whole list of faults is injected. */
  rounds: number;
  /** Quiet time before each fault, and how long a window fault (termination loop, full disk) lasts. */
  calmMs: number;
  windowMs: number;
  /** Pause between the writers' transactions. */
  writerPauseMs: number;
  /** The faults to inject (default all; the backend termination loop needs PostgreSQL). */
  kinds?: readonly FaultKind[];
  log?: (message: string) => void;
}

export interface ChaosResult {
  store: 'postgres' | 'pglite';
  duration_s: number;
  operations: { commits: number; changes: number; disk_full_refusals: number };
  faults: Partial<Record<FaultKind, number>>;
  pg_backends_terminated: number;
  rows_lost: number;
  rows_duplicated: number;
  wrong_values: number;
  /** Journal changes the cloud received more or fewer times than the writers made them. */
  changes_lost: number;
  changes_duplicated: number;
  server_crashes: number;
  /** Milliseconds from a fault (from its end, for the termination loop and the full disk) until the cloud ingests new rows again. */
  recovery_ms: Partial<Record<FaultKind, { p50: number; max: number; n: number }>>;
  unrecovered: number;
  tables: (TableDiff & { device: string })[];
}

const ADMIN_TOKEN = 'chaos-admin-token-0123456789';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setupDevice(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, n INTEGER); CREATE TABLE kv (k TEXT PRIMARY KEY, v)');
  db.close();
  const device = openDeviceDb(path);
  ensureCapture(device);
  device.close();
}

/**
 * Two devices (one over HTTP, one over MQTT through the embedded broker) whose app
 * commits inserts, updates and deletes the whole time, shipped by `syncline agent`
 * processes to a `syncline server` process, while faults are injected one after
 * the other. At the end every source row is compared with its mirror and every
 * journal change counted against what the apps committed.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const pgReachable = await realPostgresReachable();
  const scratch = pgReachable ? await createScratchDatabase() : undefined;
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const server = new ChaosServer({ dataDir: join(options.dir, 'cloud'), databaseUrl: scratch?.url, adminToken: ADMIN_TOKEN, httpPort, extraArgs: ['--schema-policy', 'auto', '--mqtt-port', String(mqttPort)] });
  const writers: ChaosWriter[] = [];
  const agents: ChaosAgent[] = [];
  try {
    await server.start();
    const devices = await Promise.all(['http', 'mqtt'].map(async (name) => ({ name, path: join(options.dir, `${name}.db`), ...(await createDeviceToken({ url: server.url, adminToken: ADMIN_TOKEN } as never, `chaos-${name}`)) })));
    for (const [i, d] of devices.entries()) {
      setupDevice(d.path);
      writers.push(new ChaosWriter(d.path, 1000 + i, options.writerPauseMs));
    }
    const batching = ['--max-batch-rows', '50', '--flush-interval-ms', '100'];
    agents.push(new ChaosAgent(['--db', devices[0]!.path, '--server', server.url, '--token', devices[0]!.token, ...batching], join(options.dir, 'agent-http.log')));
    agents.push(new ChaosAgent(['--db', devices[1]!.path, '--transport', 'mqtt', '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--device-id', devices[1]!.device_id, '--token', devices[1]!.token, ...batching], join(options.dir, 'agent-mqtt.log')));
    for (const a of agents) a.start();

    const admin = { get url() { return server.url; }, adminToken: ADMIN_TOKEN };
    const received = async (): Promise<number | undefined> => {
      try {
        let total = 0;
        for (const d of devices) for (const l of await lineages(admin, d.device_id)) total += l.rows_received;
        return total;
      } catch {
        return undefined;
      }
    };
    const recoveries: Partial<Record<FaultKind, number[]>> = {};
    const faults: Partial<Record<FaultKind, number>> = {};
    let unrecovered = 0;
    let terminated = 0;
    /** Waits until the cloud has ingested more than it had when this is called (read once it answers), and records the time since `since`. */
    const recovery = async (kind: FaultKind, since: number) => {
      faults[kind] = (faults[kind] ?? 0) + 1;
      const deadline = Date.now() + 60_000;
      let base: number | undefined;
      while (Date.now() < deadline) {
        const now = await received();
        if (now !== undefined && base === undefined) base = now;
        else if (now !== undefined && base !== undefined && now > base) {
          (recoveries[kind] ??= []).push(Date.now() - since);
          log(`${kind}: ingest resumed after ${Date.now() - since} ms`);
          return;
        }
        await sleep(100);
      }
      unrecovered += 1;
      log(`${kind}: ingest did not resume within 60 s`);
    };

    const inject: Record<FaultKind, (() => Promise<void>) | undefined> = {
      server_sigkill: async () => {
        const at = Date.now();
        await server.stop('SIGKILL');
        await server.start();
        await recovery('server_sigkill', at);
      },
      // Stops and starts the server, and with it the embedded MQTT broker the MQTT agent is connected to.
      server_restart: async () => {
        const at = Date.now();
        await server.stop('SIGTERM');
        await server.start();
        await recovery('server_restart', at);
      },
      pg_backend_termination: scratch
        ? async () => {
            const loop = terminateBackends(scratch.url, 300);
            await sleep(options.windowMs);
            terminated += await loop.stop();
            await recovery('pg_backend_termination', Date.now());
          }
        : undefined,
      agent_sigkill: async () => {
        const at = Date.now();
        await Promise.all(agents.map((a) => a.stop('SIGKILL')));
        for (const a of agents) a.start();
        await recovery('agent_sigkill', at);
      },
      device_disk_full: async () => {
        for (const w of writers) w.setFull(true);
        await sleep(options.windowMs);
        for (const w of writers) w.setFull(false);
        await recovery('device_disk_full', Date.now());
      },
    };
    for (let round = 0; round < options.rounds; round++) {
      for (const [kind, run] of Object.entries(inject) as [FaultKind, (() => Promise<void>) | undefined][]) {
        if (!run || (options.kinds && !options.kinds.includes(kind))) continue;
        await sleep(options.calmMs);
        log(`round ${round + 1}: ${kind}`);
        await run();
      }
    }

    const results: WriterResult[] = [];
    for (const w of writers) results.push(await w.finish());
    const expected = (i: number, table: string) => results[i]!.changes[table] ?? 0;
    const finalLineages = async () => Promise.all(devices.map((d) => lineages(admin, d.device_id)));
    let found: Lineage[][] = [];
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      found = await finalLineages().catch(() => found);
      if (found.every((ls, i) => ls.length === 2 && ls.every((l) => l.rows_received >= expected(i, l.source_table)))) break;
      await sleep(250);
    }
    for (const a of agents) await a.stop('SIGTERM');
    found = await finalLineages();
    const tables: ChaosResult['tables'] = [];
    let changesLost = 0;
    let changesDuplicated = 0;
    for (const [i, ls] of found.entries()) {
      for (const table of ['items', 'kv']) {
        const lineage = ls.find((l) => l.source_table === table);
        const want = expected(i, table);
        const got = lineage?.rows_received ?? 0;
        changesLost += Math.max(0, want - got);
        changesDuplicated += Math.max(0, got - want);
        if (lineage) tables.push({ device: devices[i]!.name, ...(await diffTable(admin, devices[i]!.path, lineage)) });
        else tables.push({ device: devices[i]!.name, table, source_rows: -1, mirror_rows: 0, lost: want, duplicated: 0, wrong: 0 });
      }
    }
    const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))]!;
    const recovery_ms = Object.fromEntries(Object.entries(recoveries).map(([k, v]) => [k, { p50: percentile(v, 0.5), max: Math.max(...v), n: v.length }]));
    return {
      store: scratch ? 'postgres' : 'pglite',
      duration_s: (Date.now() - started) / 1000,
      operations: {
        commits: results.reduce((n, r) => n + r.commits, 0),
        changes: results.reduce((n, r) => n + Object.values(r.changes).reduce((a, b) => a + b, 0), 0),
        disk_full_refusals: results.reduce((n, r) => n + r.full_refusals, 0),
      },
      faults,
      pg_backends_terminated: terminated,
      rows_lost: tables.reduce((n, t) => n + t.lost, 0),
      rows_duplicated: tables.reduce((n, t) => n + t.duplicated, 0),
      wrong_values: tables.reduce((n, t) => n + t.wrong, 0),
      changes_lost: changesLost,
      changes_duplicated: changesDuplicated,
      server_crashes: server.crashes,
      recovery_ms,
      unrecovered,
      tables,
    };
  } finally {
    for (const w of writers) await w.finish().catch(() => {});
    for (const a of agents) await a.stop('SIGKILL').catch(() => {});
    await server.stop('SIGTERM').catch(() => {});
    await scratch?.drop().catch(() => {});
  }
}
