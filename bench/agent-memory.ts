import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { createDeviceToken, startServer, type ServerProcess } from '../test/support/processes.js';
import { eventually, lineages } from '../test/support/replication-check.js';
import { prepareJournal } from './drain.js';
import { progress, type BenchReport } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/syncline.js', import.meta.url));
const ROWS = 100_000;
const TARGET_MB = 60;
/** How long the agent sits idle (nothing to ship) before its resident size is read. */
const IDLE_MS = 5_000;

/**
 * Glibc's malloc tuned before start, as an operator can in the agent's service
 * environment: a fixed mmap threshold (glibc otherwise raises it to the largest
 * block freed so far, up to 32 MB, and keeps up to twice that free in each arena).
 */
const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** Resident size of a process in MiB (Linux /proc): in all, the part backed by files (the node binary's and libraries' pages) and the anonymous rest (heaps). */
interface Resident {
  rss: number;
  file: number;
  anon: number;
}

function resident(pid: number): Resident {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!match) throw new Error(`no ${name} for process ${pid}`);
    return Number(match[1]) / 1024;
  };
  return { rss: field('VmRSS'), file: field('RssFile'), anon: field('RssAnon') };
}

function rssMb(pid: number): number {
  return resident(pid).rss;
}

/** `{ rss, file, anon }` rounded to 0.1 MB, for the report. */
function rounded(r: Resident): Resident {
  return { rss: Number(r.rss.toFixed(1)), file: Number(r.file.toFixed(1)), anon: Number(r.anon.toFixed(1)) };
}

/** The resident size of a node process started with `args` after it settled (`IDLE_MS`). */
async function idleResident(args: string[]): Promise<Resident> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' } });
  try {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    if (child.exitCode !== null) throw new Error(`node ${args.join(' ')} exited ${child.exitCode}`);
    return resident(child.pid!);
  } finally {
    await stop(child);
  }
}

/** Runs `bin/syncline.js agent` on `dbPath` until the server holds `rows` rows of it, then idles `IDLE_MS`: its resident size then, and the peak while draining. */
async function drainedAgent(server: ServerProcess, dbPath: string, name: string, rows: number, env: NodeJS.ProcessEnv = {}): Promise<{ idle: Resident; peak: number; drainS: number }> {
  const { token, device_id } = await createDeviceToken(server, name);
  const started = performance.now();
  const agent = spawn(process.execPath, [BIN, 'agent', '--db', dbPath, '--server', server.url, '--token', token], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn', ...env },
  });
  try {
    let peak = 0;
    const sampler = setInterval(() => {
      if (agent.exitCode === null) peak = Math.max(peak, rssMb(agent.pid!));
    }, 50);
    try {
      await eventually(
        'the journal drained',
        async () => {
          const found = await lineages(server, device_id);
          return found.length === 1 && found[0]!.rows_applied === rows;
        },
        600_000,
      );
    } finally {
      clearInterval(sampler);
    }
    const drainS = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    return { idle: resident(agent.pid!), peak, drainS };
  } finally {
    await stop(agent);
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
 * with its breakdown measured in the same run: a bare `node`, a `node` that opened
 * the same file with better-sqlite3, the agent idle with nothing shipped (its code
 * and the open file), and the agent after the same drain with glibc's mmap threshold
 * fixed in its environment (what glibc keeps of the drain's freed memory). Each as
 * file-backed pages (the node binary's) and anonymous memory. Gateways with 512 MB
 * are common.
 */
export async function benchAgentMemory(report: BenchReport, dir: string): Promise<void> {
  if (process.platform !== 'linux') {
    progress('agent memory: reads /proc; skipped on this platform');
    return;
  }
  const build = spawnSync(process.execPath, ['scripts/build.js'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) throw new Error('the build failed');
  progress(`agent memory: writing two ${ROWS.toLocaleString('en-US')}-row journals`);
  const dbPath = await prepareJournal(dir, ROWS);
  mkdirSync(join(dir, 'tuned'));
  const tunedPath = await prepareJournal(join(dir, 'tuned'), ROWS);
  const onPostgres = await realPostgresReachable();
  const scratch = onPostgres ? await createScratchDatabase() : undefined;
  const server = await startServer({ dataDir: join(dir, 'cloud'), databaseUrl: scratch?.url, extraArgs: ['--schema-policy', 'auto'] });
  try {
    progress('agent memory: draining');
    const drained = await drainedAgent(server, dbPath, 'memory', ROWS);
    progress('agent memory: draining with glibc\'s mmap threshold fixed');
    const tuned = await drainedAgent(server, tunedPath, 'memory-malloc-env', ROWS, MALLOC_ENV);
    progress('agent memory: baselines');
    // The floor: the same agent idle on a file with nothing to ship (what loading its code and opening the file cost).
    const empty = join(dir, 'empty.db');
    new Database(empty).exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)').close();
    const floor = await idleResident([BIN, 'agent', '--db', empty, '--server', server.url, '--token', (await createDeviceToken(server, 'memory-floor')).token]);
    const bare = await idleResident(['-e', 'setInterval(() => {}, 1000)']);
    const sqlite = await idleResident(['-e', `const db = new (require('better-sqlite3'))(${JSON.stringify(dbPath)}); db.prepare('SELECT count(*) FROM sqlite_master').get(); setInterval(() => {}, 1000)`]);
    const idle = drained.idle.rss;
    report.add({
      name: `agent resident size idle after draining ${ROWS.toLocaleString('en-US')} rows`,
      value: idle,
      unit: 'MB',
      baseline: `bare node ${bare.rss.toFixed(1)} MB, node + better-sqlite3 opening the same file ${sqlite.rss.toFixed(1)} MB, the agent idle with nothing shipped ${floor.rss.toFixed(1)} MB, after the same drain with MALLOC_MMAP_THRESHOLD_=131072 ${tuned.idle.rss.toFixed(1)} MB (same run)`,
      target: `<= ${TARGET_MB} MB`,
      met: idle <= TARGET_MB,
      details: {
        idle_mb: Number(idle.toFixed(1)),
        peak_while_draining_mb: Number(drained.peak.toFixed(1)),
        drain_s: Number(drained.drainS.toFixed(2)),
        idle_nothing_shipped_mb: Number(floor.rss.toFixed(1)),
        node_mb: Number(bare.rss.toFixed(1)),
        node_better_sqlite3_mb: Number(sqlite.rss.toFixed(1)),
        idle_malloc_env_mb: Number(tuned.idle.rss.toFixed(1)),
        peak_malloc_env_mb: Number(tuned.peak.toFixed(1)),
        drain_malloc_env_s: Number(tuned.drainS.toFixed(2)),
        // Resident, file-backed (binary and libraries) and anonymous MB of each step.
        breakdown: { node: rounded(bare), node_better_sqlite3: rounded(sqlite), agent_nothing_shipped: rounded(floor), agent_after_drain: rounded(drained.idle), agent_after_drain_malloc_env: rounded(tuned.idle) },
        idle_ms: IDLE_MS,
        store: onPostgres ? 'PostgreSQL' : 'PGlite',
      },
    });
  } finally {
    await server.stop();
    await scratch?.drop();
  }
}
