/**
 * An unmodified app writing a SQLite file from its own process: plain
 * better-sqlite3, WAL, a busy timeout, and nothing from Syncline. Tests run it as a
 * real child process next to the agent.
 *
 * Usage: node --import tsx test/support/sqlite-app.ts <db-file> <scenario> [n] [start]
 *
 * Scenarios (n defaults to 10, start to 1; each numbered step is its own transaction):
 *   setup          create the app's tables (idempotent):
 *                    items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, qty INTEGER, data BLOB)
 *                    order_lines(order_id, line_no, sku, qty, PRIMARY KEY (order_id, line_no))   composite key
 *                    kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID                                   any storage class in v
 *                    log_lines(at TEXT, msg TEXT)                                              no key: captured by rowid
 *                    "ünïcødé ""tåble"", 1"(ключ TEXT PRIMARY KEY, значение TEXT)               hostile name
 *   insert n start insert step i = start..start+n-1 into every table (big integers, blobs, unicode, REAL edges)
 *   update n start update the rows of steps start.. in every table
 *   rekey n start  move items id i to id i + 1,000,000 (a key change)
 *   delete n start delete the rows of steps start.. from every table
 *   churn n seed   n random single-row inserts/updates/deletes/rekeys of items (seeded);
 *                  prints {"started":true} after the first commit so a test can overlap with it
 *   churn-across-capture n seed  churn, then goes on until items has capture triggers and commits
 *                  20 more, so a test has writes on both sides of the switch however fast this runs
 *   rollback       insert, update and delete inside a transaction that is rolled back
 *   add-column     ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'none', then insert item id 900001 with note 'fresh'
 *   add-nullable-column  ALTER TABLE items ADD COLUMN memo TEXT (no default), then insert item id 900002 with memo 'fresh'
 *   rebuild        rebuild items the way migration tools do (new table, copy, drop, rename)
 *   drop-log       DROP TABLE log_lines
 *   bulk n start   insert items ids start..start+n-1 in one transaction (a large backlog for one table)
 *   retype-qty     rebuild order_lines with qty TEXT (an affinity change), then insert line (900001, 1) with qty 'many'
 * The last line on stdout is {"scenario":..., "done":true, ...}.
 */
import Database from 'better-sqlite3';

const UNICODE_TABLE = 'ünïcødé "tåble", 1';

const BIG = [9223372036854775807n, -9223372036854775808n, 9007199254740993n, 0n, -1n];
const REALS = [0.1 + 0.2, 1e20, -2.5, 5e-324, 1.7976931348623157e308];
const TEXTS = ["it's", 'a,b,"c"', 'line\nbreak', '😀 emoji', 'NULL', "X'00'", ''];

const [dbPath, scenario, nArg, startArg] = process.argv.slice(2);
if (!dbPath || !scenario) {
  process.stderr.write('usage: sqlite-app.ts <db-file> <scenario> [n] [start]\n');
  process.exit(2);
}
const n = Number(nArg ?? 10);
const start = Number(startArg ?? 1);

const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 20000');
db.defaultSafeIntegers(true);
const q = (name: string) => `"${name.replaceAll('"', '""')}"`;
const U = q(UNICODE_TABLE);

function blob(i: number): Buffer {
  return Buffer.from([i & 0xff, 0, 0xff, (i >> 8) & 0xff]);
}

function kvValue(i: number): unknown {
  switch (i % 5) {
    case 0:
      return BIG[i % BIG.length];
    case 1:
      return REALS[i % REALS.length];
    case 2:
      return TEXTS[i % TEXTS.length];
    case 3:
      return blob(i);
    default:
      return null;
  }
}

const steps = (fn: (i: number) => void) => {
  const tx = db.transaction(fn);
  for (let i = start; i < start + n; i++) tx(i);
};

