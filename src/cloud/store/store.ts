import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { SynclineError } from '../../protocol/errors.js';
import type { ListenHandlers } from './pg-listener.js';

/**
 * The cloud's view of its database. Ingest, governance and the admin API talk to
 * this interface only; PGlite and PostgreSQL are two adapters that run the same SQL.
 *
 * Value conventions, identical for both adapters (callers rely on them):
 * - int8 (bigint) comes back as a decimal string, never a JS number, so no value
 *   is rounded; int8[] as an array of strings.
 * - numeric as a string, float8 as a number, uuid as a string, jsonb parsed,
 *   timestamptz as a Date, bytea as a Uint8Array.
 * - Parameters are strings, numbers, null, or arrays of them. Code that needs
 *   exact values passes text and casts in SQL (see type-mapping.ts).
 */
export interface QueryResult<T> {
  rows: T[];
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
  /** Runs one or more statements without parameters (DDL, migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Bulk load: `COPY target FROM` rows in PostgreSQL's text format (see
   * copy-text.ts). `target` is a quoted table name with its column list. The fast
   * path for many rows: no parameter arrays to build and parse.
   */
  copyIn(target: string, data: CopyData): Promise<void>;
}

/**
 * COPY's payload: the text, or a function rendering it in parts. PostgreSQL gets
 * each part as soon as it is rendered and parses it while the next one is (a
 * function, not an iterator, so a transaction run again renders it again).
 */
export type CopyData = string | (() => Iterable<string>);

export type StoreKind = 'pglite' | 'postgres';

export interface Store extends Queryable {
  readonly kind: StoreKind;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it
   * throws (the error is rethrown unchanged).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** One `SELECT 1`, without retries and bounded in time; rejects with the reason when the database cannot answer (health checks). */
  ping(): Promise<void>;
  /**
   * Receives the payloads NOTIFY sends on `channel` (from any process on the same
   * database; in PGlite, from this process). Every channel of a store shares one
   * listening connection, made again after it is lost (PostgreSQL; see
   * pg-listener.ts). Resolves once listening, or once the attempt failed (then
   * onLost was called and onListening follows a successful retry); the returned
   * function stops it.
   */
  listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>>;
  close(): Promise<void>;
  /** Connection pool figures, for stores that pool connections (PostgreSQL). */
  poolStats?(): PoolStats;
}

export interface PoolStats {
  total: number;
  idle: number;
  /** Requests waiting for a free connection. */
  waiting: number;
}

/** The SQLSTATE of a database error, when the error came from the database. */
export function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** SQLSTATEs after which the whole transaction may simply be run again. */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
/** Of those, the ones where PostgreSQL chose this transaction to lose to concurrent ones: no fault of the request. */
const LOST_TO_CONCURRENCY = new Set(['40001', '40P01']);

/**
 * Whether `error` says concurrent transactions were in the way: this one was a
 * deadlock victim or a serialization failure, directly or as the `unavailable`
 * that transactionWithRetry gives once its tries ran out.
 */
export function lostToConcurrency(error: unknown): boolean {
  const state = sqlState(error) ?? (error instanceof SynclineError && error.code === 'unavailable' ? sqlState(error.cause) : undefined);
  return state !== undefined && LOST_TO_CONCURRENCY.has(state);
}

/**
 * Runs a transaction, retrying a few times on serialization failures, deadlocks
 * and unique violations. A unique violation here means a concurrent transaction
 * inserted the same ledger row or mirror name first; the retry sees its result
 * (for example, answers "duplicate") instead of failing the device's request.
 * Tries are spaced by a short jittered pause: transactions that deadlocked once
 * would otherwise meet again in the same order. A request that still loses to
 * concurrent transactions is answered `unavailable` (503, retried by devices),
 * never as an internal error: nothing was wrong with it.
 */
export async function transactionWithRetry<T>(store: Store, fn: (tx: Queryable) => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.transaction(fn);
    } catch (error) {
      const state = sqlState(error);
      if (state === undefined || !RETRYABLE.has(state)) throw error;
      if (attempt >= attempts) {
        if (!LOST_TO_CONCURRENCY.has(state)) throw error;
        throw new SynclineError('unavailable', 'concurrent transactions kept this one from committing; retry shortly', { sqlstate: state, attempts: attempt }, { cause: error });
      }
      await sleep(backoffDelay(attempt, 10, 200));
    }
  }
}
