import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { SynclineError } from '../../protocol/errors.js';
import { RESERVED_PREFIX } from '../../protocol/constants.js';
import { encodeValue, type SqlValue } from '../../protocol/values.js';
import { isGuardTriggerName } from '../twoway/shared-triggers.js';
import { ensureCursor } from '../journal/cursors.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalTables } from '../journal/journal-schema.js';
import { JournalReader } from '../journal/journal-reader.js';
import { slotLayout, slotsNeeded } from '../journal/journal-slots.js';
import { ensureJournalSlots, maxJournalSeq } from '../journal/journal-state.js';
import { quoteIdent } from './sql-text.js';
import { keyColumnsOf, readTableShape, type TableShape } from './table-shape.js';
import { createTriggerStatements, dropTriggerStatements, isOwnTriggerOf, rowAtKeyStatement, snapshotStatement, TRIGGER_KINDS, triggerName, type CaptureSpec } from './trigger-sql.js';

/**
 * Capture of one table, step by step. Every function here runs inside the caller's
 * BEGIN IMMEDIATE transaction, so the app's writes land either before (seen by the
 * snapshot) or after (seen by the new triggers), never in between and never twice.
 */

/** A captured table as `_syncline_tables` and its current `_syncline_schemas` row record it. */
export interface StoredTable {
  name: string;
  schemaId: number;
  hash: string;
  columns: ColumnInfo[];
  key: TableKey;
  beforeImages: boolean;
}

export type TableAction = 'none' | 'install' | 'regenerate' | 'release';

export async function readStoredTables(db: SqliteQueryable, only?: string): Promise<Map<string, StoredTable>> {
  const rows = await db.all<{ name: string; schema_id: bigint; before_images: bigint; hash: string; columns: string; key: string }>(
    `SELECT t.name, t.schema_id, t.before_images, s.hash, s.columns, s.key FROM ${JournalTables.tables} t
     JOIN ${JournalTables.schemas} s ON s.id = t.schema_id ${only === undefined ? '' : 'WHERE t.name = ?'}`,
    only === undefined ? [] : [only],
  );
  return new Map(
    rows.map((r) => [
      r.name,
      {
        name: r.name,
        schemaId: Number(r.schema_id),
        hash: r.hash,
        columns: JSON.parse(r.columns) as ColumnInfo[],
        key: JSON.parse(r.key) as TableKey,
        beforeImages: r.before_images !== 0n,
      },
    ]),
  );
}

/** Edge capture's triggers in the file (two-way sync's are its own business): name and the table SQLite attaches each to. */
export async function readOwnTriggers(db: SqliteQueryable): Promise<{ name: string; table: string }[]> {
  const rows = await db.all<{ name: string; tbl_name: string }>("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'");
  return rows.filter((r) => r.name.startsWith(RESERVED_PREFIX) && !isGuardTriggerName(r.name)).map((r) => ({ name: r.name, table: r.tbl_name }));
}

/** All three triggers exist and sit on the table they are named for (a renamed table takes its triggers along). */
export function triggersIntact(triggers: readonly { name: string; table: string }[], table: string): boolean {
  return TRIGGER_KINDS.every((kind) => triggers.some((t) => t.name === triggerName(table, kind) && t.table === table));
}

/** Triggers named for another table than the one they sit on: they would journal rows under the wrong name. */
export function strayTriggers(triggers: readonly { name: string; table: string }[]): string[] {
  return triggers.filter((t) => !isOwnTriggerOf(t.name, t.table)).map((t) => t.name);
}

export function decideAction(stored: StoredTable | undefined, shape: TableShape | undefined, intact: boolean, beforeImages: boolean): TableAction {
  if (!shape) return stored || intact ? 'release' : 'none';
  if (!stored || !intact) return 'install';
  if (shape.hash !== stored.hash || stored.beforeImages !== beforeImages) return 'regenerate';
  return 'none';
}

interface SchemaRecord {
  id: number;
  columns: ColumnInfo[];
}

/**
 * The schema record for the table's current shape. The fingerprint leaves out
 * column order and declared type text, so a record with the same hash already
 * describes the same columns; reusing it (and its column order for the row)
 * keeps one record per (table, hash) as the layout requires.
 */
async function schemaRecord(tx: SqliteQueryable, shape: TableShape): Promise<SchemaRecord> {
  const S = JournalTables.schemas;
  const found = await tx.get<{ id: bigint; columns: string }>(`SELECT id, columns FROM ${S} WHERE tbl = ? AND hash = ?`, [shape.name, shape.hash]);
  if (found) return { id: Number(found.id), columns: JSON.parse(found.columns) as ColumnInfo[] };
  const info = await tx.run(`INSERT INTO ${S} (tbl, hash, columns, key, created_at) VALUES (?, ?, ?, ?, ?)`, [
    shape.name,
    shape.hash,
    JSON.stringify(shape.columns),
    JSON.stringify(shape.key),
    new Date().toISOString(),
  ]);
  return { id: Number(info.lastInsertRowid), columns: shape.columns };
}

