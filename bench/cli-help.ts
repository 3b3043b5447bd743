import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { progress, type BenchReport } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/syncline.js', import.meta.url));
const COMMANDS = ['server', 'agent', 'dev', 'admin', 'watch'];
const RUNS = 9;
const TARGET_MS = 400;

/** Median wall time of a plain `node` process running `args`, in ms. */
function medianMs(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * `syncline <command> --help` from the built bin (what `npm install` ships), as a
 * ratio to `node -e 0` on the same machine in the same run: commands load their
 * heavy modules only when they run, so help costs little more than starting node.
 */
export async function benchCliHelp(report: BenchReport): Promise<void> {
  const build = spawnSync(process.execPath, ['scripts/build.js'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the build failed');
  const bare = medianMs(['-e', '0']);
  progress(`node -e 0: ${bare.toFixed(0)} ms (median of ${RUNS})`);
  for (const command of COMMANDS) {
    const ms = medianMs([BIN, command, '--help']);
    report.add({
      name: `cli ${command} --help vs node -e 0`,
      value: ms / bare,
      unit: 'x',
      baseline: `node -e 0 (${bare.toFixed(0)} ms)`,
      target: `< ${TARGET_MS} ms`,
      met: ms < TARGET_MS,
      details: { ms: Math.round(ms), node_ms: Math.round(bare), runs: RUNS },
    });
  }
}
