import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { SharedTable } from '../../protocol/shared-sync.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { createTriggerStatements, dropTriggerStatements, snapshotStatement, type CaptureSpec } from '../capture/trigger-sql.js';
import { isLayout2Journal, layout2RebuildStatements } from '../journal/journal-rebuild.js';
import { JOURNAL_DDL, JOURNAL_LAYOUT_VERSION, JournalOrigins, JournalTables, StateKeys, TWO_WAY_HASH_PREFIX, type JournalOrigin } from '../journal/journal-schema.js';
import { slotLayout, slotsNeeded, type SlotLayout } from '../journal/journal-slots.js';
import { ensureJournalSlots, journalColumns, maxJournalSeq, readState, writeState } from '../journal/journal-state.js';
import { lowestHonouredCheckpoint } from '../change-stream/checkpoint-retention.js';
import { declaredColumns } from './local-table.js';

/**
 * Two-way tables in the one journal, through the async driver (so it runs in a
 * browser too): the journal's tables, each declared table's schema record and its
 * capture triggers (edge capture's own SQL, with before-images, which give a
 * pending change its base row, and the write time its conflicts are decided by),
 * and pruning of what no reader needs any more.
 */

export async function deleteState(db: SqliteQueryable, key: string): Promise<void> {
  await db.run(`DELETE FROM ${JournalTables.state} WHERE key = ?`, [key]);
}

/** The journal's newest seq (0 when empty), as the bigint two-way sync's cursors are kept in. */
export async function newestSeq(db: SqliteQueryable): Promise<bigint> {
  return BigInt(await maxJournalSeq(db));
}

/**
 * Creates the journal's tables where missing, converting a layout-2 journal on the
 * way (journal-rebuild.ts), and gives a journal no agent started its epoch. Run in
 * the caller's write transaction.
 */
export async function ensureJournalTables(tx: SqliteQueryable): Promise<void> {
  const columns = await journalColumns(tx);
  if (isLayout2Journal(columns)) for (const sql of layout2RebuildStatements(columns)) await tx.exec(sql);
  else if (columns.includes('pk')) {
    throw new SynclineError('capture_failed', 'the file holds a journal of layout 1; run the edge agent once to convert it, then open two-way sync again', {});
  }
  await tx.exec(JOURNAL_DDL);
  const layout = await readState(tx, StateKeys.layoutVersion);
  if (layout !== undefined && Number(layout) > JOURNAL_LAYOUT_VERSION) {
    throw new SynclineError('capture_failed', `the file was set up by a newer Syncline (journal layout ${layout}, this device knows ${JOURNAL_LAYOUT_VERSION})`, {});
  }
  if (layout !== String(JOURNAL_LAYOUT_VERSION)) await writeState(tx, StateKeys.layoutVersion, String(JOURNAL_LAYOUT_VERSION));
  if ((await readState(tx, StateKeys.journalEpoch)) === undefined) await writeState(tx, StateKeys.journalEpoch, uuidv7());
}

/** A declared table's capture: the spec its triggers are written from and the slot layout of its entries. */
export interface TwoWayCapture {
  spec: CaptureSpec;
  layout: SlotLayout;
}

/** The schema record for a declaration (one per table and declared shape), created when missing. */
async function schemaId(tx: SqliteQueryable, table: SharedTable): Promise<number> {
  const columns = declaredColumns(table);
  const key = { kind: 'primary_key' as const, columns: [...table.key] };
  // Not the edge fingerprint: the record describes the declaration (its column order is the row's), not the local table.
  const hash = `${TWO_WAY_HASH_PREFIX}${JSON.stringify([columns, key])}`;
  const S = JournalTables.schemas;
  await tx.run(`INSERT INTO ${S} (tbl, hash, columns, key, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tbl, hash) DO NOTHING`, [
    table.name,
    hash,
    JSON.stringify(columns),
    JSON.stringify(key),
    new Date().toISOString(),
  ]);
  const row = await tx.get<{ id: bigint }>(`SELECT id FROM ${S} WHERE tbl = ? AND hash = ?`, [table.name, hash]);
  return Number(row!.id);
}

export async function twoWayCapture(tx: SqliteQueryable, table: SharedTable): Promise<TwoWayCapture> {
  const columns = table.columns.map((c) => c.name);
  const key = { kind: 'primary_key' as const, columns: [...table.key] };
  const spec: CaptureSpec = { table: table.name, columns, key, keyColumns: table.key, schemaId: await schemaId(tx, table), beforeImages: true, writeTime: true };
  return { spec, layout: slotLayout(columns, key) };
}

/** Writes the table's capture triggers (replacing any); a snapshot of its rows follows when asked, as the app's ('L') or as remote ('R'). */
export async function installCapture(tx: SqliteQueryable, capture: TwoWayCapture, snapshot?: JournalOrigin): Promise<void> {
  await ensureJournalSlots(tx, slotsNeeded(capture.layout, true), capture.spec.table);
  await dropCapture(tx, capture.spec.table);
  for (const sql of createTriggerStatements(capture.spec)) await tx.exec(sql);
  if (snapshot) await tx.exec(snapshotStatement(capture.spec, snapshot));
}

export async function dropCapture(tx: SqliteQueryable, table: string): Promise<void> {
  for (const sql of dropTriggerStatements(table)) await tx.exec(sql);
}

/** Journal entries written from `afterSeq` on (in the caller's transaction, so all its own) become remote. */
export async function markRemote(tx: SqliteQueryable, afterSeq: bigint): Promise<void> {
  await tx.run(`UPDATE ${JournalTables.journal} SET origin = '${JournalOrigins.remote}' WHERE seq > ? AND origin <> '${JournalOrigins.remote}'`, [afterSeq]);
}

/**
 * Deletes two-way tables' journal entries no reader needs: remote ones and the
 * app's at or below the push cursor (pushed or frozen into the outbox). Kept: the
 * newest entry of the journal (seqs must never go back) and everything above the
 * lowest change-stream checkpoint still within its retention (checkpoint-retention.ts).
 */
export async function pruneTwoWay(tx: SqliteQueryable, tables: readonly string[], pushed: bigint, now = Date.now()): Promise<void> {
  if (tables.length === 0) return;
  const newest = await maxJournalSeq(tx);
  const held = await lowestHonouredCheckpoint(tx, newest, now);
  const bound = BigInt(Math.min(newest - 1, held ?? newest));
  await tx.run(
    `DELETE FROM ${JournalTables.journal} WHERE seq <= ? AND (seq <= ? OR origin = '${JournalOrigins.remote}')
     AND schema_id IN (SELECT id FROM ${JournalTables.schemas} WHERE tbl IN (SELECT value FROM json_each(?)))`,
    [bound, pushed, JSON.stringify(tables)],
  );
}
