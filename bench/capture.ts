import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../src/device/capture/capture.js';
import { BetterSqlite3Driver } from '../src/device/driver/better-sqlite3-driver.js';
import { progress, type BenchReport } from './report.js';
import { insertReadings, READINGS_DDL } from './workload.js';

/**
 * Capture overhead: the same inserts into the same table, once plain and once with
 * Syncline's triggers, in the same run. Three write patterns, because trigger cost
 * is a share of what a commit costs: bulk transactions (worst case), and single-row
 * commits with synchronous=NORMAL and with SQLite's default synchronous=FULL.
 *
 * Plain and captured runs alternate round by round and the figure is the median of
 * the per-round ratios, so a burst of load on the machine skews one round, not the
 * figure. Each round also times two reference triggers, shown beside the figure:
 * one whose WHEN clause is never true (what SQLite spends on a trigger that does
 * nothing) and one that appends a constant one-column row (the least any journal
 * costs); what full-row capture costs above the second is carrying the row.
 */
const PATTERNS = [
  { name: 'bulk (1,000 rows per transaction)', rows: 100_000, perTransaction: 1000, synchronous: 'NORMAL' },
  { name: 'one row per commit, synchronous=NORMAL', rows: 20_000, perTransaction: 1, synchronous: 'NORMAL' },
  { name: 'one row per commit, synchronous=FULL', rows: 2_000, perTransaction: 1, synchronous: 'FULL' },
] as const;

const ROUNDS = 7;

type Mode = 'plain' | 'captured' | 'idle' | 'floor';

const REFERENCE_TRIGGERS: Partial<Record<Mode, string>> = {
  idle: `CREATE TABLE idle_journal (seq INTEGER PRIMARY KEY, t INTEGER NOT NULL);
    CREATE TRIGGER idle_capture AFTER INSERT ON readings WHEN 0 BEGIN INSERT INTO idle_journal (t) VALUES (1); END`,
  floor: `CREATE TABLE floor_journal (seq INTEGER PRIMARY KEY, t INTEGER NOT NULL);
    CREATE TRIGGER floor_capture AFTER INSERT ON readings BEGIN INSERT INTO floor_journal (t) VALUES (1); END`,
};

function freshFile(dir: string, name: string): string {
  const path = join(dir, name);
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  return path;
}

/** Rows per second of one run in the given mode. */
async function insertRate(dir: string, mode: Mode, pattern: (typeof PATTERNS)[number]): Promise<number> {
  const path = freshFile(dir, `capture-${mode}.db`);
  const setup = new Database(path);
  setup.pragma('journal_mode = WAL');
  setup.exec(READINGS_DDL);
  const reference = REFERENCE_TRIGGERS[mode];
  if (reference) setup.exec(reference);
  setup.close();
  if (mode === 'captured') {
    const agentDb = BetterSqlite3Driver.open(path);
    await ensureCapture(agentDb);
    await agentDb.close();
  }
  const app = new Database(path);
  app.pragma(`synchronous = ${pattern.synchronous}`);
  const start = process.hrtime.bigint();
  insertReadings(app, 1, pattern.rows + 1, pattern.perTransaction);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  app.close();
  return pattern.rows / seconds;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function benchCapture(report: BenchReport, dir: string): Promise<void> {
  for (const pattern of PATTERNS) {
    progress(`capture overhead: ${pattern.name}, ${pattern.rows.toLocaleString('en-US')} rows, ${ROUNDS} rounds of plain, captured and two reference triggers`);
    const rates: Record<Mode, number[]> = { plain: [], captured: [], idle: [], floor: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['plain', 'captured', 'idle', 'floor'] as const) rates[mode].push(await insertRate(dir, mode, pattern));
      await Promise.resolve();
    }
    const ratios = (mode: Mode) => rates.plain.map((plain, i) => plain / rates[mode][i]!);
    const ratio = median(ratios('captured'));
    report.add({
      name: `capture overhead, ${pattern.name}`,
      value: ratio,
      unit: 'x slower',
      baseline: 'plain SQLite inserts into the same table, same run (median of per-round ratios)',
      target: '<= 1.5',
      met: ratio <= 1.5,
      details: {
        plain_rows_per_s: Math.round(median(rates.plain)),
        captured_rows_per_s: Math.round(median(rates.captured)),
        idle_trigger_ratio: Number(median(ratios('idle')).toFixed(3)),
        constant_row_trigger_ratio: Number(median(ratios('floor')).toFixed(3)),
        round_ratios: ratios('captured').map((r) => Number(r.toFixed(3))),
        rows: pattern.rows,
      },
    });
  }
}
