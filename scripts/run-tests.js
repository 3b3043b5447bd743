#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner, one `node --test` per file, two files at a
// time, the slowest first (by the committed scripts/test-times.json) so no long file starts last and
// stretches the run. Extra arguments narrow the run: `npm test -- capture` runs files whose path
// contains "capture"; `npm run test:unit` runs test/unit only (no PostgreSQL, no processes: the
// edit-test loop). `--typecheck` (what `npm test` passes) runs scripts/typecheck.js as one more job
// in the queue (placed by its recorded time) rather than before every file: the cores are shared.
// `--record-times` writes this run's file times into scripts/test-times.json.
// Each file's spec output is printed in one piece when it ends; then a summary names every failing
// test on a line of its own, lists the slowest files, and ends with the line `N passed, N failed`.
// Scratch PostgreSQL databases left by killed runs are swept before and after.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distUpToDate } from './dist-fresh.js';

const REPORTER = fileURLToPath(new URL('./test-summary-reporter.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./test-timeout-preload.js', import.meta.url));
const SWEEP = fileURLToPath(new URL('./sweep-scratch-databases.ts', import.meta.url));
const BUILD = fileURLToPath(new URL('./build.js', import.meta.url));
const TYPECHECK = fileURLToPath(new URL('./typecheck.js', import.meta.url));
// Committed, so a fresh clone (CI) orders its files by them too; keyed by file path, in ms.
const TIMES = fileURLToPath(new URL('./test-times.json', import.meta.url));
// Per-test (and per-hook) limit, applied by test-timeout-preload.js: every test must normally finish
// in a third of it; the summary flags those that do not. A test may set its own `timeout`.
const TIMEOUT_MS = Number(process.env.SYNCLINE_TEST_TIMEOUT_MS ?? 180_000);
// A whole file fails past this (node's --test-timeout, which in Node 20 limits a file, not a test).
const FILE_TIMEOUT_MS = Number(process.env.SYNCLINE_TEST_FILE_TIMEOUT_MS ?? 600_000);
const CONCURRENCY = Math.max(1, Number(process.env.SYNCLINE_TEST_CONCURRENCY ?? 2));
// PGlite is PostgreSQL compiled to WASM. V8 runs it first from Liftoff's quick code and recompiles
// its hot functions with TurboFan on background threads; in a process that lives seconds to a
// minute that recompiling costs more CPU than the faster code saves (a PGlite test file 10-25 %
// less CPU, a `syncline server` start and stop on PGlite 3.5 -> 2.2 CPU-s). Same semantics, only
// the compiler tier. test/support/processes.ts passes it on to the CLI processes tests start.
const V8_FLAGS = ['--liftoff-only'];

function collect(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'support' ? [] : collect(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

function readJson(path, fallback) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return fallback;
  }
}

function sweep() {
  const result = spawnSync(process.execPath, ['--import', 'tsx', SWEEP], { stdio: 'inherit', timeout: 30_000 });
  if (result.status !== 0) console.error('[run-tests] sweeping stale scratch databases failed (ignored)');
}

const FLAGS = new Set(['--typecheck', '--record-times']);
const args = process.argv.slice(2);
const filters = args.filter((arg) => !FLAGS.has(arg));
const typecheck = args.includes('--typecheck');
const recordTimes = args.includes('--record-times');
const recorded = readJson(TIMES, {});
const TYPECHECK_JOB = 'typecheck';
// A file not in the list yet (new): integration files (processes, databases) before unit files, bigger first.
const guess = (file) => recorded[file] ?? (file.includes(`${join('test', 'unit')}`) ? 0 : 1e6) + (file === TYPECHECK_JOB ? 0 : statSync(file).size);
const files = collect('test')
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort((a, b) => guess(b) - guess(a) || a.localeCompare(b));
// The type check's place in the queue comes from its recorded time too (it is a job like a file's).
const jobs = typecheck ? [...files, TYPECHECK_JOB].sort((a, b) => guess(b) - guess(a) || a.localeCompare(b)) : files;
if (files.length === 0) {
  console.error(`no test files match ${filters.join(', ') || 'test/**/*.test.ts'}`);
  process.exit(1);
}
const needsPostgres = files.some((file) => !file.startsWith(join('test', 'unit')));
if (needsPostgres) sweep();
// Tests spawn the CLI hundreds of times: from dist/ when it is built from the current src/ (as after
// `npm ci` or `npm run build`), each start saves tsx's second (test/support/processes.ts). A stale
// dist/ is built first, as the bench does (bench/server-from-dist.ts): about 10 CPU-s, where one
// CLI-heavy file through tsx pays as much (cli-output 24 -> 13 CPU-s). If the build fails, through tsx.
if (needsPostgres && !distUpToDate()) {
  const build = spawnSync(process.execPath, [BUILD], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) console.error('[run-tests] building dist/ failed: the tests run the CLI from src/ through tsx');
}
const CLI_FROM = distUpToDate() ? 'dist' : 'src';

