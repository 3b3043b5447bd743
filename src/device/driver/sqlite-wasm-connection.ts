import type { Database, PreparedStatement, Sqlite3Static } from '@sqlite.org/sqlite-wasm';
import type { SqliteParam, SqliteRow, SqliteRunResult, SqliteValue } from './sqlite-driver.js';

/** Prepared statements kept per connection; past this the oldest is finalized (a trigger set's DDL is not worth keeping). */
const STATEMENT_CACHE = 256;

interface Cached {
  stmt: PreparedStatement;
  columns: string[];
}

/**
 * One SQLite WASM connection, synchronous (it runs inside the worker that owns
 * the OPFS handles). Values leave it in the driver's fixed form: every INTEGER a
 * bigint read with sqlite3_column_int64 (oo1's own getter turns small ones into
 * numbers), BLOB a Uint8Array copied out of the WASM heap. A whole number (safe
 * integer) binds as INTEGER and any other number as REAL, exactly as the
 * better-sqlite3 adapter binds, so a value gets one storage class whichever
 * adapter wrote it (oo1 alone would bind 2^60 as INTEGER, that adapter as REAL).
 */
export class SqliteWasmConnection {
  readonly #sqlite3: Sqlite3Static;
  readonly #db: Database;
  readonly #cache = new Map<string, Cached>();

  constructor(sqlite3: Sqlite3Static, db: Database) {
    this.#sqlite3 = sqlite3;
    this.#db = db;
  }

  all(sql: string, params: readonly SqliteParam[]): SqliteRow[] {
    const { stmt, columns } = this.#prepare(sql, params);
    const capi = this.#sqlite3.capi;
    const rows: SqliteRow[] = [];
    try {
      while (stmt.step()) {
        const row: SqliteRow = {};
        for (let i = 0; i < columns.length; i++) {
          switch (capi.sqlite3_column_type(stmt, i)) {
            case capi.SQLITE_INTEGER:
              row[columns[i]!] = capi.sqlite3_column_int64(stmt, i);
              break;
            case capi.SQLITE_NULL:
              row[columns[i]!] = null;
              break;
            default:
              row[columns[i]!] = stmt.get(i) as SqliteValue;
          }
        }
        rows.push(row);
      }
    } finally {
      stmt.reset(true);
    }
    return rows;
  }

  run(sql: string, params: readonly SqliteParam[]): SqliteRunResult {
    const { stmt } = this.#prepare(sql, params);
    try {
      while (stmt.step());
    } finally {
      stmt.reset(true);
    }
    const capi = this.#sqlite3.capi;
    return { changes: Number(capi.sqlite3_changes64(this.#db)), lastInsertRowid: capi.sqlite3_last_insert_rowid(this.#db) };
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  close(): void {
    for (const { stmt } of this.#cache.values()) stmt.finalize();
    this.#cache.clear();
    this.#db.close();
  }

  #prepare(sql: string, params: readonly SqliteParam[]): Cached {
    let cached = this.#cache.get(sql);
    if (cached) {
      // Most recently used last, so the first entry is the one to evict.
      this.#cache.delete(sql);
    } else {
      const stmt = this.#db.prepare(sql);
      // oo1's getColumnNames() throws for a statement without result columns (an INSERT).
      cached = { stmt, columns: stmt.columnCount > 0 ? stmt.getColumnNames() : [] };
      if (this.#cache.size >= STATEMENT_CACHE) {
        const [oldest, entry] = this.#cache.entries().next().value as [string, Cached];
        entry.stmt.finalize();
        this.#cache.delete(oldest);
      }
    }
    this.#cache.set(sql, cached);
    this.#bind(cached.stmt, params);
    return cached;
  }

  #bind(stmt: PreparedStatement, params: readonly SqliteParam[]): void {
    if (params.length !== stmt.parameterCount) {
      throw new RangeError(`the statement takes ${stmt.parameterCount} parameters, ${params.length} given`);
    }
    const capi = this.#sqlite3.capi;
    for (let i = 0; i < params.length; i++) {
      const value = params[i]!;
      if (typeof value === 'number' && !Number.isSafeInteger(value)) {
        const rc = capi.sqlite3_bind_double(stmt, i + 1, value);
        if (rc !== 0) this.#sqlite3.oo1.DB.checkRc(this.#db, rc);
      } else if (typeof value === 'number') {
        stmt.bind(i + 1, BigInt(value));
      } else {
        stmt.bind(i + 1, typeof value === 'boolean' ? (value ? 1n : 0n) : value);
      }
    }
  }
}
