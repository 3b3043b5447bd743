import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../src/device/capture.js';
import { openDeviceDb } from '../src/device/device-db.js';
import { progress, rate, type BenchReport } from './report.js';
import { insertReadings, READINGS_DDL } from './workload.js';

/**
 * Capture overhead: the same inserts into the same table, once plain and once with
 * Syncline's triggers, in the same run. Three write patterns, because trigger cost
 * is a share of what a commit costs: bulk transactions (worst case), and single-row
 * commits with synchronous=NORMAL and with SQLite's default synchronous=FULL.
 */
const PATTERNS = [
  { name: 'bulk (1,000 rows per transaction)', rows: 100_000, perTransaction: 1000, synchronous: 'NORMAL' },
  { name: 'one row per commit, synchronous=NORMAL', rows: 20_000, perTransaction: 1, synchronous: 'NORMAL' },
  { name: 'one row per commit, synchronous=FULL', rows: 2_000, perTransaction: 1, synchronous: 'FULL' },
] as const;

function freshFile(dir: string, name: string): string {
  const path = join(dir, name);
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  return path;
}

async function insertRate(dir: string, captured: boolean, pattern: (typeof PATTERNS)[number]): Promise<number> {
  return rate(pattern.rows, 3, () => {
    const path = freshFile(dir, `capture-${captured ? 'on' : 'off'}.db`);
    const setup = new Database(path);
    setup.pragma('journal_mode = WAL');
    setup.exec(READINGS_DDL);
    setup.close();
    if (captured) {
      const agentDb = openDeviceDb(path);
      ensureCapture(agentDb);
      agentDb.close();
    }
    const app = new Database(path);
    app.pragma(`synchronous = ${pattern.synchronous}`);
    const start = process.hrtime.bigint();
    insertReadings(app, 1, pattern.rows + 1, pattern.perTransaction);
    const elapsed = process.hrtime.bigint() - start;
    app.close();
    return elapsed;
  });
}

export async function benchCapture(report: BenchReport, dir: string): Promise<void> {
  for (const pattern of PATTERNS) {
    progress(`capture overhead: ${pattern.name}, ${pattern.rows.toLocaleString('en-US')} rows, plain then captured`);
    const plain = await insertRate(dir, false, pattern);
    const captured = await insertRate(dir, true, pattern);
    const ratio = plain / captured;
    report.add({
      name: `capture overhead, ${pattern.name}`,
      value: ratio,
      unit: 'x slower',
      baseline: 'plain SQLite inserts into the same table, same run',
      target: '<= 1.5',
      met: ratio <= 1.5,
      details: { plain_rows_per_s: Math.round(plain), captured_rows_per_s: Math.round(captured), rows: pattern.rows },
    });
  }
}
