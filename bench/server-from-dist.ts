import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distUpToDate } from '../scripts/dist-fresh.js';

/**
 * Imported first by bench/run.ts: the server processes a bench starts
 * (test/support/processes.ts) run from the built dist/, as a deployment runs
 * them, rather than from src/ through tsx, whose per-closure naming helper showed
 * up in the server's fan-in profile. dist/ is built first when src/ is newer.
 * SYNCLINE_TEST_CLI=src keeps the old way.
 */
if (process.env.SYNCLINE_TEST_CLI === undefined) {
  if (!distUpToDate()) {
    const build = spawnSync(process.execPath, [fileURLToPath(new URL('../scripts/build.js', import.meta.url))], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (build.status !== 0) throw new Error('npm run build failed; the bench runs the server from dist/');
  }
  process.env.SYNCLINE_TEST_CLI = 'dist';
}
