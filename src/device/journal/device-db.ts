import Database from 'better-sqlite3';
import { SynclineError } from '../../protocol/errors.js';

export type DeviceDb = Database.Database;

export interface OpenDeviceDbOptions {
  /** How long a statement waits for the app's write lock before failing (ms). */
  busyTimeoutMs?: number;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens an existing SQLite file that an app writes from its own process. WAL lets
 * the agent read while the app writes; the busy timeout lets the agent's short
 * write transactions queue behind the app's instead of failing; safe integers make
 * every INTEGER a bigint, so 64-bit values are never rounded through a double.
 */
export function openDeviceDb(path: string, options: OpenDeviceDbOptions = {}): DeviceDb {
  let db: DeviceDb;
  try {
    db = new Database(path, { fileMustExist: true, timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
  } catch (error) {
    throw new SynclineError('capture_failed', `cannot open ${path}: ${(error as Error).message}`, { db: path }, { cause: error });
  }
  try {
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS)}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new SynclineError('capture_failed', `${path} could not be switched to WAL mode (it is in ${String(mode)} mode)`, { db: path });
    }
    db.defaultSafeIntegers(true);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof SynclineError) throw error;
    throw new SynclineError('capture_failed', `cannot use ${path}: ${(error as Error).message}`, { db: path }, { cause: error });
  }
}

/** Runs `fn` in a BEGIN IMMEDIATE transaction: the write lock is taken up front, so reads inside it see the state the writes act on. */
export function immediate<T>(db: DeviceDb, fn: () => T): T {
  return db.transaction(fn).immediate();
}
