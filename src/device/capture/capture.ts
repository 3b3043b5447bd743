import pino, { type Logger } from 'pino';
import { readCursors } from '../journal/cursors.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { ensureJournal, startNewEpoch } from '../journal/journal-state.js';
import { upgradeJournalLayout } from '../journal/journal-upgrade.js';
import {
  decideAction,
  dropTrigger,
  forgetTable,
  installTable,
  readOwnTriggers,
  readStoredTables,
  regenerateTable,
  releaseTable,
  strayTriggers,
  triggersIntact,
  type StoredTable,
} from './capture-table.js';
import { sharedTableNames } from '../twoway/shared-state.js';
import { isUserTableName, listUserTables, readTableShape } from './table-shape.js';

/**
 * Keeps capture installed on a SQLite file that an app changes under us: new
 * tables, ALTER TABLE, rebuilt or dropped tables, a lost journal. Each table is
 * handled in its own BEGIN IMMEDIATE transaction so the app waits at most for one
 * table's snapshot, never for the whole file.
 *
 * Known limit of trigger capture: SQLite refuses `ALTER TABLE ... DROP COLUMN` on a
 * captured table while a trigger names the column; the app must rebuild the table
 * instead (which capture then picks up with a fresh snapshot).
 */

export interface CaptureOptions {
  /** Capture these tables (at least). Without it every user table is captured, including ones created later. */
  tables?: readonly string[];
  /**
   * Tables whose updates and deletes also journal the old row. Without it the
   * flags already recorded in the file stay as they are (new tables: off).
   */
  beforeImages?: readonly string[];
  /**
   * Tables that get before-images in addition to the above, leaving every other
   * table's flag alone: how a change-stream subscriber opts in without turning off
   * what another process asked for (two authoritative lists would flip each other).
   */
  addBeforeImages?: readonly string[];
  /** Never captured (telemetry tables, read by a cursor); a table captured before has its triggers dropped. */
  exclude?: readonly string[];
  logger?: Logger;
}

export interface CaptureReport {
  epoch: string;
  journalRecreated: boolean;
  installed: string[];
  regenerated: string[];
  released: string[];
  failed: { table: string; error: Error }[];
}

function emptyReport(epoch: string, journalRecreated: boolean): CaptureReport {
  return { epoch, journalRecreated, installed: [], regenerated: [], released: [], failed: [] };
}

function wantsBeforeImages(options: CaptureOptions, table: string, stored: StoredTable | undefined): boolean {
  const listed = options.beforeImages ? options.beforeImages.includes(table) : (stored?.beforeImages ?? false);
  return listed || (options.addBeforeImages?.includes(table) ?? false);
}

/** Brings one table's capture up to date; the decision is made again under the write lock. */
async function reconcileTable(driver: SqliteDriver, table: string, options: CaptureOptions, epoch: string, report: CaptureReport, log: Logger): Promise<void> {
  const quick = async (db: SqliteQueryable) => {
    const stored = (await readStoredTables(db, table)).get(table);
    const shape = await readTableShape(db, table);
    const intact = triggersIntact(await readOwnTriggers(db), table);
    return { stored, shape, intact, action: decideAction(stored, shape, intact, wantsBeforeImages(options, table, stored)) };
  };
  if ((await quick(driver)).action === 'none') return;
  // Triggers and snapshot in one BEGIN IMMEDIATE: each app write lands before it (in the snapshot) or after it (journaled by the triggers).
  await driver.writeTransaction(async (tx) => {
    const { stored, shape, intact, action } = await quick(tx);
    const beforeImages = wantsBeforeImages(options, table, stored);
    if (action === 'install' && shape) {
      const rows = await installTable(tx, shape, beforeImages, epoch);
      report.installed.push(table);
      log.info({ table, snapshot_rows: rows, triggers_were_missing: stored !== undefined && !intact }, 'capture installed');
    } else if (action === 'regenerate' && shape && stored) {
      const acked = (await readCursors(tx, epoch)).get(table) ?? 0;
      const refreshed = await regenerateTable(tx, shape, stored, beforeImages, acked);
      report.regenerated.push(table);
      log.info({ table, schema_hash: shape.hash, refreshed_rows: refreshed }, 'capture triggers regenerated');
    } else if (action === 'release') {
      await releaseTable(tx, table);
      report.released.push(table);
      log.info({ table }, 'table is gone; capture released, its journal entries stay until published');
    }
  });
}

