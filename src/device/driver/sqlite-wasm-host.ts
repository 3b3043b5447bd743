import sqlite3InitModule, { type Sqlite3Static } from '@sqlite.org/sqlite-wasm';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import type { SqliteWorkerAnswer, SqliteWorkerRequest, SqliteWorkerResult } from '../../protocol/sqlite-worker.js';
import { SqliteWasmConnection } from './sqlite-wasm-connection.js';

// A reloaded page's new worker can start before the old one has let go of the pool's handles.
const OPEN_ATTEMPTS = 12;

/**
 * One SQLite WASM database in OPFS, answering the driver's requests. It runs in
 * a dedicated worker (OPFS sync access handles exist only there): the page's
 * own sqlite-worker.js, or the app's worker when SharedSync runs in one. The
 * opfs-sahpool VFS keeps a pool of handles open, needs no COOP/COEP headers,
 * and makes the file persist across reloads.
 */
export class SqliteWasmHost {
  // The module loads as the host is made: a host exists to hold this database.
  readonly #sqlite3 = sqlite3InitModule();
  #connection: SqliteWasmConnection | undefined;

  /** Runs one request; failures become error answers carrying SQLite's result code name. */
  async answer(id: number, request: SqliteWorkerRequest): Promise<SqliteWorkerAnswer> {
    try {
      return { id, ok: true, result: await this.#handle(request) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const rc = (error as { resultCode?: unknown } | undefined)?.resultCode;
      if (typeof rc !== 'number') return { id, ok: false, message };
      return { id, ok: false, message, code: (await this.#sqlite3).capi.sqlite3_js_rc_str(rc) };
    }
  }

  async #handle(request: SqliteWorkerRequest): Promise<SqliteWorkerResult> {
    if (request.kind === 'open') {
      if (this.#connection) throw new Error('this host already holds a database');
      const sqlite3 = await this.#sqlite3;
      const pool = await openPool(sqlite3, request.directory);
      const db = new pool.OpfsSAHPoolDb(`/${request.name}`);
      // Temporary files stay in memory: the pool has a fixed number of OPFS handles.
      // The pool is this connection's alone, so exclusive locking costs nothing and
      // lets WAL work without shared memory; WAL with synchronous=NORMAL commits
      // with one append and no flush (1 ms instead of 10 ms a write transaction,
      // measured in Chromium). A tab or browser crash loses nothing committed; an OS
      // crash or power loss may lose the last commits, never the file's consistency,
      // and the sync state rolls back with the rows it describes (a lost pull is
      // pulled again; a kept outbox whose ack was lost is pushed again under its
      // bundle id, which the server deduplicates).
      db.exec('PRAGMA temp_store = MEMORY; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL');
      this.#connection = new SqliteWasmConnection(sqlite3, db);
      return { done: true };
    }
    const connection = this.#connection;
    if (!connection) throw new Error('no database is open here');
    switch (request.kind) {
      case 'all':
        return { rows: connection.all(request.sql, request.params) };
      case 'run':
        return connection.run(request.sql, request.params);
      case 'exec':
        connection.exec(request.sql);
        return { done: true };
      case 'close':
        connection.close();
        this.#connection = undefined;
        return { done: true };
    }
  }
}

async function openPool(sqlite3: Sqlite3Static, directory: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      // forceReinitIfPreviouslyFailed (not in the typings): a failed attempt is cached by the VFS unless told to try again.
      const options: Parameters<Sqlite3Static['installOpfsSAHPoolVfs']>[0] & { forceReinitIfPreviouslyFailed: boolean } = {
        directory,
        name: `syncline-${directory.replace(/[^A-Za-z0-9]/g, '-')}`,
        preserveOnInitFailure: true,
        forceReinitIfPreviouslyFailed: true,
      };
      return await sqlite3.installOpfsSAHPoolVfs(options);
    } catch (error) {
      if (attempt + 1 >= OPEN_ATTEMPTS) throw error;
      await sleep(50 + backoffDelay(attempt, 50, 1000));
    }
  }
}