const scenarios: Record<string, () => Record<string, unknown>> = {
  setup() {
    db.exec(`
      CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, qty INTEGER, data BLOB);
      CREATE TABLE IF NOT EXISTS order_lines (order_id INTEGER, line_no INTEGER, sku TEXT, qty INTEGER, PRIMARY KEY (order_id, line_no));
      CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS log_lines (at TEXT, msg TEXT);
      CREATE TABLE IF NOT EXISTS ${U} ("ключ" TEXT PRIMARY KEY, "значение" TEXT);
    `);
    return {};
  },
  insert() {
    const item = db.prepare('INSERT INTO items (id, name, price, qty, data) VALUES (?, ?, ?, ?, ?)');
    const line = db.prepare('INSERT INTO order_lines VALUES (?, ?, ?, ?)');
    const kv = db.prepare('INSERT INTO kv VALUES (?, ?)');
    const log = db.prepare('INSERT INTO log_lines VALUES (?, ?)');
    const uni = db.prepare(`INSERT INTO ${U} VALUES (?, ?)`);
    steps((i) => {
      item.run(BigInt(i), `${TEXTS[i % TEXTS.length]} #${i}`, REALS[i % REALS.length], BIG[i % BIG.length], blob(i));
      line.run(BigInt(i), BigInt(i % 3), `sku-${i}`, BigInt(i));
      kv.run(`k${i}`, kvValue(i));
      log.run(`2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`, `log ${i}, "quoted"`);
      uni.run(`ключ-${i}-😀`, `значение ${i}`);
    });
    return { n, start };
  },
  update() {
    steps((i) => {
      db.prepare('UPDATE items SET name = ?, price = price + 1 WHERE id = ?').run(`updated ${i} 'ok'`, BigInt(i));
      db.prepare('UPDATE order_lines SET qty = qty + 1 WHERE order_id = ?').run(BigInt(i));
      db.prepare('UPDATE kv SET v = ? WHERE k = ?').run(kvValue(i + 1), `k${i}`);
      db.prepare(`UPDATE ${U} SET "значение" = ? WHERE "ключ" = ?`).run(`новое ${i}`, `ключ-${i}-😀`);
    });
    return { n, start };
  },
  rekey() {
    steps((i) => db.prepare('UPDATE items SET id = id + 1000000 WHERE id = ?').run(BigInt(i)));
    return { n, start };
  },
  delete() {
    steps((i) => {
      db.prepare('DELETE FROM items WHERE id = ?').run(BigInt(i));
      db.prepare('DELETE FROM order_lines WHERE order_id = ?').run(BigInt(i));
      db.prepare('DELETE FROM kv WHERE k = ?').run(`k${i}`);
      db.prepare('DELETE FROM log_lines WHERE rowid = (SELECT min(rowid) FROM log_lines)').run();
      db.prepare(`DELETE FROM ${U} WHERE "ключ" = ?`).run(`ключ-${i}-😀`);
    });
    return { n, start };
  },
  churn() {
    let seed = start >>> 0 || 1;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const ids = (db.prepare('SELECT id FROM items').pluck().all() as bigint[]).map(Number);
    let next = 2_000_000;
    const tx = db.transaction((op: number) => {
      const pick = ids.length > 0 ? Math.floor(random() * ids.length) : -1;
      if (op < 0.4 || pick < 0) {
        db.prepare('INSERT INTO items (id, name, price, qty, data) VALUES (?, ?, ?, ?, ?)').run(BigInt(next), `churn ${next}`, random(), BigInt(next), blob(next));
        ids.push(next++);
      } else if (op < 0.7) {
        db.prepare('UPDATE items SET name = ?, qty = qty + 1 WHERE id = ?').run(`churned ${random()}`, BigInt(ids[pick]!));
      } else if (op < 0.85) {
        db.prepare('DELETE FROM items WHERE id = ?').run(BigInt(ids[pick]!));
        ids.splice(pick, 1);
      } else {
        db.prepare('UPDATE items SET id = ? WHERE id = ?').run(BigInt(next), BigInt(ids[pick]!));
        ids[pick] = next++;
      }
    });
    for (let k = 0; k < n; k++) {
      tx(random());
      if (k === 0) process.stdout.write(`${JSON.stringify({ started: true })}\n`);
    }
    if (scenario === 'churn-across-capture') {
      const captured = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'").pluck();
      const until = Date.now() + 60_000;
      // count(*) comes back as a bigint (defaultSafeIntegers): compared with 0 it never matched, so this loop never ran.
      while (captured.get() === 0n && Date.now() < until) tx(random());
      for (let k = 0; k < 20; k++) tx(random());
    }
    return { n };
  },
  rollback() {
    try {
      db.transaction(() => {
        db.prepare("INSERT INTO items (id, name) VALUES (-1, 'rolled back')").run();
        db.prepare("UPDATE items SET name = 'rolled back'").run();
        db.prepare('DELETE FROM kv').run();
        throw new Error('rollback on purpose');
      })();
    } catch {
      return { rolledBack: true };
    }
    return { rolledBack: false };
  },
  'add-column'() {
    db.exec("ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'none'");
    db.prepare("INSERT INTO items (id, name, note) VALUES (900001, 'after alter', 'fresh')").run();
    return {};
  },
  'add-nullable-column'() {
    db.exec('ALTER TABLE items ADD COLUMN memo TEXT');
    db.prepare("INSERT INTO items (id, name, memo) VALUES (900002, 'after alter', 'fresh')").run();
    return {};
  },
  rebuild() {
    db.transaction(() => {
      db.exec(`
        CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, qty INTEGER, data BLOB);
        INSERT INTO items_new SELECT id, name, price, qty, data FROM items;
        DROP TABLE items;
        ALTER TABLE items_new RENAME TO items;
      `);
    })();
    return {};
  },
  'drop-log'() {
    db.exec('DROP TABLE log_lines');
    return {};
  },
  bulk() {
    const item = db.prepare('INSERT INTO items (id, name, price, qty, data) VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = start; i < start + n; i++) item.run(BigInt(i), `bulk ${i}`, i + 0.5, BigInt(i), blob(i));
    })();
    return { n, start };
  },
  'retype-qty'() {
    db.transaction(() => {
      db.exec(`
        CREATE TABLE order_lines_new (order_id INTEGER, line_no INTEGER, sku TEXT, qty TEXT, PRIMARY KEY (order_id, line_no));
        INSERT INTO order_lines_new SELECT order_id, line_no, sku, CAST(qty AS TEXT) FROM order_lines;
        DROP TABLE order_lines;
        ALTER TABLE order_lines_new RENAME TO order_lines;
      `);
      db.prepare("INSERT INTO order_lines VALUES (900001, 1, 'sku-x', 'many')").run();
    })();
    return {};
  },
};
scenarios['churn-across-capture'] = scenarios.churn!;

const run = scenarios[scenario];
if (!run) {
  process.stderr.write(`unknown scenario ${scenario}; see the top of test/support/sqlite-app.ts\n`);
  process.exit(2);
}
const result = run();
db.close();
process.stdout.write(`${JSON.stringify({ scenario, done: true, ...result })}\n`);
