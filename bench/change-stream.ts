import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureCapture } from '../src/device/capture/capture.js';
import { changes } from '../src/device/change-stream/change-stream.js';
import { ChangeStreamDefaults } from '../src/device/change-stream/change-stream-options.js';
import { BetterSqlite3Driver } from '../src/device/driver/better-sqlite3-driver.js';
import { tempDir } from '../test/support/temp.js';
import { progress, rate, type BenchReport } from './report.js';
import { insertReadings, READINGS_DDL } from './workload.js';

/**
 * The local change stream: how fast a subscriber receives a journal backlog, how
 * long a live change takes to arrive, and what before-images add to writes. Every
 * rate is compared with plain inserts into an uncaptured table in the same run.
 */
const ROWS = 50_000;
const PER_TRANSACTION = 1000;
const BACKLOG = 100_000;
const LATENCY_SAMPLES = 40;

type Capture = 'none' | 'plain' | 'before-images';

async function freshFile(dir: string, name: string, capture: Capture): Promise<string> {
  const path = join(dir, name);
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  const setup = new Database(path);
  setup.pragma('journal_mode = WAL');
  setup.exec(READINGS_DDL);
  setup.close();
  if (capture !== 'none') {
    const agentDb = BetterSqlite3Driver.open(path);
    await ensureCapture(agentDb, capture === 'before-images' ? { beforeImages: ['readings'] } : {});
    await agentDb.close();
  }
  return path;
}

function openApp(path: string): Database.Database {
  const app = new Database(path);
  app.pragma('synchronous = NORMAL');
  return app;
}

/** Rows per second of inserts, then of updates of every row, into a fresh file. */
async function writeRates(dir: string, capture: Capture): Promise<{ insert: number; update: number }> {
  let updateRate = 0;
  const insert = await rate(ROWS, 3, async () => {
    const app = openApp(await freshFile(dir, `writes-${capture}.db`, capture));
    const start = process.hrtime.bigint();
    insertReadings(app, 1, ROWS + 1, PER_TRANSACTION);
    const elapsed = process.hrtime.bigint() - start;
    const update = app.prepare('UPDATE readings SET value = value + 1, note = ? WHERE id = ?');
    const chunk = app.transaction((from: number) => {
      for (let id = from; id < from + PER_TRANSACTION; id++) update.run(`updated ${id}`, id);
    });
    const updateStart = process.hrtime.bigint();
    for (let from = 1; from <= ROWS; from += PER_TRANSACTION) chunk(from);
    updateRate = Math.max(updateRate, ROWS / (Number(process.hrtime.bigint() - updateStart) / 1e9));
    app.close();
    return elapsed;
  });
  return { insert, update: updateRate };
}

/** Events per second a subscriber receives when it starts behind a backlog of BACKLOG entries. */
async function deliveryRate(dir: string): Promise<number> {
  const path = await freshFile(dir, 'backlog.db', 'plain');
  const app = openApp(path);
  insertReadings(app, 1, BACKLOG + 1, PER_TRANSACTION);
  app.close();
  return rate(BACKLOG, 3, async () => {
    let received = 0;
    const start = process.hrtime.bigint();
    for await (const event of await changes({ db: path, from: 0 })) {
      received += 1;
      if (event.seq === BACKLOG) break;
    }
    if (received !== BACKLOG) throw new Error(`expected ${BACKLOG} events, got ${received}`);
    return process.hrtime.bigint() - start;
  });
}

/** Milliseconds from a commit by another connection to the event reaching a caught-up subscriber. */
async function latencies(dir: string): Promise<number[]> {
  const path = await freshFile(dir, 'latency.db', 'plain');
  const app = openApp(path);
  const stream = await changes({ db: path });
  const events = stream[Symbol.asyncIterator]();
  const insert = app.prepare('INSERT INTO readings (id, device, ts, value, note) VALUES (?, ?, ?, ?, ?)');
  const samples: number[] = [];
  try {
    for (let i = 1; i <= LATENCY_SAMPLES; i++) {
      // Commits land at varying points of the poll cycle.
      await new Promise((resolve) => setTimeout(resolve, (i * 7) % ChangeStreamDefaults.pollIntervalMs));
      const start = process.hrtime.bigint();
      insert.run(i, 'd', i, i, 'latency');
      await events.next();
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  } finally {
    await stream.close();
    app.close();
  }
  return samples.sort((a, b) => a - b);
}

export async function benchChangeStream(report: BenchReport, dir?: string): Promise<void> {
  const own = dir === undefined ? tempDir('syncline-bench-stream-') : undefined;
  const base = dir ?? own!.path;
  try {
    progress(`change stream: ${ROWS.toLocaleString('en-US')} inserts then updates, uncaptured / captured / captured with before-images`);
    const plain = await writeRates(base, 'none');
    const captured = await writeRates(base, 'plain');
    const withBefore = await writeRates(base, 'before-images');
    const writeDetails = {
      rows: ROWS,
      rows_per_transaction: PER_TRANSACTION,
      plain: { insert_per_s: Math.round(plain.insert), update_per_s: Math.round(plain.update) },
      captured: { insert_per_s: Math.round(captured.insert), update_per_s: Math.round(captured.update) },
      before_images: { insert_per_s: Math.round(withBefore.insert), update_per_s: Math.round(withBefore.update) },
    };
    report.add({
      name: 'before-images: inserts, slowdown vs plain inserts',
      value: plain.insert / withBefore.insert,
      unit: 'x slower',
      baseline: `plain inserts into an uncaptured table, same run (captured without before-images: ${(plain.insert / captured.insert).toFixed(2)}x)`,
      details: writeDetails,
    });
    report.add({
      name: 'before-images: updates, slowdown vs plain updates',
      value: plain.update / withBefore.update,
      unit: 'x slower',
      baseline: `plain updates of an uncaptured table, same run (captured without before-images: ${(plain.update / captured.update).toFixed(2)}x)`,
      details: writeDetails,
    });
    report.add({
      name: 'before-images: extra update cost over capture without them',
      value: captured.update / withBefore.update,
      unit: 'x slower',
      baseline: 'updates of the same table captured without before-images, same run',
      details: writeDetails,
    });

    progress(`change stream: a subscriber catching up on ${BACKLOG.toLocaleString('en-US')} journal entries`);
    const delivered = await deliveryRate(base);
    report.add({
      name: 'change stream: events delivered per second',
      value: delivered / plain.insert,
      unit: 'x plain insert rate',
      baseline: 'plain inserts/s into an uncaptured table, same run',
      details: { events_per_s: Math.round(delivered), plain_inserts_per_s: Math.round(plain.insert), events: BACKLOG },
    });

    progress(`change stream: commit-to-event latency, ${LATENCY_SAMPLES} single-row commits, poll interval ${ChangeStreamDefaults.pollIntervalMs} ms`);
    const samples = await latencies(base);
    const p50 = samples[Math.floor(samples.length / 2)]!;
    const p95 = samples[Math.floor(samples.length * 0.95)]!;
    report.add({
      name: 'change stream: commit-to-event latency p50',
      value: p50,
      unit: 'ms',
      baseline: `poll interval ${ChangeStreamDefaults.pollIntervalMs} ms`,
      target: `<= ${ChangeStreamDefaults.pollIntervalMs} ms (p95)`,
      met: p95 <= ChangeStreamDefaults.pollIntervalMs + 5,
      details: { p50_ms: p50, p95_ms: p95, max_ms: samples.at(-1), samples: samples.length },
    });
  } finally {
    own?.remove();
  }
}
