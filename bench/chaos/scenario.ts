import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { freePort } from '../../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../../test/support/postgres.js';
import { hs256Token } from '../../test/support/jwt.js';
import { lineages, type Lineage } from '../../test/support/replication-check.js';
import { Routes } from '../../src/protocol/constants.js';
import { ChaosAgent, ChaosServer, ChaosWriter, setClockOffset, terminateBackends } from './actors.js';
import { diffTable, type TableDiff } from './compare.js';
import { SHARED_TABLE_SQL, type EdgeAppResult, type SharedAppResult, type WriterPlan } from './plan.js';
import { deviceNotes, diffTwoWay, pgliteNotes, postgresNotes, sameNotes, type NoteRows, type TwoWayDiff } from './two-way.js';

export type FaultKind = 'server_sigkill' | 'server_restart' | 'pg_backend_termination' | 'agent_sigkill' | 'device_disk_full' | 'clock_jump';

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
  /**
   * Inject the window faults (backend termination loop, full disk, clock jump) at
   * the same time, in one window, instead of one after the other: the small round
   * in npm test proves the same exactness in a third of the time; recovery times
   * are then those of the three together.
   */
  windowsTogether?: boolean;
  /** The edge agents' --retry-max-ms (default theirs, 30 s): a small round caps it so a restarted server is found within a second. */
  agentRetryMaxMs?: number;
  log?: (message: string) => void;
}

export interface ChaosResult {
  store: 'postgres' | 'pglite';
  duration_s: number;
  operations: { commits: number; changes: number; disk_full_refusals: number; two_way_writes: number };
  faults: Partial<Record<FaultKind, number>>;
  pg_backends_terminated: number;
  rows_lost: number;
  rows_duplicated: number;
  wrong_values: number;
  /** Journal changes the cloud received more or fewer times than the writers made them. */
  changes_lost: number;
  changes_duplicated: number;
  server_crashes: number;
  /**
   * The two two-way devices (one user, one scope; one of them with its clock
   * jumped forward then back) against PostgreSQL: see two-way.ts. `converged_ms`
   * is how long after the apps stopped every device matched the server.
   */
  two_way: TwoWayDiff & { devices: number; rows: number; converged_ms: number | null };
  /** Milliseconds from a fault (from its end, for the termination loop and the full disk) until the cloud ingests new rows again. */
  recovery_ms: Partial<Record<FaultKind, { p50: number; max: number; n: number }>>;
  unrecovered: number;
  tables: (TableDiff & { device: string })[];
}

const ADMIN_TOKEN = 'chaos-admin-token-0123456789';
const JWT_SECRET = 'chaos-jwt-secret-0123456789abcdefghij';
/** The user both two-way devices belong to: one scope. */
const SCOPE = 'chaos-user';
/** How far the jumped device's clock runs ahead, then behind. */
const CLOCK_JUMP_MS = 15 * 60_000;
const CLOCK_PRELOAD = fileURLToPath(new URL('./clock-offset-preload.js', import.meta.url));
const SHARED_CONFIG = {
  auth: { hs256_secret: JWT_SECRET },
  tables: [
    {
      name: 'notes',
      direction: 'both',
      key: ['id'],
      conflict: 'last_writer_wins',
      columns: [
        { name: 'id', type: 'TEXT' },
        { name: 'body', type: 'TEXT' },
        { name: 'n', type: 'INTEGER' },
      ],
    },
  ],
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function setupDevice(path: string): Promise<void> {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, n INTEGER); CREATE TABLE kv (k TEXT PRIMARY KEY, v)');
  db.close();
  const device = BetterSqlite3Driver.open(path);
  await ensureCapture(device);
  await device.close();
}

function setupSharedDevice(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(SHARED_TABLE_SQL);
  db.close();
}

