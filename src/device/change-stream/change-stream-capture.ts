import type { Logger } from 'pino';
import { readSchemaVersion, type CaptureReport } from '../capture/capture.js';
import { CaptureWatch } from '../capture/capture-watch.js';
import type { StreamSettings } from './change-stream-options.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { listUserTables } from '../capture/table-shape.js';

/**
 * Keeps capture installed for what a stream selects, so a stream works on a file no
 * agent has seen yet and keeps working when the app adds tables. Capture only ever
 * widens: it installs the selected tables (all tables without an allowlist) and
 * turns before-images on where the stream asks, never off, so streams and agents
 * on the same file do not undo each other.
 *
 * The allowlist is case-insensitive but capture needs the names as SQLite stores
 * them, so they are resolved again whenever the schema changes (a table the
 * allowlist names may be created later).
 */
export class StreamCapture {
  readonly #db: SqliteDriver;
  readonly #tables: StreamSettings['tables'];
  readonly #log: Logger;
  #watch: CaptureWatch | undefined;
  #resolved = '';
  #schemaVersion = -1;

  constructor(db: SqliteDriver, tables: StreamSettings['tables'], log: Logger) {
    this.#db = db;
    this.#tables = tables;
    this.#log = log;
  }

  /** Installs what is missing now; throws when the file cannot be captured at all. */
  async ensure(): Promise<void> {
    this.#watch = await this.#newWatch();
    this.#report(await this.#watch.ensure());
  }

  /** Cheap when nothing changed (a schema_version read or two); never throws, the next poll tries again. */
  async refresh(): Promise<void> {
    try {
      if (this.#tables !== undefined && (await readSchemaVersion(this.#db)) !== this.#schemaVersion) {
        const before = this.#resolved;
        const watch = await this.#newWatch();
        if (this.#resolved !== before || !this.#watch) {
          this.#watch = watch;
          this.#report(await watch.ensure());
          return;
        }
      }
      this.#report(await this.#watch?.refresh());
    } catch (error) {
      this.#log.warn({ err: error }, 'capture refresh failed; retrying on the next poll');
    }
  }

  /** A watch over the allowlist as it resolves against the tables that exist now. */
  async #newWatch(): Promise<CaptureWatch> {
    if (this.#tables === undefined) return new CaptureWatch(this.#db, { logger: this.#log });
    const tables = this.#tables;
    this.#schemaVersion = await readSchemaVersion(this.#db);
    const names = (await listUserTables(this.#db)).filter((name) => tables.has(name.toLowerCase()));
    const withBefore = names.filter((name) => tables.get(name.toLowerCase()) === true);
    this.#resolved = JSON.stringify([names, withBefore]);
    return new CaptureWatch(this.#db, { tables: names, addBeforeImages: withBefore, logger: this.#log });
  }

  #report(report: CaptureReport | undefined): void {
    if (!report) return;
    if (report.installed.length + report.regenerated.length > 0) this.#log.info({ installed: report.installed, regenerated: report.regenerated }, 'capture updated for the change stream');
    if (report.failed.length > 0) this.#log.warn({ failed: report.failed.map((f) => ({ table: f.table, error: f.error.message })) }, 'some selected tables cannot be captured');
  }
}
