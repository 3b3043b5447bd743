import { SynclineError } from '../../protocol/errors.js';
import { sqliteWorkerAnswerSchema, type SqliteWorkerAnswer, type SqliteWorkerRequest, type SqliteWorkerResult } from '../../protocol/sqlite-worker.js';
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
   * The worker to run SQLite in. In a page the default is the bundle's own
   * `sqlite-worker.js` beside this module (dist/browser/ ships it with
   * sqlite3.wasm); inside a dedicated worker SQLite runs right there, with no
   * message per statement.
   */
  worker?: WorkerLike;
}

/** An error SQLite raised; `code` is its extended result code name, as better-sqlite3's SqliteError has. */
export class SqliteWorkerError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'SqliteWorkerError';
    this.code = code;
  }
}

/** Where requests go: a worker over messages, or a host in this very worker. */
interface Channel {
  request(request: SqliteWorkerRequest): Promise<SqliteWorkerResult>;
  end(): void;
}

/**
 * The SqliteDriver of a browser app: SQLite WASM on OPFS (opfs-sahpool:
 * persistent, no COOP/COEP headers needed). In a page every call is a message to
 * a dedicated worker; in a worker the database is opened in place. One
 * connection, so calls take turns here: a transaction holds the turn from BEGIN
 * to COMMIT, and calls from outside it wait.
 */
export class OpfsDriver implements SqliteDriver {
  readonly name: string;
  readonly #channel: Channel;
  #turn: Promise<unknown> = Promise.resolve();
  #closed: Error | undefined;
  readonly #direct: SqliteQueryable;

  private constructor(name: string, channel: Channel) {
    this.name = name;
    this.#channel = channel;
    const send = (request: SqliteWorkerRequest) => (this.#closed ? Promise.reject(this.#closed) : channel.request(request));
    this.#direct = {
      async all<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] = []) {
        return rowsOf(await send({ id: 0, kind: 'all', sql, params: [...params] })) as T[];
      },
      async get<T extends SqliteRow>(sql: string, params: readonly SqliteParam[] = []) {
        return rowsOf(await send({ id: 0, kind: 'all', sql, params: [...params] }))[0] as T | undefined;
      },
      async run(sql: string, params: readonly SqliteParam[] = []) {
        const result = await send({ id: 0, kind: 'run', sql, params: [...params] });
        if (!('changes' in result)) throw new Error('SQLite answered run without a change count');
        return result;
      },
      async exec(sql: string) {
        await send({ id: 0, kind: 'exec', sql });
      },
    };
  }

  /** Opens (or creates) the database `name` in OPFS: in a worker it starts (a page) or in place (a dedicated worker). */
  static async open(options: OpenOpfsOptions): Promise<OpfsDriver> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(options.name)) {
      throw new SynclineError('invalid_config', `database name ${JSON.stringify(options.name.slice(0, 64))} must be letters, digits, '.', '_' or '-'`, { field: 'name' });
    }
    const channel = options.worker ? new WorkerChannel(options.worker) : inDedicatedWorker() ? await hostChannel() : new WorkerChannel(defaultWorker());
    const driver = new OpfsDriver(options.name, channel);
    try {
      // One OPFS pool directory per database, so two databases never contend for one pool.
      await channel.request({ id: 0, kind: 'open', name: options.name, directory: `.syncline/${options.name}` });
    } catch (error) {
      channel.end();
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
    if (this.#closed) return;
    await this.#inTurn(() => this.#channel.request({ id: 0, kind: 'close' }));
    this.#closed = new Error(`${this.name} is closed`);
    this.#channel.end();
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
}

function unwrap(answer: SqliteWorkerAnswer): SqliteWorkerResult {
  if (!answer.ok) throw new SqliteWorkerError(answer.message, answer.code);
  return answer.result;
}

/** A dedicated worker holding the database; answers are checked, since they cross from another realm. */
class WorkerChannel implements Channel {
  readonly #worker: WorkerLike;
  readonly #pending = new Map<number, { resolve(answer: SqliteWorkerAnswer): void; reject(error: Error): void }>();
  #nextId = 1;
  #broken: Error | undefined;

  constructor(worker: WorkerLike) {
    this.#worker = worker;
    worker.addEventListener('message', (event) => this.#answer(event.data));
    worker.addEventListener('error', (event) => this.#fail(new Error(`the SQLite worker failed: ${event.message ?? 'unknown error'}`)));
  }

  async request(request: SqliteWorkerRequest): Promise<SqliteWorkerResult> {
    if (this.#broken) throw this.#broken;
    const id = this.#nextId++;
    const answer = await new Promise<SqliteWorkerAnswer>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id });
    });
    return unwrap(answer);
  }

  end(): void {
    this.#fail(new Error('the SQLite worker was stopped'));
  }

  #answer(data: unknown): void {
    const parsed = sqliteWorkerAnswerSchema.safeParse(data);
    if (!parsed.success) return this.#fail(new Error(`the SQLite worker sent a malformed answer: ${parsed.error.message}`));
    const pending = this.#pending.get(parsed.data.id);
    this.#pending.delete(parsed.data.id);
    pending?.resolve(parsed.data);
  }

  /** The worker is gone or stopped: every waiting call fails, and so does every later one. */
  #fail(error: Error): void {
    this.#broken ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#worker.terminate();
  }
}

/** SQLite in this very worker: no messages, no copies. Loaded on demand, so a page's bundle does not carry SQLite. */
async function hostChannel(): Promise<Channel> {
  const { SqliteWasmHost } = await import('./sqlite-wasm-host.js');
  const host = new SqliteWasmHost();
  return { request: async (request) => unwrap(await host.answer(0, request)), end: () => undefined };
}

function inDedicatedWorker(): boolean {
  return typeof (globalThis as { DedicatedWorkerGlobalScope?: unknown }).DedicatedWorkerGlobalScope === 'function';
}

function rowsOf(result: SqliteWorkerResult): SqliteRow[] {
  if (!('rows' in result)) throw new Error('SQLite answered a query without rows');
  return result.rows;
}

function defaultWorker(): WorkerLike {
  const WorkerClass = (globalThis as { Worker?: new (url: URL, options: { type: 'module'; name: string }) => WorkerLike }).Worker;
  if (!WorkerClass) throw new SynclineError('invalid_config', 'OPFS databases need a browser with Web Workers');
  return new WorkerClass(new URL('./sqlite-worker.js', import.meta.url), { type: 'module', name: 'syncline-sqlite' });
}
