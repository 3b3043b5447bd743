import type { Logger } from 'pino';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { SynclineError } from '../../protocol/errors.js';
import { sqlState } from './store.js';

/**
 * SQLSTATEs that say the connection (not the statement) failed: class 08
 * (connection exception), the server terminating or restarting the backend
 * (`pg_terminate_backend`, a failover, a restart), and too many connections.
 */
const CONNECTION_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
/** Socket errors of a lost or unreachable server. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
/** node-pg reports a dropped socket, a client it already saw fail, and a connect timeout with these messages and no code. */
const PG_CONNECTION_MESSAGES = /Connection terminated|not queryable|timeout exceeded when trying to connect/i;

/** Whether `error` means the connection to the database was lost or could not be made (so the work may be run again elsewhere). */
export function isConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const state = sqlState(error);
  if (state !== undefined) return state.startsWith('08') || CONNECTION_STATES.has(state);
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && PG_CONNECTION_MESSAGES.test(message);
}

export interface ConnectionRetryOptions {
  /** Tries in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/**
 * About 10 s of retries at most (waits of base + jitter, doubling up to 2 s): long
 * enough to ride out a terminated backend, a pooler dropping idle connections or a
 * fast failover, short enough that the device's own request is answered (503) and
 * retried by the device rather than held open.
 */
export const DEFAULT_CONNECTION_RETRY: ConnectionRetryOptions = { attempts: 8, baseMs: 100, maxMs: 2000 };

/**
 * Runs `work` again on a fresh connection when the connection failed under it.
 * Only connection-class errors are retried; everything Syncline runs in one
 * transaction is idempotent by design (batches dedupe on their batch id, bundles
 * on theirs, replays and flow control re-decide under their locks), so running it
 * again after an ambiguous COMMIT is safe. When the tries run out the error becomes
 * `unavailable` (503), which devices retry.
 */
export async function withConnectionRetry<T>(work: () => Promise<T>, options: ConnectionRetryOptions, logger?: Logger): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      const reason = (error as Error).message;
      if (attempt >= options.attempts) {
        throw new SynclineError('unavailable', `the database is unreachable: ${reason}`, { attempts: attempt }, { cause: error });
      }
      const wait = options.baseMs + backoffDelay(attempt - 1, options.baseMs, options.maxMs);
      logger?.warn({ attempt, wait_ms: wait, reason }, 'database connection lost; retrying on a fresh connection');
      await sleep(wait);
    }
  }
}
