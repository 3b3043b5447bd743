import Database from 'better-sqlite3';
import { SynclineError } from '../../protocol/errors.js';
import { watchWal } from './wal-watch.js';
import type { SqliteDriver, SqliteParam, SqliteQueryable, SqliteRow, SqliteRunResult, SqliteValue } from './sqlite-driver.js';

/** Statements kept prepared per connection; an engine uses a few dozen, so this only bounds an app that generates SQL. */
const STATEMENT_CACHE_SIZE = 256;

export interface OpenBetterSqlite3Options {
  /** How long a statement waits for the app's write lock before failing (ms). */
  busyTimeoutMs?: number;
  /** Creates the file (in WAL mode) when it does not exist; by default a missing file is an error. */
  create?: boolean;
  /** SQLite's page cache for this connection in KiB (better-sqlite3's default is 16 MB). */
  cacheKib?: number;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** The raw better-sqlite3 connection, for Node apps that write their own tables on the file. */
export type DeviceDb = Database.Database;

/**
 * Opens an existing SQLite file that an app writes from its own process. WAL lets
 * the agent read while the app writes; the busy timeout lets the agent's short
 * write transactions queue behind the app's instead of failing; safe integers make
 * every INTEGER a bigint, so 64-bit values are never rounded through a double.
 */
function openDeviceDb(path: string, options: OpenBetterSqlite3Options): DeviceDb {
  let db: DeviceDb;
  try {
    db = new Database(path, { fileMustExist: true, timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
  } catch (error) {
    throw new SynclineError('capture_failed', `cannot open ${path}: ${(error as Error).message}`, { db: path }, { cause: error });
  }
  try {
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS)}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new SynclineError('capture_failed', `${path} could not be switched to WAL mode (it is in ${String(mode)} mode)`, { db: path });
    }
    db.defaultSafeIntegers(true);
    if (options.cacheKib !== undefined) db.pragma(`cache_size = -${Math.trunc(options.cacheKib)}`);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof SynclineError) throw error;
    throw new SynclineError('capture_failed', `cannot use ${path}: ${(error as Error).message}`, { db: path }, { cause: error });
  }
}

/**
 * The SqliteDriver over better-sqlite3, for the Node agent and SDK. better-sqlite3
 * is synchronous, so a statement runs to completion before its promise is even
 * returned; what the driver adds is the write-transaction mutex: while a
 * transaction's `fn` awaits, calls from outside it (other engine parts, timers)
 * queue instead of landing inside the open BEGIN IMMEDIATE.
 *
 * The raw connection stays reachable as `database` for Node apps that write
 * their own tables on it; such writes bypass the mutex, as any other connection's do.
 */
export class BetterSqlite3Driver implements SqliteDriver {
  readonly name: string;
  readonly database: DeviceDb;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #tx: SqliteQueryable;
  #locked = false;
  readonly #waiters: (() => void)[] = [];

