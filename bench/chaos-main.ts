import { tempDir } from '../test/support/temp.js';
import { CHAOS_FULL, writeChaosResults } from './chaos.js';
import { runChaos } from './chaos/scenario.js';
import { progress } from './report.js';

/** `npm run chaos`: the chaos suite at full size; exits 1 when anything was lost, doubled, wrong, or the server crashed. */
const dir = tempDir('syncline-chaos-');
try {
  const result = await runChaos({ dir: dir.path, ...CHAOS_FULL, log: (m) => progress(`chaos: ${m}`) });
  writeChaosResults(result);
  const { rows_lost, rows_duplicated, wrong_values, changes_lost, changes_duplicated, server_crashes, unrecovered } = result;
  process.stdout.write(`${JSON.stringify({ rows_lost, rows_duplicated, wrong_values, changes_lost, changes_duplicated, server_crashes, unrecovered, recovery_ms: result.recovery_ms })}\n`);
  process.exitCode = rows_lost + rows_duplicated + wrong_values + changes_lost + changes_duplicated + server_crashes + unrecovered === 0 ? 0 : 1;
} finally {
  dir.remove();
}
