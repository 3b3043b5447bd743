// The dedicated Worker that holds one SQLite WASM database in OPFS for a page
// (the page talks to it through OpfsDriver). OPFS sync access handles exist
// only in workers; the opfs-sahpool VFS keeps a pool of them open, needs no
// COOP/COEP headers, and makes the file persist across reloads.
import sqlite3InitModule, { type Sqlite3Static } from '@sqlite.org/sqlite-wasm';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { sqliteWorkerRequestSchema, type SqliteWorkerAnswer, type SqliteWorkerRequest, type SqliteWorkerResult } from '../../protocol/sqlite-worker.js';
import { SqliteWasmConnection } from './sqlite-wasm-connection.js';

/** The worker global this file uses (the project compiles without the DOM library). */
interface WorkerScope {
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  postMessage(message: SqliteWorkerAnswer): void;
  close(): void;
}
declare const self: WorkerScope;

// A reloaded page's new worker can start before the old one has let go of the pool's handles.
const OPEN_ATTEMPTS = 12;

// The module loads once, as the worker starts: the worker exists to hold this database.
const sqlite3Ready = sqlite3InitModule();
let connection: SqliteWasmConnection | undefined;
let queue: Promise<void> = Promise.resolve();

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

async function handle(request: SqliteWorkerRequest): Promise<SqliteWorkerResult> {
  if (request.kind === 'open') {
    if (connection) throw new Error('this worker already holds a database');
    const sqlite3 = await sqlite3Ready;
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
    connection = new SqliteWasmConnection(sqlite3, db);
    return { done: true };
  }
  if (!connection) throw new Error('no database is open in this worker');
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
      connection = undefined;
      return { done: true };
  }
}

async function answerError(id: number, error: unknown): Promise<SqliteWorkerAnswer> {
  const message = error instanceof Error ? error.message : String(error);
  const rc = (error as { resultCode?: unknown } | undefined)?.resultCode;
  if (typeof rc !== 'number') return { id, ok: false, message };
  return { id, ok: false, message, code: (await sqlite3Ready).capi.sqlite3_js_rc_str(rc) };
}

self.addEventListener('message', (event) => {
  const parsed = sqliteWorkerRequestSchema.safeParse(event.data);
  const id = typeof (event.data as { id?: unknown } | undefined)?.id === 'number' ? (event.data as { id: number }).id : -1;
  if (!parsed.success) {
    self.postMessage({ id, ok: false, message: `bad request to the SQLite worker: ${parsed.error.message}` });
    return;
  }
  // Requests run one at a time in arrival order (open is async; the rest must not overtake it).
  queue = queue.then(async () => {
    try {
      self.postMessage({ id, ok: true, result: await handle(parsed.data) });
    } catch (error) {
      self.postMessage(await answerError(id, error));
    }
    if (parsed.data.kind === 'close') self.close();
  });
});