  constructor(database: DeviceDb, name = database.name) {
    this.database = database;
    this.name = name;
    // Every INTEGER a bigint, as the interface promises (openDeviceDb sets it too; a handed-in connection may not).
    database.defaultSafeIntegers(true);
    this.#tx = {
      all: async <T extends SqliteRow>(sql: string, params?: readonly SqliteParam[]) => this.#all<T>(sql, params),
      values: async (sql: string, params?: readonly SqliteParam[]) => this.#values(sql, params),
      get: async <T extends SqliteRow>(sql: string, params?: readonly SqliteParam[]) => this.#get<T>(sql, params),
      run: async (sql: string, params?: readonly SqliteParam[]) => this.#run(sql, params),
      exec: async (sql: string) => this.#exec(sql),
    };
  }

  /** Opens an app's file (WAL, busy timeout, safe integers). */
  static open(path: string, options: OpenBetterSqlite3Options = {}): BetterSqlite3Driver {
    if (options.create) {
      // Only creates the file and sets WAL, which persists in it; openDeviceDb then opens it as any other.
      const created = new Database(path);
      created.pragma('journal_mode = WAL');
      created.close();
    }
    return new BetterSqlite3Driver(openDeviceDb(path, options), path);
  }

  all<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T[]> {
    return this.#outside(() => this.#all<T>(sql, params));
  }

  values(sql: string, params?: readonly SqliteParam[]): Promise<SqliteValue[][]> {
    return this.#outside(() => this.#values(sql, params));
  }

  get<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T | undefined> {
    return this.#outside(() => this.#get<T>(sql, params));
  }

  run(sql: string, params?: readonly SqliteParam[]): Promise<SqliteRunResult> {
    return this.#outside(() => this.#run(sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#outside(() => this.#exec(sql));
  }

  /** Hints from the kernel's watch of the `-wal` file (wal-watch.ts): no polling while idle. */
  watch(listener: () => void): (() => void) | undefined {
    return watchWal(this.database, listener);
  }

  async writeTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    return this.#transaction('BEGIN IMMEDIATE', fn);
  }

  async readTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    return this.#transaction('BEGIN', fn);
  }

  async close(): Promise<void> {
    await this.#acquire();
    this.#statements.clear();
    this.database.close();
    this.#release();
  }

  async #transaction<T>(begin: string, fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    await this.#acquire();
    try {
      this.database.exec(begin);
      try {
        const result = await fn(this.#tx);
        this.database.exec('COMMIT');
        return result;
      } catch (error) {
        // A failed COMMIT (a deferred foreign key) leaves the transaction open; a statement error may already have ended it.
        if (this.database.inTransaction) this.database.exec('ROLLBACK');
        throw error;
      }
    } finally {
      this.#release();
    }
  }

  /** A statement from outside a transaction: at once when none is open (the common case, no extra tick), else after it. */
  async #outside<T>(fn: () => T): Promise<T> {
    if (!this.#locked) return fn();
    await this.#acquire();
    try {
      return fn();
    } finally {
      this.#release();
    }
  }

  #acquire(): Promise<void> {
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Hands the lock straight to the next waiter, so a statement queued behind a transaction cannot be overtaken. */
  #release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#locked = false;
  }

  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (statement) {
      // Most recently used last, so the first entry is the one to evict.
      this.#statements.delete(sql);
    } else {
      statement = this.database.prepare(sql);
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
    }
    this.#statements.set(sql, statement);
    return statement;
  }

  #all<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] | undefined): T[] {
    const rows = this.#statement(sql).all(...bind(params)) as SqliteRow[];
    for (const row of rows) toDriverRow(row);
    return rows as T[];
  }

  /** A statement of its own in raw mode (cached under a marked key), so the object-row statement of the same SQL stays as it is. */
  #values(sql: string, params: readonly SqliteParam[] | undefined): SqliteValue[][] {
    const key = `\0raw\0${sql}`;
    let statement = this.#statements.get(key);
    if (!statement) {
      statement = this.database.prepare(sql).raw(true);
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
      this.#statements.set(key, statement);
    }
    const rows = statement.all(...bind(params)) as SqliteValue[][];
    for (const row of rows) {
      for (let i = 0; i < row.length; i++) {
        const value = row[i];
        if (value instanceof Uint8Array && Buffer.isBuffer(value)) row[i] = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      }
    }
    return rows;
  }

  #get<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] | undefined): T | undefined {
    const row = this.#statement(sql).get(...bind(params)) as SqliteRow | undefined;
    return row === undefined ? undefined : (toDriverRow(row) as T);
  }

  #run(sql: string, params: readonly SqliteParam[] | undefined): SqliteRunResult {
    const result = this.#statement(sql).run(...bind(params));
    return { changes: result.changes, lastInsertRowid: BigInt(result.lastInsertRowid) };
  }

  #exec(sql: string): void {
    this.database.exec(sql);
  }
}

/**
 * better-sqlite3 binds Buffers, not plain Uint8Arrays, and no booleans; and it binds every number as REAL,
 * where the interface (like SQLite WASM's binding) binds a whole number as INTEGER.
 */
function bind(params: readonly SqliteParam[] | undefined): unknown[] {
  if (!params) return [];
  return params.map((value) => {
    if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value;
    if (typeof value === 'boolean') return value ? 1n : 0n;
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return value;
  });
}

/** BLOBs come back as Buffers; the interface hands out plain Uint8Arrays (a view, no copy), as the browser adapter does. */
function toDriverRow(row: SqliteRow): SqliteRow {
  for (const column in row) {
    const value = row[column] as SqliteValue;
    if (value instanceof Uint8Array && Buffer.isBuffer(value)) row[column] = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  return row;
}
