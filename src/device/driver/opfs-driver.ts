import { SynclineError } from '../../protocol/errors.js';
import { sqliteWorkerAnswerSchema, type SqliteWorkerRequest, type SqliteWorkerResult } from '../../protocol/sqlite-worker.js';
import type { SqliteDriver, SqliteParam, SqliteQueryable, SqliteRow, SqliteRunResult } from './sqlite-driver.js';

/** The part of a DOM Worker the driver uses (the project compiles without the DOM library). */
export interface WorkerLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'error', listener: (event: { message?: string }) => void): void;
  terminate(): void;
}

export interface OpenOpfsOptions {
  /** The database's name in OPFS; the same name opens the same data after a reload. */
  name: string;
  /**
   * The worker to run SQLite in. By default the bundle's own `sqlite-worker.js`
   * beside this module (dist/browser/ ships it with sqlite3.wasm).
   */
  worker?: WorkerLike;
}

/** An error SQLite raised in the worker; `code` is its extended result code name, as better-sqlite3's SqliteError has. */
export class SqliteWorkerError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'SqliteWorkerError';
    this.code = code;
  }
}

interface Pending {
  resolve(result: SqliteWorkerResult): void;
  reject(error: Error): void;
}

/**
 * The SqliteDriver of a page: SQLite WASM runs in a dedicated Worker on OPFS
 * (opfs-sahpool: persistent, no COOP/COEP headers needed) and every call is a
 * message to it. One connection, so calls take turns here: a transaction holds
 * the turn from BEGIN to COMMIT, and calls from outside it wait.
 */
export class OpfsDriver implements SqliteDriver {
  readonly name: string;
  readonly #worker: WorkerLike;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #turn: Promise<unknown> = Promise.resolve();
  #broken: Error | undefined;
  readonly #direct: SqliteQueryable;

  private constructor(name: string, worker: WorkerLike) {
    this.name = name;
    this.#worker = worker;
    worker.addEventListener('message', (event) => this.#answer(event.data));
    worker.addEventListener('error', (event) => this.#fail(new Error(`the SQLite worker failed: ${event.message ?? 'unknown error'}`)));
    const send = this.#send.bind(this);
    this.#direct = {
      async all<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] = []) {
        return rowsOf(await send({ id: 0, kind: 'all', sql, params: [...params] })) as T[];
      },
      async get<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] = []) {
        return rowsOf(await send({ id: 0, kind: 'all', sql, params: [...params] }))[0] as T | undefined;
      },
      async run(sql: string, params: readonly SqliteParam[] = []) {
        const result = await send({ id: 0, kind: 'run', sql, params: [...params] });
        if (!('changes' in result)) throw new Error('the SQLite worker answered run without a change count');
        return result;
      },
      async exec(sql: string) {
        await send({ id: 0, kind: 'exec', sql });
      },
    };
  }

  /** Starts the worker and opens (or creates) the database `name` in OPFS. */
  static async open(options: OpenOpfsOptions): Promise<OpfsDriver> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(options.name)) {
      throw new SynclineError('invalid_config', `database name ${JSON.stringify(options.name.slice(0, 64))} must be letters, digits, '.', '_' or '-'`, { field: 'name' });
    }
    const worker = options.worker ?? defaultWorker();
    const driver = new OpfsDriver(options.name, worker);
    try {
      // One OPFS pool directory per database, so two databases (two workers) never contend for one pool.
      await driver.#send({ id: 0, kind: 'open', name: options.name, directory: `.syncline/${options.name}` });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return driver;
  }

  all<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T[]> {
    return this.#inTurn(() => this.#direct.all<T>(sql, params));
  }

  get<T extends SqliteRow = SqliteRow>(sql: string, params?: readonly SqliteParam[]): Promise<T | undefined> {
    return this.#inTurn(() => this.#direct.get<T>(sql, params));
  }

  run(sql: string, params?: readonly SqliteParam[]): Promise<SqliteRunResult> {
    return this.#inTurn(() => this.#direct.run(sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#inTurn(() => this.#direct.exec(sql));
  }

  writeTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    return this.#inTurn(() => this.#transaction('BEGIN IMMEDIATE', fn));
  }

  readTransaction<T>(fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    return this.#inTurn(() => this.#transaction('BEGIN', fn));
  }

  async close(): Promise<void> {
    if (this.#broken) return;
    await this.#inTurn(() => this.#send({ id: 0, kind: 'close' }));
    this.#fail(new Error(`${this.name} is closed`));
  }

  async #transaction<T>(begin: string, fn: (tx: SqliteQueryable) => Promise<T>): Promise<T> {
    await this.#direct.exec(begin);
    let result: T;
    try {
      result = await fn(this.#direct);
    } catch (error) {
      // SQLite may already have rolled back (some errors end the transaction themselves).
      await this.#direct.exec('ROLLBACK').catch(() => undefined);
      throw error;
    }
    await this.#direct.exec('COMMIT');
    return result;
  }

  #inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(fn, fn);
    this.#turn = run.catch(() => undefined);
    return run;
  }

  #send(request: SqliteWorkerRequest): Promise<SqliteWorkerResult> {
    if (this.#broken) return Promise.reject(this.#broken);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id });
    });
  }

  #answer(data: unknown): void {
    const parsed = sqliteWorkerAnswerSchema.safeParse(data);
    if (!parsed.success) return this.#fail(new Error(`the SQLite worker sent a malformed answer: ${parsed.error.message}`));
    const answer = parsed.data;
    const pending = this.#pending.get(answer.id);
    if (!pending) return;
    this.#pending.delete(answer.id);
    if (answer.ok) pending.resolve(answer.result);
    else pending.reject(new SqliteWorkerError(answer.message, answer.code));
  }

  /** The worker is gone or closed: every waiting call fails, and so does every later one. */
  #fail(error: Error): void {
    this.#broken ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#worker.terminate();
  }
}

function rowsOf(result: SqliteWorkerResult): SqliteRow[] {
  if (!('rows' in result)) throw new Error('the SQLite worker answered a query without rows');
  return result.rows;
}

function defaultWorker(): WorkerLike {
  const WorkerClass = (globalThis as { Worker?: new (url: URL, options: { type: 'module'; name: string }) => WorkerLike }).Worker;
  if (!WorkerClass) throw new SynclineError('invalid_config', 'OPFS databases need a browser with Web Workers');
  return new WorkerClass(new URL('./sqlite-worker.js', import.meta.url), { type: 'module', name: 'syncline-sqlite' });
}