function captureSpec(shape: TableShape, schema: SchemaRecord, beforeImages: boolean): CaptureSpec {
  const keyColumns = keyColumnsOf(shape);
  if (!keyColumns) {
    throw new SynclineError('capture_failed', `table has no primary key and its columns hide every rowid alias (rowid, _rowid_, oid)`, { table: shape.name });
  }
  return { table: shape.name, columns: schema.columns.map((c) => c.name), key: shape.key, keyColumns, schemaId: schema.id, beforeImages };
}

async function writeTriggers(tx: SqliteQueryable, spec: CaptureSpec): Promise<void> {
  await ensureJournalSlots(tx, slotsNeeded(slotLayout(spec.columns, spec.key), spec.beforeImages), spec.table);
  for (const sql of dropTriggerStatements(spec.table)) await tx.exec(sql);
  for (const sql of createTriggerStatements(spec)) await tx.exec(sql);
}

async function recordTable(tx: SqliteQueryable, shape: TableShape, schemaId: number, beforeImages: boolean): Promise<void> {
  await tx.run(
    `INSERT INTO ${JournalTables.tables} (name, schema_id, before_images, without_rowid, installed_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET schema_id = excluded.schema_id, before_images = excluded.before_images, without_rowid = excluded.without_rowid`,
    [shape.name, schemaId, beforeImages, shape.withoutRowid, new Date().toISOString()],
  );
}

/** First capture (or capture after the triggers vanished): triggers plus a snapshot of every existing row. Returns the snapshot size. */
export async function installTable(tx: SqliteQueryable, shape: TableShape, beforeImages: boolean, epoch: string): Promise<number> {
  const schema = await schemaRecord(tx, shape);
  const spec = captureSpec(shape, schema, beforeImages);
  await writeTriggers(tx, spec);
  await ensureCursor(tx, shape.name, await maxJournalSeq(tx), epoch);
  const snapshot = (await tx.run(snapshotStatement(spec))).changes;
  await recordTable(tx, shape, schema.id, beforeImages);
  return snapshot;
}

/**
 * `ALTER TABLE ... ADD COLUMN ... DEFAULT x` gives every existing row the value x
 * without firing a trigger: to the journal's readers that is an update of every
 * row, so the table is snapshotted again (once per such ALTER).
 */
function addedDefaultedColumns(before: readonly ColumnInfo[], after: readonly ColumnInfo[]): boolean {
  const known = new Set(before.map((c) => c.name));
  return after.some((c) => !known.has(c.name) && c.has_default);
}

/**
 * The shape changed under live triggers (ALTER TABLE) or the before-image option
 * changed. Rows written between the ALTER and now were journaled by the old
 * triggers without the new columns, so every key with unacked entries under an
 * older schema gets a fresh 'U' entry with its current row. Returns how many.
 */
export async function regenerateTable(tx: SqliteQueryable, shape: TableShape, stored: StoredTable, beforeImages: boolean, ackedSeq: number): Promise<number> {
  const schema = await schemaRecord(tx, shape);
  const spec = captureSpec(shape, schema, beforeImages);
  await writeTriggers(tx, spec);
  await recordTable(tx, shape, schema.id, beforeImages);
  if (schema.id === stored.schemaId) return 0;
  if (addedDefaultedColumns(stored.columns, schema.columns)) return (await tx.run(snapshotStatement(spec))).changes;
  const keys = new Map<string, SqlValue[]>();
  for (const entry of await new JournalReader(tx).readOtherSchemas(shape.name, ackedSeq, schema.id)) keys.set(JSON.stringify(entry.pk.map(encodeValue)), entry.pk);
  const refresh = rowAtKeyStatement(spec);
  let appended = 0;
  for (const pk of keys.values()) {
    // A key of another width cannot be looked up; such a key change means the table was rebuilt, which reinstalls instead.
    if (pk.length === spec.keyColumns.length) appended += (await tx.run(refresh, pk)).changes;
  }
  return appended;
}

/**
 * Writes the table's triggers again for the schema already recorded, without a
 * snapshot: for when the journal changed under unchanged tables (a layout upgrade).
 * Returns false when the table no longer matches its record; capture then installs
 * it afresh.
 */
export async function rewriteTriggers(tx: SqliteQueryable, stored: StoredTable): Promise<boolean> {
  const shape = await readTableShape(tx, stored.name);
  if (!shape || shape.hash !== stored.hash) return false;
  await writeTriggers(tx, captureSpec(shape, { id: stored.schemaId, columns: stored.columns }, stored.beforeImages));
  return true;
}

/** The table is gone: its triggers and bookkeeping go, its journal entries stay until published. */
export async function releaseTable(tx: SqliteQueryable, name: string): Promise<void> {
  for (const sql of dropTriggerStatements(name)) await tx.exec(sql);
  await forgetTable(tx, name);
}

/** Edge capture's record of the table goes; its triggers stay (two-way sync took the table over). */
export async function forgetTable(tx: SqliteQueryable, name: string): Promise<void> {
  await tx.run(`DELETE FROM ${JournalTables.tables} WHERE name = ?`, [name]);
}

export async function dropTrigger(tx: SqliteQueryable, name: string): Promise<void> {
  await tx.exec(`DROP TRIGGER IF EXISTS ${quoteIdent(name)}`);
}
