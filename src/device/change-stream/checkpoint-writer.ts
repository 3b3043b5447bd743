import type { Logger } from 'pino';
import type { AckTracker } from './change-stream-progress.js';
import { deleteBootstrapGuard, writeCheckpoint } from './checkpoint-store.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';

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
  readonly #db: SqliteDriver;
  readonly #name: string | undefined;
  readonly #acks: AckTracker;
  readonly #intervalMs: number;
  readonly #log: Logger;
  /** Writes one after another, so a later ack is never overwritten by an earlier one still in flight. */
  #chain: Promise<void> = Promise.resolve();

  constructor(db: SqliteDriver, name: string | undefined, acks: AckTracker, intervalMs: number, log: Logger) {
    this.#db = db;
    this.#name = name;
    this.#acks = acks;
    this.#intervalMs = intervalMs;
    this.#log = log;
  }

  /** `readPosition`/`settled`: how far the stream read, and whether nothing read waits undelivered. Rejects on errors other than a busy database. */
  flush(readPosition: number, settled: boolean, force = false): Promise<void> {
    if (!this.#name) return Promise.resolve();
    const name = this.#name;
    const write = this.#chain.then(async () => {
      const now = Date.now();
      const seq = this.#acks.due(this.#acks.target(readPosition, settled), now, this.#intervalMs, force);
      if (seq === undefined) return;
      try {
        await writeCheckpoint(this.#db, name, seq, now);
        this.#acks.persisted(seq, now);
      } catch (error) {
        if (!isBusy(error)) throw error;
        this.#log.debug({ err: error }, 'checkpoint write deferred: database busy');
      }
    });
    this.#chain = write.catch(() => undefined);
    return write;
  }

  /** The last write; a bootstrap that never completed drops its guard, so the next start bootstraps again. */
  async close(readPosition: number, settled: boolean): Promise<void> {
    if (!this.#name) return;
    try {
      await this.flush(readPosition, settled, true);
      if (this.#acks.acked === undefined) await deleteBootstrapGuard(this.#db, this.#name);
    } catch (error) {
      this.#log.warn({ err: error }, 'could not write the checkpoint on close; the consumer will see some events again');
    }
  }
}
