// First: decides where the server processes of every bench come from (before test/support/processes.ts reads it).
import './server-from-dist.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/support/temp.js';
import { BenchReport, progress } from './report.js';

/**
 * `npm run bench`: every figure is a ratio against a raw baseline measured in the
 * same run. `npm run bench -- capture drain` runs only the named groups. Figures go
 * to stdout and the results file (SYNCLINE_BENCH_OUT, default
 * bench/results/latest.json), where they replace only the groups that ran; progress
 * lines only to a terminal.
 */
type Group = (report: BenchReport, dir: string) => Promise<void>;
// Each group's module is imported when the group runs: a run of one group (or a refused name) does not
// load every other group's code, most of the project through tsx (about 2 CPU-s a start).
const GROUPS: Record<string, () => Promise<Group>> = {
  capture: async () => (await import('./capture.js')).benchCapture,
  drain: async () => (await import('./drain.js')).benchDrain,
  replay: async () => (await import('./replay.js')).benchReplay,
  'change-stream': async () => (await import('./change-stream.js')).benchChangeStream,
  mqtt: async () => (await import('./mqtt.js')).benchMqtt,
  'fan-in': async () => (await import('./fan-in.js')).benchFanIn,
  'shared-sync': async () => (await import('./shared-sync.js')).benchSharedSync,
  'shared-backend': async () => (await import('./shared-backend.js')).benchSharedBackend,
  'shared-backend-hydrate': async () => (await import('./shared-backend.js')).benchSharedBackendHydrate,
  'shared-propagation': async () => (await import('./shared-propagation.js')).benchSharedPropagation,
  chaos: async () => (await import('./chaos.js')).benchChaos,
  telemetry: async () => (await import('./telemetry.js')).benchTelemetry,
  'cli-help': async () => (await import('./cli-help.js')).benchCliHelp,
  'agent-memory': async () => (await import('./agent-memory.js')).benchAgentMemory,
  'browser-sync': async () => (await import('./browser-sync.js')).benchBrowserSync,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !Object.hasOwn(GROUPS, name));
if (unknown.length > 0) {
  // A typo would otherwise run nothing and still overwrite the results file.
  process.stderr.write(`bench: no group ${unknown.join(', ')}; the groups are ${Object.keys(GROUPS).join(', ')}.\n`);
  process.exit(2);
}
const dir = tempDir('syncline-bench-');
const report = new BenchReport();
try {
  for (const [name, load] of Object.entries(GROUPS)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    progress(`== ${name}`);
    const run = await load();
    report.startGroup(name);
    const groupDir = join(dir.path, name);
    mkdirSync(groupDir, { recursive: true });
    await run(report, groupDir);
  }
} finally {
  dir.remove();
}
report.write(process.env.SYNCLINE_BENCH_OUT || fileURLToPath(new URL('./results/latest.json', import.meta.url)), Object.keys(GROUPS));