const scratch = mkdtempSync(join(tmpdir(), 'syncline-run-tests-'));
const running = new Set();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    for (const child of running) killGroup(child, 'SIGTERM');
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Runs one file in its own `node --test` (own process group, so a hung file can be killed whole), or the type check. */
function runFile(file, index) {
  const results = join(scratch, `${index}.jsonl`);
  const started = Date.now();
  const args =
    file === TYPECHECK_JOB
      ? [TYPECHECK]
      : [...V8_FLAGS, '--import', 'tsx', '--import', PRELOAD, '--test', `--test-timeout=${FILE_TIMEOUT_MS}`, '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${REPORTER}`, `--test-reporter-destination=${results}`, file];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { SYNCLINE_TEST_CLI: CLI_FROM, ...process.env, NODE_ENV: 'test' }, detached: true });
  running.add(child);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGKILL');
  }, FILE_TIMEOUT_MS + 60_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      const wall_ms = Date.now() - started;
      process.stdout.write(`\n── ${file} (${(wall_ms / 1000).toFixed(1)} s) ──\n${output}`);
      const records = readLines(results);
      resolve({ file, wall_ms, code, signal, timedOut, records });
    });
  });
}

function readLines(path) {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  } catch {
    return [];
  }
}

const started = Date.now();
const queue = [...jobs.entries()];
const outcomes = [];
await Promise.all(
  Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
    while (queue.length > 0 && !interrupted) {
      const [index, file] = queue.shift();
      outcomes.push(await runFile(file, index));
    }
  }),
);
const elapsed = (Date.now() - started) / 1000;
rmSync(scratch, { recursive: true, force: true });
if (needsPostgres) sweep();

if (recordTimes && !interrupted) {
  const times = { ...recorded, ...Object.fromEntries(outcomes.map((o) => [o.file, Math.round(o.wall_ms / 100) * 100])) };
  const kept = Object.keys(times).filter((job) => job === TYPECHECK_JOB || existsSync(job)).sort();
  writeFileSync(TIMES, `${JSON.stringify(Object.fromEntries(kept.map((job) => [job, times[job]])), null, 1)}\n`);
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const records = outcomes.flatMap((o) => o.records.map((r) => ({ ...r, file: o.file })));
const tests = records.filter((r) => r.kind === 'test' && !r.suite);
const count = (outcome) => tests.filter((t) => t.outcome === outcome).length;
const failures = records.filter((r) => r.kind === 'test' && r.outcome === 'fail' && r.failure !== 'subtestsFailed');
const slow = tests.filter((t) => t.outcome === 'pass' && t.duration_ms > TIMEOUT_MS / 3).sort((a, b) => b.duration_ms - a.duration_ms);

const lines = ['', '── test summary ──', `slowest files (wall time, ${CONCURRENCY} jobs at a time):`];
for (const o of [...outcomes].sort((a, b) => b.wall_ms - a.wall_ms).slice(0, 12)) lines.push(`  ${seconds(o.wall_ms).padStart(8)}  ${o.file}`);
if (slow.length > 0) {
  lines.push(`tests over a third of the ${seconds(TIMEOUT_MS)} per-test limit (speed them up or give them their own limit):`);
  for (const t of slow) lines.push(`  ${seconds(t.duration_ms).padStart(8)}  ${t.file} › ${t.path.join(' › ')}`);
}
const failedLines = [];
for (const f of failures) {
  const fileLevel = f.path.length === 1 && f.path[0].endsWith('.test.ts');
  failedLines.push(`  ✖ ${fileLevel ? `${f.file} (the file itself)` : `${f.file} › ${f.path.join(' › ')}`}: ${f.error || f.failure}`);
  if (fileLevel) {
    const tail = outcomes.find((o) => o.file === f.file)?.records.find((r) => r.kind === 'file')?.stderr_tail ?? [];
    const lines = tail.filter((l) => l.trim() !== '');
    const from = Math.max(0, lines.findIndex((l) => /Error\b/.test(l)));
    for (const l of lines.slice(from, from + 4)) failedLines.push(`      ${l}`);
  }
}
let failed = count('fail');
for (const o of outcomes) {
  const named = failures.some((f) => f.file === o.file);
  if (o.timedOut) failedLines.push(`  ✖ ${o.file}: killed a minute after the ${seconds(FILE_TIMEOUT_MS)} file limit (SYNCLINE_TEST_FILE_TIMEOUT_MS) as it did not end`);
  else if (o.file === TYPECHECK_JOB && (o.code !== 0 || o.signal)) failedLines.push(`  ✖ typecheck (scripts/typecheck.js): tsc found errors (see its output above)`);
  else if ((o.code !== 0 || o.signal) && !named) failedLines.push(`  ✖ ${o.file}: node --test ended with ${o.signal ?? `exit code ${o.code}`} without naming a failing test (see its output above)`);
  else continue;
  if (!named) failed += 1;
}
const filesRun = outcomes.filter((o) => o.file !== TYPECHECK_JOB).length;
if (interrupted) failedLines.push(`  ✖ interrupted: ${jobs.length - outcomes.length} job(s) not run`);
if (failedLines.length > 0) lines.push(`failed:`, ...failedLines);
lines.push(`${tests.length} tests in ${filesRun} of ${files.length} files, ${count('skip') + count('todo')} skipped, ${elapsed.toFixed(0)} s`);
lines.push(`${count('pass')} passed, ${failed} failed`);
console.log(lines.join('\n'));
process.exit(failed > 0 || interrupted ? 1 : 0);
