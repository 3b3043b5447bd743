import type { Logger } from 'pino';
import type { AckTracker } from './change-stream-progress.js';
import { deleteBootstrapGuard, writeCheckpoint } from './checkpoint-store.js';
import type { DeviceDb } from '../journal/device-db.js';

export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/**
 * Writes a named stream's progress to `_syncline_checkpoints`, at most once per
 * interval so a fast consumer does not pay a write transaction per event. A write
 * that meets a busy database is left for the next poll: the ack stays in memory.
 */
export class CheckpointWriter {
  readonly #db: DeviceDb;
  readonly #name: string | undefined;
  readonly #acks: AckTracker;
  readonly #intervalMs: number;
  readonly #log: Logger;

  constructor(db: DeviceDb, name: string | undefined, acks: AckTracker, intervalMs: number, log: Logger) {
    this.#db = db;
    this.#name = name;
    this.#acks = acks;
    this.#intervalMs = intervalMs;
    this.#log = log;
  }

  /** `readPosition`/`settled`: how far the stream read, and whether nothing read waits undelivered. */
  flush(readPosition: number, settled: boolean, force = false): void {
    // Inside the app's transaction (a shared connection) the write would commit or roll back with it.
    if (!this.#name || (this.#db.inTransaction && !force)) return;
    const now = Date.now();
    const seq = this.#acks.due(this.#acks.target(readPosition, settled), now, this.#intervalMs, force);
    if (seq === undefined) return;
    try {
      writeCheckpoint(this.#db, this.#name, seq, now);
      this.#acks.persisted(seq, now);
    } catch (error) {
      if (!isBusy(error)) throw error;
      this.#log.debug({ err: error }, 'checkpoint write deferred: database busy');
    }
  }

  /** The last write; a bootstrap that never completed drops its guard, so the next start bootstraps again. */
  close(readPosition: number, settled: boolean): void {
    if (!this.#name || !this.#db.open) return;
    try {
      this.flush(readPosition, settled, true);
      if (this.#acks.acked === undefined) deleteBootstrapGuard(this.#db, this.#name);
    } catch (error) {
      this.#log.warn({ err: error }, 'could not write the checkpoint on close; the consumer will see some events again');
    }
  }
}
