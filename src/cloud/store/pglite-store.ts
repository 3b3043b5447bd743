import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import type { ListenHandlers } from './pg-listener.js';
import type { CopyData, Queryable, QueryResult, Store } from './store.js';

const keepText = (value: string): string => value;

/** PGlite has no client to stream COPY data from: it reads the payload as a file, /dev/blob. */
const copyFromBlob = (target: string): string => `COPY ${target} FROM '/dev/blob'`;
/** PGlite reads COPY's input from one blob: the parts are all rendered first. */
const copyBlob = (data: CopyData): Blob => new Blob(typeof data === 'string' ? [data] : [...data()]);

/**
 * PGlite (PostgreSQL compiled to WASM) in a data directory, or in memory when no
 * directory is given. PGlite has a single connection: its own lock already queues
 * queries behind a running transaction, so transactions simply serialize.
 */
export class PgliteStore implements Store {
  readonly kind = 'pglite' as const;
  readonly #db: PGlite;

  private constructor(db: PGlite) {
    this.#db = db;
  }

  /** `from`: an in-memory database starts as a copy of this dump (`dump()`), skipping initdb (tests use a migrated template). */
  static async open(dataDir?: string, from?: { loadDataDir: Blob }): Promise<PgliteStore> {
    if (dataDir) mkdirSync(dataDir, { recursive: true });
    // int8 as text like node-pg does: PGlite's default (bigint, and plain numbers
    // inside int8[]) would make the two adapters disagree and round large arrays.
    const options = { parsers: { [types.INT8]: keepText }, ...(from ? { loadDataDir: from.loadDataDir } : {}) };
    const db = dataDir ? new PGlite(dataDir, options) : new PGlite(options);
    await db.waitReady;
    return new PgliteStore(db);
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    const result = await this.#db.query<T>(sql, [...params]);
    return { rows: result.rows };
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql);
  }

  async copyIn(target: string, data: CopyData): Promise<void> {
    await this.#db.query(copyFromBlob(target), [], { blob: copyBlob(data) });
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#db.transaction(async (tx) => {
      const queryable: Queryable = {
        async query<R>(sql: string, params: readonly unknown[] = []) {
          const result = await tx.query<R>(sql, [...params]);
          return { rows: result.rows };
        },
        async exec(sql: string) {
          await tx.exec(sql);
        },
        async copyIn(target: string, data: CopyData) {
          await tx.query(copyFromBlob(target), [], { blob: copyBlob(data) });
        },
      };
      return fn(queryable);
    });
  }

  /** PGlite is in process: it fails only when closed or its WASM instance aborted, which this reports. */
  async ping(): Promise<void> {
    await this.#db.query('SELECT 1');
  }

  async listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>> {
    // PGlite's one connection is in process: it is never lost, so onLost never comes.
    const unlisten = await this.#db.listen(channel, (payload) => handlers.onMessage(payload));
    handlers.onListening?.();
    return async () => {
      if (!this.#db.closed) await unlisten();
    };
  }

  /** The whole database as an uncompressed tarball, for `open(undefined, { loadDataDir })`. */
  async dump(): Promise<Blob> {
    return this.#db.dumpDataDir('none');
  }

  async close(): Promise<void> {
    if (!this.#db.closed) await this.#db.close();
  }
}
