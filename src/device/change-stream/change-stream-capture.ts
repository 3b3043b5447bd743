import type { Logger } from 'pino';
import { readSchemaVersion, type CaptureReport } from '../capture/capture.js';
import { CaptureWatch } from '../capture/capture-watch.js';
import type { StreamSettings } from './change-stream-options.js';
import type { DeviceDb } from '../journal/device-db.js';
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
  readonly #db: DeviceDb;
  readonly #tables: StreamSettings['tables'];
  readonly #log: Logger;
  #watch: CaptureWatch | undefined;
  #resolved = '';
  #schemaVersion = -1;

  constructor(db: DeviceDb, tables: StreamSettings['tables'], log: Logger) {
    this.#db = db;
    this.#tables = tables;
    this.#log = log;
  }

  /** Installs what is missing now; throws when the file cannot be captured at all. */
  ensure(): void {
    this.#watch = this.#newWatch();
    this.#report(this.#watch.ensure());
  }

  /** Cheap when nothing changed (a schema_version read or two); never throws, the next poll tries again. */
  refresh(): void {
    try {
      if (this.#tables !== undefined && readSchemaVersion(this.#db) !== this.#schemaVersion) {
        const before = this.#resolved;
        const watch = this.#newWatch();
        if (this.#resolved !== before || !this.#watch) {
          this.#watch = watch;
          this.#report(watch.ensure());
          return;
        }
      }
      this.#report(this.#watch?.refresh());
    } catch (error) {
      this.#log.warn({ err: error }, 'capture refresh failed; retrying on the next poll');
    }
  }

  /** A watch over the allowlist as it resolves against the tables that exist now. */
  #newWatch(): CaptureWatch {
    if (this.#tables === undefined) return new CaptureWatch(this.#db, { logger: this.#log });
    const tables = this.#tables;
    this.#schemaVersion = readSchemaVersion(this.#db);
    const names = listUserTables(this.#db).filter((name) => tables.has(name.toLowerCase()));
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
