/**
 * The chaos suite's apps, all in one process (a process per app costs a second of
 * CPU at start on a loaded machine): plain better-sqlite3 (nothing from Syncline)
 * committing random changes into each device file until the stop file appears.
 *
 * - An `edge` app writes `items` and `kv` (inserts, updates, deletes). While
 *   `<db>.full` exists its disk is "full": the connection's `max_page_count` is
 *   pinned to the file's current size, so any transaction that needs a new page
 *   fails with SQLITE_FULL and is rolled back whole (the app's row and the journal
 *   entry its trigger wrote alike). This works unprivileged, unlike a loop-mounted
 *   small filesystem. Each change is one row affected, which is one journal entry
 *   the cloud must receive exactly once.
 * - A `shared` app writes the two-way table `notes`: keys `<name>-<i>` only it
 *   writes (so their final value is known exactly) and keys `c-<i>` every shared
 *   app writes (settled by last-writer-wins; the final value must be one some app
 *   wrote). Every value is `<name>:<counter>`, unique. It starts once `syncline
 *   agent --shared` has installed its triggers in the file, so every write is
 *   captured. While `<db>.clock` holds a number of milliseconds, the device's
 *   clock is that far off: SQLite's `julianday('now')`, which the capture
 *   triggers stamp writes with, is replaced on the app's connection (the agent
 *   process gets the same offset from clock-offset-preload.js).
 *
 * Usage: node --import tsx bench/chaos/writer.ts '<json WriterPlan>'
 * Prints {"started":true} after the first commit and, at the end, one JSON line:
 * {"apps": [AppResult, ...]} in the order of the plan.
 */
import { existsSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CONTESTED_KEYS, OWNED_KEYS, SHARED_TABLE_SQL, type AppResult, type WriterPlan } from './plan.js';

function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    // xorshift32: a seeded, repeatable sequence.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

interface App {
  /** One transaction of changes; false when the app is not ready to write yet. */
  step(): boolean;
  result(): AppResult;
  close(): void;
}

function edgeApp(path: string, random: () => number): App {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 20000');
  const unlimited = Number(db.pragma('max_page_count', { simple: true }));
  const changes: Record<string, number> = { items: 0, kv: 0 };
  let commits = 0;
  let fullRefusals = 0;
  let full = false;
  const insertItem = db.prepare('INSERT OR IGNORE INTO items (id, v, n) VALUES (?, ?, ?)');
  const updateItem = db.prepare('UPDATE items SET v = ?, n = n + 1 WHERE id = ?');
  const deleteItem = db.prepare('DELETE FROM items WHERE id = ?');
  const upsertKv = db.prepare('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
  const deleteKv = db.prepare('DELETE FROM kv WHERE k = ?');
  const transaction = db.transaction(() => {
    const done: Record<string, number> = { items: 0, kv: 0 };
    const ops = 1 + Math.floor(random() * 3);
    for (let i = 0; i < ops; i++) {
      const id = 1 + Math.floor(random() * 400);
      const pick = random();
      // While the disk is full rows are large, so the free pages left inside the file run out within a few transactions.
      const text = `v${Math.floor(random() * 1e9)}-${'x'.repeat(Math.floor(random() * (full ? 4000 : 200)))}`;
      if (pick < 0.4) done.items! += insertItem.run(id, text, 0).changes;
      else if (pick < 0.65) done.items! += updateItem.run(text, id).changes;
      else if (pick < 0.8) done.items! += deleteItem.run(id).changes;
      else if (pick < 0.95) done.kv! += upsertKv.run(`k${id % 97}`, random() < 0.5 ? text : Math.floor(random() * 1e6)).changes;
      else done.kv! += deleteKv.run(`k${id % 97}`).changes;
    }
    return done;
  });
  return {
    step() {
      const wantFull = existsSync(`${path}.full`);
      if (wantFull !== full) {
        full = wantFull;
        db.pragma(`max_page_count = ${full ? Number(db.pragma('page_count', { simple: true })) : unlimited}`);
      }
      try {
        const done = transaction();
        for (const [table, n] of Object.entries(done)) changes[table]! += n;
        commits += 1;
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_FULL') throw error;
        fullRefusals += 1;
      }
      return true;
    },
    result: () => ({ kind: 'edge', commits, changes, full_refusals: fullRefusals }),
    close: () => db.close(),
  };
}

/** The device's clock offset in ms: the number in `<db>.clock`, 0 without the file. */
function clockOffset(path: string): number {
  try {
    return Number(readFileSync(`${path}.clock`, 'utf8')) || 0;
  } catch {
    return 0;
  }
}

function sharedApp(path: string, name: string, random: () => number): App {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 20000');
  db.exec(SHARED_TABLE_SQL);
  let offset = 0;
  // The capture triggers read the time with julianday('now'); an application-defined function
  // of the same name takes precedence on this connection, so the app's writes carry its clock.
  db.function('julianday', { deterministic: false }, (arg: unknown) => {
    if (arg !== 'now') throw new Error(`the chaos app's julianday takes 'now' only, not ${String(arg)}`);
    return (Date.now() + offset) / 86_400_000 + 2_440_587.5;
  });
  const captured = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'notes'").pluck();
  const upsert = db.prepare('INSERT INTO notes (id, body, n) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, n = excluded.n');
  const remove = db.prepare('DELETE FROM notes WHERE id = ?');
  const owned: Record<string, string | null> = {};
  const contested: Record<string, string[]> = {};
  let commits = 0;
  let writes = 0;
  let ready = false;
  const transaction = db.transaction(() => {
    const staged: [string, string | null][] = [];
    const ops = 1 + Math.floor(random() * 3);
    for (let i = 0; i < ops; i++) {
      writes += 1;
      const value = `${name}:${writes}`;
      const contest = random() < 0.25;
      const key = contest ? `c-${1 + Math.floor(random() * CONTESTED_KEYS)}` : `${name}-${1 + Math.floor(random() * OWNED_KEYS)}`;
      const del = random() < (contest ? 0.05 : 0.15);
      if (del) remove.run(key);
      else upsert.run(key, value, writes);
      staged.push([key, del ? null : value]);
    }
    return staged;
  });
  return {
    step() {
      ready ||= Number(captured.get()) > 0;
      if (!ready) return false;
      offset = clockOffset(path);
      // The model changes only once the transaction committed.
      for (const [key, value] of transaction()) {
        if (key.startsWith('c-')) {
          if (value !== null) (contested[key] ??= []).push(value);
        } else {
          owned[key] = value;
        }
      }
      commits += 1;
      return true;
    },
    result: () => ({ kind: 'shared', commits, writes, owned, contested }),
    close: () => db.close(),
  };
}

const plan = JSON.parse(process.argv[2] ?? '') as WriterPlan;
const apps = plan.apps.map((a) => (a.kind === 'edge' ? edgeApp(a.db, seeded(a.seed)) : sharedApp(a.db, a.name, seeded(a.seed))));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let started = false;
while (!existsSync(plan.stopFile)) {
  for (const app of apps) {
    if (app.step() && !started) {
      started = true;
      process.stdout.write(`${JSON.stringify({ started: true })}\n`);
    }
  }
  await sleep(plan.pauseMs);
}
for (const app of apps) app.close();
process.stdout.write(`${JSON.stringify({ apps: apps.map((a) => a.result()) })}\n`);
