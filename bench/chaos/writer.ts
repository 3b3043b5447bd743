/**
 * The chaos suite's app: a plain better-sqlite3 process (nothing from Syncline)
 * committing random inserts, updates and deletes into `items` and `kv` until
 * `<db>.stop` appears. While `<db>.full` exists the device's disk is "full": the
 * connection's `max_page_count` is pinned to the file's current size, so any
 * transaction that needs a new page fails with SQLITE_FULL and is rolled back
 * whole (the app's row and the journal entry its trigger wrote alike). This works
 * unprivileged, unlike a loop-mounted small filesystem.
 *
 * Usage: node --import tsx bench/chaos/writer.ts <db> <seed> <pauseMs>
 * Prints {"started":true} after its first commit and, at the end, one JSON line:
 * {"commits", "changes": {table: n}, "full_refusals"}. Each change is one row
 * affected, which is one journal entry the cloud must receive exactly once.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

const [dbPath, seedArg, pauseArg] = process.argv.slice(2);
if (!dbPath) throw new Error('usage: writer.ts <db> <seed> <pauseMs>');
let seed = Number(seedArg ?? 1) >>> 0 || 1;
const pauseMs = Number(pauseArg ?? 5);
const random = () => {
  // xorshift32: a seeded, repeatable sequence.
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};

const db = new Database(dbPath);
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

const step = db.transaction(() => {
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
while (!existsSync(`${dbPath}.stop`)) {
  const wantFull = existsSync(`${dbPath}.full`);
  if (wantFull !== full) {
    full = wantFull;
    db.pragma(`max_page_count = ${full ? Number(db.pragma('page_count', { simple: true })) : unlimited}`);
  }
  try {
    const done = step();
    for (const [table, n] of Object.entries(done)) changes[table]! += n;
    commits += 1;
    if (commits === 1) process.stdout.write(`${JSON.stringify({ started: true })}\n`);
  } catch (error) {
    if ((error as { code?: string }).code !== 'SQLITE_FULL') throw error;
    fullRefusals += 1;
  }
  await sleep(pauseMs);
}
db.close();
process.stdout.write(`${JSON.stringify({ commits, changes, full_refusals: fullRefusals })}\n`);
