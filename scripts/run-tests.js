#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner (Node 20 has no glob for --test).
// Extra arguments narrow the run: `npm test -- capture` runs files whose path contains "capture";
// `npm run test:unit` runs test/unit only (no PostgreSQL, no processes: the edit-test loop).
// Prints node's spec output, then a summary that names every failing test on a line of its own
// and the slowest files, and ends with the line `N passed, N failed`.
// Scratch PostgreSQL databases left by killed runs are swept before and after.
import { readdirSync, readFileSync, rmSync, statSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPORTER = fileURLToPath(new URL('./test-summary-reporter.js', import.meta.url));
const SWEEP = fileURLToPath(new URL('./sweep-scratch-databases.ts', import.meta.url));
// Per-test limit. Every test must normally finish in a third of it; the summary flags those that do not.
const TIMEOUT_MS = Number(process.env.SYNCLINE_TEST_TIMEOUT_MS ?? 180_000);

function collect(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'support' ? [] : collect(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

function sweep() {
  const result = spawnSync(process.execPath, ['--import', 'tsx', SWEEP], { stdio: 'inherit', timeout: 30_000 });
  if (result.status !== 0) console.error('[run-tests] sweeping stale scratch databases failed (ignored)');
}

const filters = process.argv.slice(2);
const files = collect('test')
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(', ') || 'test/**/*.test.ts'}`);
  process.exit(1);
}
const needsPostgres = files.some((file) => !file.startsWith(join('test', 'unit')));
if (needsPostgres) sweep();

const scratch = mkdtempSync(join(tmpdir(), 'syncline-run-tests-'));
const resultsFile = join(scratch, 'results.jsonl');
const concurrency = process.env.SYNCLINE_TEST_CONCURRENCY ?? '2';
const started = Date.now();
const child = spawn(
  process.execPath,
  [
    '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${TIMEOUT_MS}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${REPORTER}`, `--test-reporter-destination=${resultsFile}`,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
);
// Ctrl-C reaches the whole process group; wait for node --test to wind down, then summarize and sweep.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
const elapsed = (Date.now() - started) / 1000;

let records = [];
try {
  records = readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
} catch {
  // No results file: the runner died before reporting; said below.
}
rmSync(scratch, { recursive: true, force: true });
if (needsPostgres) sweep();

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const tests = records.filter((r) => r.kind === 'test' && !r.suite);
const count = (outcome) => tests.filter((t) => t.outcome === outcome).length;
const failures = records.filter((r) => r.kind === 'test' && r.outcome === 'fail' && r.failure !== 'subtestsFailed');
const fileRecords = records.filter((r) => r.kind === 'file').sort((a, b) => b.busy_ms - a.busy_ms);
const slow = tests.filter((t) => t.outcome === 'pass' && t.duration_ms > TIMEOUT_MS / 3).sort((a, b) => b.duration_ms - a.duration_ms);

const lines = ['', '── test summary ──', `slowest files (time in their tests, ${concurrency} files at a time):`];
for (const file of fileRecords.slice(0, 10)) lines.push(`  ${seconds(file.busy_ms).padStart(8)}  ${file.file}`);
if (slow.length > 0) {
  lines.push(`tests over a third of the ${seconds(TIMEOUT_MS)} per-test limit (speed them up or give them their own limit):`);
  for (const t of slow) lines.push(`  ${seconds(t.duration_ms).padStart(8)}  ${t.file} › ${t.path.join(' › ')}`);
}
if (failures.length > 0) {
  lines.push(`failed (${failures.length}):`);
  for (const f of failures) {
    const fileLevel = f.path.length === 1 && f.path[0].endsWith('.test.ts');
    const where = fileLevel ? `${f.file} (the file itself)` : `${f.file} › ${f.path.join(' › ')}`;
    lines.push(`  ✖ ${where}: ${f.error || f.failure}`);
    if (fileLevel) {
      const tail = fileRecords.find((r) => r.file === f.file)?.stderr_tail.filter((l) => l.trim() !== '').slice(-6) ?? [];
      for (const l of tail) lines.push(`      ${l}`);
    }
  }
}
let failed = count('fail');
const exitCode = signal ? 1 : (code ?? 1);
if (exitCode !== 0 && failed === 0) {
  lines.push(`✖ node --test ended with ${signal ?? `exit code ${code}`} without naming a failing test (see the output above)`);
  failed = 1;
}
lines.push(`${tests.length} tests in ${files.length} files, ${count('skip') + count('todo')} skipped, ${elapsed.toFixed(0)} s`);
lines.push(`${count('pass')} passed, ${failed} failed`);
console.log(lines.join('\n'));
process.exit(exitCode !== 0 || failed > 0 ? 1 : 0);
