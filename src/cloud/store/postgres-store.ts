import pg from 'pg';
import type { Logger } from 'pino';
import { DEFAULT_CONNECTION_RETRY, withConnectionRetry, type ConnectionRetryOptions } from './connection-retry.js';
import { copyIn } from './pg-copy.js';
import { PgListener, type ListenHandlers } from './pg-listener.js';
import { sqlState, type CopyData, type PoolStats, type Queryable, type QueryResult, type Store } from './store.js';

export interface PostgresStoreOptions {
  logger?: Logger;
  maxConnections?: number;
  /** How a lost connection is retried; DEFAULT_CONNECTION_RETRY when absent. */
  retry?: ConnectionRetryOptions;
}

/** A connection attempt that has not completed by then counts as lost (a blackholed host otherwise hangs forever). */
const CONNECT_TIMEOUT_MS = 5000;
/** How long `ping` waits for `SELECT 1` before calling the database unreachable. */
const PING_TIMEOUT_MS = 2000;

/**
 * PostgreSQL through a node-pg pool (DATABASE_URL). node-pg already returns int8
 * and numeric as strings; bytea arrives as a Buffer, which is a Uint8Array.
 *
 * A connection can be lost at any time (pg_terminate_backend, a failover, a
 * pooler's idle timeout, a restart): every client carries an `error` listener
 * while it is checked out as well as while idle, so a lost socket never becomes
 * an unhandled 'error' event, and the statement or transaction in flight is run
 * again on a fresh connection (see connection-retry.ts).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #retry: ConnectionRetryOptions;
  readonly #logger: Logger | undefined;
  /** Every channel this store listens on, over one connection. */
  readonly #listener: PgListener;

  private constructor(pool: pg.Pool, url: string, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.#listener = new PgListener(url, { connectTimeoutMs: CONNECT_TIMEOUT_MS, ...(options.logger ? { logger: options.logger } : {}) });
    this.#retry = options.retry ?? DEFAULT_CONNECTION_RETRY;
    this.#logger = options.logger;
  }

  static async open(databaseUrl: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    // Shortest exact float output regardless of the server's configured default, so
    // doubles read back as text round-trip bit for bit; set at connection start-up
    // rather than by a query racing the pool's first one.
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max: options.maxConnections ?? 10,
      options: '-c extra_float_digits=3',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A peer that vanished without a FIN (a failed-over host) is noticed by TCP keepalive.
      keepAlive: true,
    });
    // An idle client that loses its server must not crash the process; the next
    // query on the pool simply gets a fresh connection. (pg attaches the client to
    // the error; log only what says why, not the client object.)
    pool.on('error', (error) => options.logger?.info({ reason: error.message, code: sqlState(error) }, 'idle PostgreSQL connection failed'));
    // Every client also carries a listener of its own for its whole life. The pool
    // drops its idle listener the moment it hands a client out, and node-pg parses a
    // whole socket chunk synchronously: a FATAL (pg_terminate_backend) right behind
    // the ReadyForQuery that freed the client is emitted before any caller can
    // attach a listener, and an 'error' event without one kills the process. The
    // failure itself still reaches the caller as a failed (and retried) query.
    pool.on('connect', (client) => {
      client.on('error', (error) => options.logger?.debug({ reason: error.message, code: sqlState(error) }, 'PostgreSQL connection failed'));
    });
    const client = await pool.connect().catch(async (error: unknown) => {
      await pool.end().catch(() => {});
      throw error;
    });
    client.release();
    return new PostgresStore(pool, databaseUrl, options);
  }

  /** pool.query holds its own error listener on the client it borrows. */
  async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    return withConnectionRetry(async () => {
      const result = await this.#pool.query(sql, [...params]);
      return { rows: result.rows as T[] };
    }, this.#retry, this.#logger);
  }

  async exec(sql: string): Promise<void> {
    await withConnectionRetry(() => this.#pool.query(sql), this.#retry, this.#logger);
  }

  copyIn(target: string, data: CopyData): Promise<void> {
    return this.transaction((tx) => tx.copyIn(target, data));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return withConnectionRetry(() => this.#transactionOnce(fn), this.#retry, this.#logger);
  }

  /** One attempt, no retry, bounded in time: for health checks. */
  async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to SELECT 1 within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.#pool.query('SELECT 1'), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #transactionOnce<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    // The socket can fail between two statements (while `fn` computes): without a
    // listener of our own that 'error' event would take the process down. The
    // statement in progress (or the next one) rejects with the same failure.
    let lost: Error | undefined;
    const onError = (error: Error) => {
      lost = error;
      this.#logger?.warn({ reason: error.message, code: sqlState(error) }, 'PostgreSQL connection lost during a transaction');
    };
    client.on('error', onError);
    const queryable: Queryable = {
      async query<R>(sql: string, params: readonly unknown[] = []) {
        const result = await client.query(sql, [...params]);
        return { rows: result.rows as R[] };
      },
      async exec(sql: string) {
        await client.query(sql);
      },
      copyIn: (target: string, data: CopyData) => copyIn(client, target, data),
    };
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(queryable);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // A failed ROLLBACK leaves the connection in an unknown state: drop it.
      if (!lost) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      }
      // A caller may have caught or wrapped the lost connection's error; the retry decision needs the original.
      throw lost ?? error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken || lost !== undefined);
    }
  }

  poolStats(): PoolStats {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>> {
    return this.#listener.subscribe(channel, handlers);
  }

  async close(): Promise<void> {
    await this.#listener.stop();
    await this.#pool.end();
  }
}