/** One pass over the file; call again until it reports no change (the app may change the schema meanwhile). */
export async function reconcileCapture(driver: SqliteDriver, options: CaptureOptions = {}): Promise<CaptureReport> {
  const log = options.logger ?? pino({ level: 'silent' });
  await upgradeJournalLayout(driver, log);
  const journal = await ensureJournal(driver);
  if (journal.recreated) log.warn({ journal_epoch: journal.epoch }, 'journal was recreated or truncated; started a new epoch and snapshotting every table again');
  const report = emptyReport(journal.epoch, journal.recreated);
  const stray = strayTriggers(await readOwnTriggers(driver));
  if (stray.length > 0) {
    await driver.writeTransaction(async (tx) => {
      for (const name of stray) await dropTrigger(tx, name);
    });
    log.info({ triggers: stray }, 'dropped capture triggers left on a renamed table');
  }
  const shared = await sharedTableNames(driver);
  const excluded = new Set(options.exclude ?? []);
  const wanted = new Set((options.tables ? options.tables.filter(isUserTableName) : await listUserTables(driver)).filter((name) => !shared.has(name) && !excluded.has(name)));
  const stored = [...(await readStoredTables(driver)).keys()];
  for (const table of stored.filter((name) => excluded.has(name))) {
    await driver.writeTransaction((tx) => releaseTable(tx, table));
    report.released.push(table);
    log.warn({ table }, 'table switched to telemetry: capture triggers dropped; its journal entries still ship as rows, and from now on its updates and deletes are not shipped');
  }
  for (const table of stored.filter((name) => shared.has(name))) {
    // Two-way sync now captures it, with triggers of the same names: only edge capture's record goes.
    await forgetTable(driver, table);
    report.released.push(table);
    log.info({ table }, 'table is shared by two-way sync now, which captures it; edge capture leaves it');
  }
  const tables = new Set([...stored.filter((name) => !excluded.has(name) && !shared.has(name)), ...wanted]);
  for (const table of [...tables].sort()) {
    try {
      await reconcileTable(driver, table, options, journal.epoch, report, log);
    } catch (error) {
      report.failed.push({ table, error: error as Error });
      log.error({ table, err: error }, 'capture of table failed; will retry');
    }
  }
  return report;
}

/** Reconciles until a pass changes nothing, so the schema version read before that pass describes what is captured. */
export async function ensureCapture(driver: SqliteDriver, options: CaptureOptions = {}): Promise<CaptureReport & { schemaVersion: number }> {
  const total = emptyReport('', false);
  for (let pass = 0; ; pass++) {
    const schemaVersion = await readSchemaVersion(driver);
    const report = await reconcileCapture(driver, options);
    total.epoch = report.epoch;
    total.journalRecreated ||= report.journalRecreated;
    total.installed.push(...report.installed);
    total.regenerated.push(...report.regenerated);
    total.released.push(...report.released);
    const changed = report.installed.length + report.regenerated.length + report.released.length > 0;
    if (!changed || pass >= 5) {
      total.failed = report.failed;
      return { ...total, schemaVersion };
    }
  }
}

export async function readSchemaVersion(db: SqliteQueryable): Promise<number> {
  const row = await db.get<{ schema_version: bigint }>('PRAGMA schema_version');
  return Number(row!.schema_version);
}

/**
 * Starts a new journal epoch and appends a snapshot of every captured table, all in
 * one transaction, so the new epoch on its own describes the whole current state.
 */
export async function rotateEpoch(driver: SqliteDriver, options: CaptureOptions = {}): Promise<string> {
  const log = options.logger ?? pino({ level: 'silent' });
  return driver.writeTransaction(async (tx) => {
    const epoch = await startNewEpoch(tx);
    for (const stored of (await readStoredTables(tx)).values()) {
      const shape = await readTableShape(tx, stored.name);
      if (!shape) {
        await releaseTable(tx, stored.name);
        continue;
      }
      await installTable(tx, shape, wantsBeforeImages(options, stored.name, stored), epoch);
    }
    log.warn({ journal_epoch: epoch }, 'started a new journal epoch with a fresh snapshot of every table');
    return epoch;
  });
}
