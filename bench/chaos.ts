import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runChaos, type ChaosOptions, type ChaosResult } from './chaos/scenario.js';
import { progress, type BenchReport } from './report.js';

/** The full-size run: every fault three times, one after the other, windows long enough for several retries. */
export const CHAOS_FULL: Omit<ChaosOptions, 'dir'> = { rounds: 3, calmMs: 3000, windowMs: 5000, writerPauseMs: 5 };
export const CHAOS_RESULTS = fileURLToPath(new URL('./results/chaos.json', import.meta.url));

/** Everything that must be 0: rows lost, doubled or wrong (edge and two-way), journal changes lost or doubled, server crashes, faults not recovered from, two-way devices that differ from the server or never converged. */
export function chaosBroken(r: ChaosResult): number {
  return r.rows_lost + r.rows_duplicated + r.wrong_values + r.changes_lost + r.changes_duplicated + r.server_crashes + r.unrecovered + r.two_way.diverged + (r.two_way.converged_ms === null ? 1 : 0);
}

export function writeChaosResults(result: ChaosResult): void {
  const body = {
    generated_at: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, memory_gib: Math.round(totalmem() / 2 ** 30) },
    settings: CHAOS_FULL,
    ...result,
  };
  writeFileSync(CHAOS_RESULTS, `${JSON.stringify(body, null, 2)}\n`);
  progress(`wrote ${CHAOS_RESULTS}`);
}

/** `npm run bench -- chaos`: the chaos suite as one bench group; it also writes bench/results/chaos.json. */
export async function benchChaos(report: BenchReport, dir: string): Promise<void> {
  const result = await runChaos({ dir, ...CHAOS_FULL, log: (m) => progress(`chaos: ${m}`) });
  writeChaosResults(result);
  const broken = chaosBroken(result);
  report.add({
    name: 'chaos: rows lost, duplicated or wrong, server crashes, two-way devices apart from the server',
    value: broken,
    unit: 'count',
    baseline: `${result.operations.changes} changes through ${Object.values(result.faults).reduce((a, b) => a + b, 0)} faults on ${result.store}`,
    target: '= 0',
    met: broken === 0,
    details: { faults: result.faults, recovery_ms: result.recovery_ms, operations: result.operations, two_way: result.two_way },
  });
}
