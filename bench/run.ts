// First: decides where the server processes of every bench come from (before test/support/processes.ts reads it).
import './server-from-dist.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/support/temp.js';
import { benchAgentMemory } from './agent-memory.js';
import { benchBrowserSync } from './browser-sync.js';
import { benchCapture } from './capture.js';
import { benchChangeStream } from './change-stream.js';
import { benchChaos } from './chaos.js';
import { benchCliHelp } from './cli-help.js';
import { benchDrain } from './drain.js';
import { benchFanIn } from './fan-in.js';
import { benchMqtt } from './mqtt.js';
import { benchReplay } from './replay.js';
import { BenchReport, progress } from './report.js';
import { benchSharedBackend, benchSharedBackendHydrate } from './shared-backend.js';
import { benchSharedPropagation } from './shared-propagation.js';
import { benchSharedSync } from './shared-sync.js';
import { benchTelemetry } from './telemetry.js';

/**
 * `npm run bench`: every figure is a ratio against a raw baseline measured in the
 * same run. `npm run bench -- capture drain` runs only the named groups. Figures go
 * to stdout and the results file (SYNCLINE_BENCH_OUT, default
 * bench/results/latest.json), where they replace only the groups that ran; progress
 * lines only to a terminal.
 */
const GROUPS: Record<string, (report: BenchReport, dir: string) => Promise<void>> = {
  capture: benchCapture,
  drain: benchDrain,
  replay: benchReplay,
  'change-stream': benchChangeStream,
  mqtt: benchMqtt,
  'fan-in': benchFanIn,
  'shared-sync': benchSharedSync,
  'shared-backend': benchSharedBackend,
  'shared-backend-hydrate': benchSharedBackendHydrate,
  'shared-propagation': benchSharedPropagation,
  chaos: benchChaos,
  telemetry: benchTelemetry,
  'cli-help': benchCliHelp,
  'agent-memory': benchAgentMemory,
  'browser-sync': benchBrowserSync,
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
  for (const [name, run] of Object.entries(GROUPS)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    progress(`== ${name}`);
    report.startGroup(name);
    const groupDir = join(dir.path, name);
    mkdirSync(groupDir, { recursive: true });
    await run(report, groupDir);
  }
} finally {
  dir.remove();
}
report.write(process.env.SYNCLINE_BENCH_OUT || fileURLToPath(new URL('./results/latest.json', import.meta.url)), Object.keys(GROUPS));
