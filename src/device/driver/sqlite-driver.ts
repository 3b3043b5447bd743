/**
 * The only way the device engine reaches SQLite. It is async so the same engine
 * runs over better-sqlite3 in Node and over SQLite WASM (OPFS) in a browser
 * worker, the shape PowerSync's DBAdapter and kysely's SqliteDatabase use.
 *
 * Values cross it in one fixed form whatever the adapter: INTEGER as bigint (a
 * 64-bit value is never rounded through a double), REAL as number, TEXT as
 * string, BLOB as Uint8Array, NULL as null.
 */
export type SqliteValue = null | bigint | number | string | Uint8Array;

/** What a statement accepts as a bound parameter; numbers bind as REAL or INTEGER by value. */
export type SqliteParam = SqliteValue | boolean;

export type SqliteRow = Record<string, SqliteValue>;

export interface SqliteRunResult {
  changes: number;
  lastInsertRowid: bigint;
}

/** Statements on one connection; inside a transaction every call runs in it. */
export interface SqliteQueryable {
  /** All rows of a query; the statement is prepared once per connection and cached. */
  all<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T[]>;
  /**
   * Optional fast path: all rows as arrays of values in select-list order, for
   * hot reads of many rows (the journal) where building an object per row costs
   * more than the read. Callers fall back to `all` without it.
   */
  values?(sql: string, params?: readonly SqliteParam[]): Promise<SqliteValue[][]>;
  /** The first row, or undefined. */
  get<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T | undefined>;
  /** A statement that returns no rows. */
  run(sql: string, params?: readonly SqliteParam[]): Promise<SqliteRunResult>;
  /** Several statements separated by `;`, no parameters (DDL, trigger sets). */
  exec(sql: string): Promise<void>;
}

export interface SqliteDriver extends SqliteQueryable {
  /** A human name for errors and logs (a file path, an OPFS name). */
  readonly name: string;
  /**
   * Runs `fn` in `BEGIN IMMEDIATE`: the write lock is taken up front, so reads
   * inside it see the state the writes act on (the gap-free snapshot switch
   * relies on this). Calls on the driver from outside `fn` wait until it ends.
   * A throw rolls back and rethrows.
   */
  writeTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T>;
  /**
   * Optional: calls `listener` whenever the database may have changed, by any
   * connection, and returns the function that stops it (undefined when it cannot
   * watch this database). Only a hint to look (it may come early or for
   * nothing); callers still check, and without it they poll.
   */
  watch?(listener: () => void): (() => void) | undefined;
  /**
   * Runs `fn` in a read transaction: one consistent snapshot of the file, which
   * commits by other connections meanwhile do not change. Calls from outside `fn`
   * wait until it ends, so keep it short. `fn` may write TEMP tables (the
   * connection's own; the change stream's bootstrap copies its rows into them).
   */
  readTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
