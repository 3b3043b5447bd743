import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { SharedSync } from '../src/device/twoway/shared-sync.js';
import { hs256Token } from '../test/support/jwt.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { spawnSyncline, startServer } from '../test/support/processes.js';
import { progress, type BenchReport } from './report.js';
import { CONFIG, LOCAL_DDL, SECRET } from './shared-sync.js';

/**
 * Device -> device propagation on one server: from an app's commit in one
 * device's file until the row is readable in another device's file, for the SDK
 * (two SharedSync in this process) and for `syncline agent --shared` (two agent
 * processes on files this process writes and reads with its own connections).
 * Also the CPU an idle agent uses, from /proc, while it waits for work.
 */

const ROUNDS = 40;
const IDLE_SECONDS = 10;
const TARGET_P95_MS = 50;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

function appFile(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`${LOCAL_DDL.replace('CREATE TABLE', 'CREATE TABLE IF NOT EXISTS')}`);
  return db;
}

/** Writes land at random points of the watchers' check intervals, as an app's would. */
const pause = () => delay(40 + Math.random() * 60);

function insert(db: Database.Database, id: number): void {
  db.prepare(`INSERT INTO items (id, name, body, score, counter) VALUES (?, 'p', 'p', 1.5, 1)`).run(BigInt(id));
}

async function waitForRow(db: Database.Database, id: number, timeoutMs = 10_000): Promise<void> {
  const probe = db.prepare('SELECT 1 FROM items WHERE id = ?');
  const deadline = performance.now() + timeoutMs;
  while (!probe.get(BigInt(id))) {
    if (performance.now() > deadline) throw new Error(`row ${id} did not arrive within ${timeoutMs} ms`);
    await delay(1);
  }
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function figure(report: BenchReport, who: string, samples: number[], store: string): void {
  samples.sort((a, b) => a - b);
  const p95 = quantile(samples, 0.95);
  report.add({
    name: `shared: device -> device, ${who}, p95 ms`,
    value: p95,
    unit: 'ms',
    baseline: `p50 ${quantile(samples, 0.5).toFixed(1)} ms, max ${samples.at(-1)!.toFixed(1)} ms`,
    target: `p95 <= ${TARGET_P95_MS} ms`,
    met: p95 <= TARGET_P95_MS,
    details: { p50_ms: quantile(samples, 0.5), p95_ms: p95, max_ms: samples.at(-1), rounds: samples.length, store },
  });
}

export async function benchSharedPropagation(report: BenchReport, dir: string): Promise<void> {
  const scratch = (await realPostgresReachable()) ? await createScratchDatabase() : undefined;
  const store = scratch ? 'postgres' : 'pglite';
  const configPath = join(dir, 'shared.json');
  writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: SECRET }, tables: CONFIG.tables }));
  const server = await startServer({ dataDir: join(dir, 'server'), ...(scratch ? { databaseUrl: scratch.url } : {}), extraArgs: ['--shared-config', configPath] });
  const opened: { close(): unknown }[] = [];
  try {
    progress(`shared propagation: SDK, ${ROUNDS} rounds (${store})`);
    const sdkToken = await hs256Token(SECRET, { sub: 'sdk' });
    const open = async (name: string) => {
      const device = await SharedSync.open({ path: join(dir, `sdk-${name}.db`), serverUrl: server.url, token: sdkToken, source: name });
      opened.push(device);
      await device.sync();
      device.start({ pollMs: 600_000 });
      return device;
    };
    const writer = await open('writer');
    const reader = await open('reader');
    const writerApp = appFile(join(dir, 'sdk-writer.db'));
    opened.push(writerApp);
    await delay(500);
    const sdk: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      await pause();
      const seen = new Promise<void>((resolve) => {
        const off = reader.onChange((event) => {
          if (event.cause !== 'pull') return;
          off();
          resolve();
        });
      });
      const t0 = performance.now();
      insert(writerApp, i);
      await seen;
      sdk.push(performance.now() - t0);
    }
    figure(report, 'SDK', sdk, store);
    await writer.stop();
    await reader.stop();

    progress(`shared propagation: agent --shared, ${ROUNDS} rounds, then ${IDLE_SECONDS} s idle`);
    const agentToken = await hs256Token(SECRET, { sub: 'agents' });
    const files = [join(dir, 'agent-a.db'), join(dir, 'agent-b.db')] as const;
    const [a, b] = files.map((path) => {
      const db = appFile(path);
      opened.push(db);
      return db;
    }) as [Database.Database, Database.Database];
    const agents = files.map((path, i) => spawnSyncline(['agent', '--shared', '--db', path, '--server', server.url, '--jwt', agentToken, '--source', `agent-${i}`]));
    opened.push(...agents.map((child) => ({ close: () => child.kill('SIGTERM') })));
    // Both agents are up once a first row goes all the way through.
    insert(a, 0);
    await waitForRow(b, 0, 120_000);
    await delay(500);
    const agent: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      await pause();
      const t0 = performance.now();
      insert(a, i);
      await waitForRow(b, i);
      agent.push(performance.now() - t0);
    }
    figure(report, 'agent', agent, store);
    await delay(2000);
    const before = agents.map((child) => cpuSeconds(child.pid!));
    const t0 = performance.now();
    await delay(IDLE_SECONDS * 1000);
    const wall = (performance.now() - t0) / 1000;
    const idle = agents.map((child, i) => (100 * (cpuSeconds(child.pid!) - before[i]!)) / wall);
    const worst = Math.max(...idle);
    report.add({
      name: 'shared: idle agent CPU, %',
      value: worst,
      unit: '%',
      baseline: `${IDLE_SECONDS} s idle after the rounds, both agents: ${idle.map((v) => v.toFixed(2)).join(' / ')} %`,
      target: '< 1 %',
      met: worst < 1,
      details: { agents_percent: idle, seconds: wall },
    });
  } finally {
    for (const item of opened.reverse()) await item.close();
    await server.stop();
    await scratch?.drop();
  }
}
