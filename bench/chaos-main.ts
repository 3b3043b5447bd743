import { tempDir } from '../test/support/temp.js';
import { CHAOS_FULL, chaosBroken, writeChaosResults } from './chaos.js';
import { runChaos } from './chaos/scenario.js';
import { progress } from './report.js';

/** `npm run chaos`: the chaos suite at full size; exits 1 when anything was lost, doubled, wrong, apart, or the server crashed. */
const dir = tempDir('syncline-chaos-');
try {
  const result = await runChaos({ dir: dir.path, ...CHAOS_FULL, log: (m) => progress(`chaos: ${m}`) });
  writeChaosResults(result);
  const { rows_lost, rows_duplicated, wrong_values, changes_lost, changes_duplicated, server_crashes, unrecovered, two_way } = result;
  process.stdout.write(`${JSON.stringify({ rows_lost, rows_duplicated, wrong_values, changes_lost, changes_duplicated, server_crashes, unrecovered, two_way, recovery_ms: result.recovery_ms })}\n`);
  process.exitCode = chaosBroken(result) === 0 ? 0 : 1;
} finally {
  dir.remove();
}
