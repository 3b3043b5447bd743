import pino, { type Logger } from 'pino';
import { isSynclineError } from '../../protocol/errors.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { journalBehindCursors } from '../journal/journal-state.js';
import { ensureCapture, readSchemaVersion, rotateEpoch, type CaptureOptions, type CaptureReport } from './capture.js';

const RETRY_AFTER_MS = 5000;

/**
 * Capture for a long-running process (the agent, a change stream): installs it
 * once, then on every loop compares `PRAGMA schema_version` (one read of the
 * file header) and reconciles only when the app changed the schema.
 */
export class CaptureWatch {
  readonly #db: SqliteDriver;
  readonly #options: CaptureOptions;
  readonly #log: Logger;
  #schemaVersion: number | undefined;
  #epoch = '';
  #retryAt = 0;

  constructor(db: SqliteDriver, options: CaptureOptions = {}) {
    this.#db = db;
    this.#log = options.logger ?? pino({ level: 'silent' });
    this.#options = { ...options, logger: this.#log };
  }

  get epoch(): string {
    return this.#epoch;
  }

  /**
   * Full reconcile. A table that cannot be captured as it is (capture_failed) is
   * tried again when the schema changes; other failures (the app holding the
   * write lock past the busy timeout) are retried after a pause.
   */
  async ensure(): Promise<CaptureReport> {
    const report = await ensureCapture(this.#db, this.#options);
    this.#epoch = report.epoch;
    const transient = report.failed.some((f) => !(isSynclineError(f.error) && f.error.code === 'capture_failed'));
    this.#schemaVersion = transient ? undefined : report.schemaVersion;
    this.#retryAt = transient ? Date.now() + RETRY_AFTER_MS : 0;
    return report;
  }

  /**
   * Reconciles when the schema changed since the last reconcile, or when the journal
   * was emptied behind our back (its seqs would restart below the acked cursors);
   * returns the report, or undefined when nothing was due.
   */
  async refresh(): Promise<CaptureReport | undefined> {
    if (this.#schemaVersion === undefined && Date.now() < this.#retryAt) return undefined;
    const unchanged = this.#schemaVersion !== undefined && (await readSchemaVersion(this.#db)) === this.#schemaVersion;
    if (unchanged && !(await journalBehindCursors(this.#db))) return undefined;
    return this.ensure();
  }

  async rotateEpoch(reason: string): Promise<string> {
    this.#log.warn({ reason, previous_epoch: this.#epoch }, 'rotating journal epoch');
    this.#epoch = await rotateEpoch(this.#db, this.#options);
    this.#schemaVersion = undefined;
    return this.#epoch;
  }
}
