import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { createDeviceToken, startServer } from '../test/support/processes.js';
import { eventually, lineages } from '../test/support/replication-check.js';
import { prepareJournal } from './drain.js';
import { progress, type BenchReport } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/syncline.js', import.meta.url));
const ROWS = 100_000;
const TARGET_MB = 60;
/** How long the agent sits idle (nothing to ship) before its resident size is read. */
const IDLE_MS = 5_000;

/** Resident set size of a process in MiB (Linux: VmRSS in /proc). */
function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) / 1024;
}

/** The resident size of a plain node process running `script` after it settled (`IDLE_MS`), in MiB. */
async function idleRss(args: string[]): Promise<number> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' } });
  try {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    if (child.exitCode !== null) throw new Error(`node ${args.join(' ')} exited ${child.exitCode}`);
    return rssMb(child.pid!);
  } finally {
    await stop(child);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/**
 * The edge agent's memory, run from the built package (`bin/syncline.js agent`, what
 * `npm install` ships): resident size while idle after draining a 100k-row journal,
 * against a bare `node` and a `node` that opened the same file with better-sqlite3,
 * measured in the same run. Gateways with 512 MB are common.
 */
export async function benchAgentMemory(report: BenchReport, dir: string): Promise<void> {
  if (process.platform !== 'linux') {
    progress('agent memory: reads /proc; skipped on this platform');
    return;
  }
  const build = spawnSync(process.execPath, ['scripts/build.js'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) throw new Error('the build failed');
  progress(`agent memory: writing a ${ROWS.toLocaleString('en-US')}-row journal`);
  const dbPath = await prepareJournal(dir, ROWS);
  const onPostgres = await realPostgresReachable();
  const scratch = onPostgres ? await createScratchDatabase() : undefined;
  const server = await startServer({ dataDir: join(dir, 'cloud'), databaseUrl: scratch?.url, extraArgs: ['--schema-policy', 'auto'] });
  const agent = spawn(process.execPath, [BIN, 'agent', '--db', dbPath, '--server', server.url, '--token', (await createDeviceToken(server, 'memory')).token], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' },
  });
  try {
    progress('agent memory: draining');
    let peak = 0;
    await eventually(
      'the journal drained',
      async () => {
        peak = Math.max(peak, rssMb(agent.pid!));
        const found = await lineages(server);
        return found.length === 1 && found[0]!.rows_applied === ROWS;
      },
      600_000,
    );
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const idle = rssMb(agent.pid!);
    progress('agent memory: baselines');
    // The floor: the same agent idle on a file with nothing to ship (what loading its code costs).
    const empty = join(dir, 'empty.db');
    new Database(empty).exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)').close();
    const floor = await idleRss([BIN, 'agent', '--db', empty, '--server', server.url, '--token', (await createDeviceToken(server, 'memory-floor')).token]);
    const bare = await idleRss(['-e', 'setInterval(() => {}, 1000)']);
    const sqlite = await idleRss(['-e', `const db = new (require('better-sqlite3'))(${JSON.stringify(dbPath)}); db.prepare('SELECT count(*) FROM readings').get(); setInterval(() => {}, 1000)`]);
    report.add({
      name: `agent resident size idle after draining ${ROWS.toLocaleString('en-US')} rows`,
      value: idle,
      unit: 'MB',
      baseline: `bare node ${bare.toFixed(1)} MB, node + better-sqlite3 on the same file ${sqlite.toFixed(1)} MB (same run)`,
      target: `<= ${TARGET_MB} MB`,
      met: idle <= TARGET_MB,
      details: { idle_mb: Number(idle.toFixed(1)), peak_while_draining_mb: Number(peak.toFixed(1)), idle_nothing_shipped_mb: Number(floor.toFixed(1)), node_mb: Number(bare.toFixed(1)), node_better_sqlite3_mb: Number(sqlite.toFixed(1)), over_node_better_sqlite3: Number((idle / sqlite).toFixed(2)), idle_ms: IDLE_MS, store: onPostgres ? 'PostgreSQL' : 'PGlite' },
    });
  } finally {
    await stop(agent);
    await server.stop();
    await scratch?.drop();
  }
}