async function createDevice(server: { url: string }, name: string): Promise<{ device_id: string; token: string }> {
  const response = await fetch(`${server.url}${Routes.devices}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) throw new Error(`device create answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as { device_id: string; token: string };
}

/** The largest counter of `author`'s values in a device's notes: how far its writes got there. */
function latestBy(rows: NoteRows, author: string): number {
  let latest = 0;
  for (const value of rows.values()) if (value.startsWith(`${author}:`)) latest = Math.max(latest, Number(value.slice(author.length + 1).split('|')[0]));
  return latest;
}

/**
 * Two edge devices (one over HTTP, one over MQTT through the embedded broker) whose
 * apps commit inserts, updates and deletes the whole time, shipped by `syncline
 * agent` processes, and two two-way devices of one user (`syncline agent
 * --shared`) editing a shared table, keys of their own and keys both write, all on
 * one `syncline server` process, while faults are injected one after the other.
 * At the end every source row is compared with its mirror, every journal change
 * counted against what the apps committed, and the shared table on the server and
 * on both two-way devices checked against what their apps wrote.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const pgReachable = await realPostgresReachable();
  const scratch = pgReachable ? await createScratchDatabase() : undefined;
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const sharedConfig = join(options.dir, 'shared.json');
  writeFileSync(sharedConfig, JSON.stringify(SHARED_CONFIG));
  const cloudDir = join(options.dir, 'cloud');
  const server = new ChaosServer({ dataDir: cloudDir, databaseUrl: scratch?.url, adminToken: ADMIN_TOKEN, httpPort, extraArgs: ['--schema-policy', 'auto', '--mqtt-port', String(mqttPort), '--shared-config', sharedConfig] });
  const edge = ['http', 'mqtt'].map((name) => ({ name, path: join(options.dir, `${name}.db`) }));
  // `jumpy` is the two-way device whose clock jumps.
  const twoWay = ['steady', 'jumpy'].map((name) => ({ name, path: join(options.dir, `${name}.db`) }));
  for (const d of edge) await setupDevice(d.path);
  for (const d of twoWay) setupSharedDevice(d.path);
  const plan: WriterPlan = {
    stopFile: join(options.dir, 'apps.stop'),
    pauseMs: options.writerPauseMs,
    apps: [...edge.map((d, i) => ({ kind: 'edge' as const, db: d.path, seed: 1000 + i, name: d.name })), ...twoWay.map((d, i) => ({ kind: 'shared' as const, db: d.path, seed: 2000 + i, name: d.name }))],
  };
  let writer: ChaosWriter | undefined;
  const agents: ChaosAgent[] = [];
  try {
    // The apps start with the server: they need nothing from it (the two-way ones wait for their agent's triggers).
    writer = new ChaosWriter(plan);
    await server.start();
    const devices = await Promise.all(edge.map(async (d) => ({ ...d, ...(await createDevice(server, `chaos-${d.name}`)) })));
    const batching = ['--max-batch-rows', '50', '--flush-interval-ms', '100', ...(options.agentRetryMaxMs ? ['--retry-max-ms', String(options.agentRetryMaxMs)] : [])];
    agents.push(new ChaosAgent(['--db', devices[0]!.path, '--server', server.url, '--token', devices[0]!.token, ...batching], join(options.dir, 'agent-http.log')));
    agents.push(new ChaosAgent(['--db', devices[1]!.path, '--transport', 'mqtt', '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--device-id', devices[1]!.device_id, '--token', devices[1]!.token, ...batching], join(options.dir, 'agent-mqtt.log')));
    // A day's token: the run's clock jumps stay far inside it.
    const jwt = await hs256Token(JWT_SECRET, { sub: SCOPE }, { expiresInSec: 86_400 });
    for (const d of twoWay) {
      const clock = d.name === 'jumpy' ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${CLOCK_PRELOAD}`.trim(), SYNCLINE_CHAOS_CLOCK_FILE: `${d.path}.clock` } : {};
      agents.push(new ChaosAgent(['--db', d.path, '--server', server.url, '--shared', '--jwt', jwt, '--source', d.name, '--poll-ms', '500'], join(options.dir, `agent-${d.name}.log`), clock));
    }
    for (const a of agents) a.start();
    // The faults are for the two-way devices too: they begin once both agents have installed capture (their apps start writing then).
    const captured = (path: string) => {
      const db = new Database(path, { readonly: true });
      try {
        return Number(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'notes'").pluck().get()) > 0;
      } finally {
        db.close();
      }
    };
    const captureDeadline = Date.now() + 60_000;
    while (!twoWay.every((d) => captured(d.path)) && Date.now() < captureDeadline) await sleep(100);

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
    const recovered = (kind: FaultKind, since: number, what: string) => {
      (recoveries[kind] ??= []).push(Date.now() - since);
      log(`${kind}: ${what} after ${Date.now() - since} ms`);
    };
    /** Waits until the cloud has ingested more than it had when this is called (read once it answers), and records the time since `since`. */
    const recovery = async (kind: FaultKind, since: number) => {
      faults[kind] = (faults[kind] ?? 0) + 1;
      const deadline = Date.now() + 60_000;
      let base: number | undefined;
      while (Date.now() < deadline) {
        const now = await received();
        if (now !== undefined && base === undefined) base = now;
        else if (now !== undefined && base !== undefined && now > base) return recovered(kind, since, 'ingest resumed');
        await sleep(100);
      }
      unrecovered += 1;
      log(`${kind}: ingest did not resume within 60 s`);
    };
    /** Waits until the steady device holds a write the jumpy one made after its clock was put right. */
    const twoWayRecovery = async (since: number) => {
      faults.clock_jump = (faults.clock_jump ?? 0) + 1;
      const [steady, jumpy] = twoWay.map((d) => d.path) as [string, string];
      const target = latestBy(deviceNotes(jumpy), 'jumpy') + 1;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        if (latestBy(deviceNotes(steady), 'jumpy') >= target) return recovered('clock_jump', since, 'the other device has its writes');
        await sleep(100);
      }
      unrecovered += 1;
      log('clock_jump: the other device did not get the jumped device\'s writes within 60 s');
    };

    const windows: Partial<Record<FaultKind, { begin(): void; end(): Promise<void>; halfway?: () => void }>> = {
      pg_backend_termination: scratch
        ? (() => {
            let loop: ReturnType<typeof terminateBackends> | undefined;
            return {
              begin: () => (loop = terminateBackends(scratch.url, 300)),
              end: async () => {
                terminated += await loop!.stop();
              },
            };
          })()
        : undefined,
      device_disk_full: { begin: () => writer!.setFull(true), end: async () => writer!.setFull(false) },
      // Ahead first (its writes win every conflict meanwhile), then behind: its stamps must still order after its earlier ones.
      clock_jump: { begin: () => setClockOffset(twoWay[1]!.path, CLOCK_JUMP_MS), halfway: () => setClockOffset(twoWay[1]!.path, -CLOCK_JUMP_MS), end: async () => setClockOffset(twoWay[1]!.path, 0) },
    };
    const afterWindow = async (kind: FaultKind, since: number) => (kind === 'clock_jump' ? twoWayRecovery(since) : recovery(kind, since));
    const runWindows = async (kinds: FaultKind[]) => {
      for (const k of kinds) windows[k]!.begin();
      await sleep(options.windowMs / 2);
      for (const k of kinds) windows[k]!.halfway?.();
      await sleep(options.windowMs / 2);
      for (const k of kinds) await windows[k]!.end();
      const at = Date.now();
      await Promise.all(kinds.map((k) => afterWindow(k, at)));
    };

    const inject: Partial<Record<FaultKind, () => Promise<void>>> = {
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
      agent_sigkill: async () => {
        const at = Date.now();
        await Promise.all(agents.map((a) => a.stop('SIGKILL')));
        for (const a of agents) a.start();
        await recovery('agent_sigkill', at);
      },
    };
    const wanted = (kind: FaultKind) => !options.kinds || options.kinds.includes(kind);
    const windowKinds = (Object.keys(windows) as FaultKind[]).filter((k) => windows[k] && wanted(k));
    for (let round = 0; round < options.rounds; round++) {
      for (const [kind, run] of Object.entries(inject) as [FaultKind, () => Promise<void>][]) {
        if (!wanted(kind)) continue;
        await sleep(options.calmMs);
        log(`round ${round + 1}: ${kind}`);
        await run();
      }
      for (const group of options.windowsTogether ? [windowKinds] : windowKinds.map((k) => [k])) {
        if (group.length === 0) continue;
        await sleep(options.calmMs);
        log(`round ${round + 1}: ${group.join(' + ')}`);
        await runWindows(group);
      }
    }

    const results = await writer.finish();
    const edgeResults = results.filter((r): r is EdgeAppResult => r.kind === 'edge');
    const sharedResults = results.filter((r): r is SharedAppResult => r.kind === 'shared');
    const stoppedAt = Date.now();
    const expected = (i: number, table: string) => edgeResults[i]!.changes[table] ?? 0;
    const finalLineages = async () => Promise.all(devices.map((d) => lineages(admin, d.device_id)));
    let found: Lineage[][] = [];
    // Until the edge mirrors have every change and the two-way devices agree with each other (and with PostgreSQL when it is reachable).
    let converged: number | null = null;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      found = await finalLineages().catch(() => found);
      const edgeDone = found.every((ls, i) => ls.length === 2 && ls.every((l) => l.rows_received >= expected(i, l.source_table)));
      if (converged === null) {
        const [a, b] = twoWay.map((d) => deviceNotes(d.path)) as [NoteRows, NoteRows];
        if (sameNotes(a, b) && (!scratch || sameNotes(a, await postgresNotes(scratch.url, SCOPE).catch(() => new Map())))) converged = Date.now() - stoppedAt;
      }
      if (edgeDone && converged !== null) break;
      await sleep(250);
    }
    log(`two-way devices ${converged === null ? 'did not converge' : `converged ${converged} ms after the apps stopped`}`);
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
    const crashes = server.crashes;
    // PGlite is the server's own file: read once the server is stopped.
    let serverNotes: NoteRows;
    if (scratch) {
      serverNotes = await postgresNotes(scratch.url, SCOPE);
    } else {
      await server.stop('SIGTERM');
      serverNotes = await pgliteNotes(cloudDir, SCOPE);
    }
    const twoWayDiff = diffTwoWay(sharedResults, serverNotes, twoWay.map((d) => deviceNotes(d.path)));
    const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))]!;
    const recovery_ms = Object.fromEntries(Object.entries(recoveries).map(([k, v]) => [k, { p50: percentile(v, 0.5), max: Math.max(...v), n: v.length }]));
    return {
      store: scratch ? 'postgres' : 'pglite',
      duration_s: (Date.now() - started) / 1000,
      operations: {
        commits: results.reduce((n, r) => n + r.commits, 0),
        changes: edgeResults.reduce((n, r) => n + Object.values(r.changes).reduce((a, b) => a + b, 0), 0),
        disk_full_refusals: edgeResults.reduce((n, r) => n + r.full_refusals, 0),
        two_way_writes: sharedResults.reduce((n, r) => n + r.writes, 0),
      },
      faults,
      pg_backends_terminated: terminated,
      rows_lost: tables.reduce((n, t) => n + t.lost, 0) + twoWayDiff.lost,
      rows_duplicated: tables.reduce((n, t) => n + t.duplicated, 0) + twoWayDiff.duplicated,
      wrong_values: tables.reduce((n, t) => n + t.wrong, 0) + twoWayDiff.wrong,
      changes_lost: changesLost,
      changes_duplicated: changesDuplicated,
      server_crashes: crashes,
      two_way: { devices: twoWay.length, rows: serverNotes.size, converged_ms: converged, ...twoWayDiff },
      recovery_ms,
      unrecovered,
      tables,
    };
  } finally {
    await writer?.finish().catch(() => {});
    for (const a of agents) await a.stop('SIGKILL').catch(() => {});
    await server.stop('SIGTERM').catch(() => {});
    await scratch?.drop().catch(() => {});
  }
}
