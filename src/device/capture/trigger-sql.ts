import { RESERVED_PREFIX } from '../../protocol/constants.js';
import type { TableKey } from '../../protocol/schema.js';
import { BEFORE_IMAGE_MARK, JournalOps, JournalOrigins, JournalTables, type JournalOrigin } from '../journal/journal-schema.js';
import { keySlots, rowSlots, slotLayout, slotName, type SlotLayout } from '../journal/journal-slots.js';
import { quoteIdent } from './sql-text.js';

/**
 * The SQL that captures one table: three AFTER triggers that append to the
 * journal, the snapshot that seeds it, and the re-read of single rows after a
 * schema change. Pure string building, so it is tested without a database.
 *
 * The triggers run inside the app's own transactions, in whatever SQLite build the
 * app links, so they use nothing newer than INSERT ... SELECT and IS NOT. They do no
 * lookups and render nothing: the schema id is a literal and the values are copied
 * into the journal's untyped slots as they are (journal-slots.ts), because capture
 * cost is paid on every write the app makes.
 *
 * One limit of triggers: when `INSERT OR REPLACE` removes a *different* row that
 * clashes on a UNIQUE constraint, SQLite fires no delete trigger for it unless the
 * app's connection enables recursive_triggers, so that removal is not journaled.
 */

export interface CaptureSpec {
  table: string;
  /** Captured columns in the order of the schema record; the journal's row follows it. */
  columns: readonly string[];
  key: TableKey;
  /** Key columns in key order, or the rowid alias (`rowid`, `_rowid_` or `oid`) for a rowid key. */
  keyColumns: readonly string[];
  schemaId: number;
  beforeImages: boolean;
  /**
   * Two-way tables: each entry also records when it was written (the `ms` column),
   * which their conflicts are decided by. Edge tables leave it out, so their
   * capture reads no clock.
   */
  writeTime?: boolean;
}

export type TriggerKind = 'ins' | 'upd' | 'del';

export const TRIGGER_KINDS: readonly TriggerKind[] = ['ins', 'upd', 'del'];

export function triggerName(table: string, kind: TriggerKind): string {
  return `${RESERVED_PREFIX}${table}_${kind}`;
}

/** True when `name` is the trigger Syncline would give a table called `table`. */
export function isOwnTriggerOf(name: string, table: string): boolean {
  return TRIGGER_KINDS.some((kind) => triggerName(table, kind) === name);
}

const J = JournalTables.journal;

/** One journal entry as SQL: the slot expressions in slot order, NULLs at the end left out. */
interface Entry {
  op: string;
  slots: string[];
}

function trimmed(slots: readonly string[]): string[] {
  let end = slots.length;
  while (end > 0 && slots[end - 1] === 'NULL') end--;
  return slots.slice(0, end);
}

/** Milliseconds since the Unix epoch, in SQL any SQLite build understands (unixepoch('subsec') needs 3.42). */
const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;

function into(spec: CaptureSpec, entry: Entry, origin?: JournalOrigin): { columns: string; values: string } {
  const slots = trimmed(entry.slots);
  const columns = ['schema_id', 'op'];
  const values = [String(spec.schemaId), `'${entry.op}'`];
  // Left to the column's default ('L') unless another origin is asked for: one value less per captured write.
  if (origin !== undefined && origin !== JournalOrigins.local) {
    columns.push('origin');
    values.push(`'${origin}'`);
  }
  if (spec.writeTime) {
    columns.push('ms');
    values.push(NOW_MS);
  }
  return { columns: [...columns, ...slots.map((_, i) => slotName(i))].join(', '), values: [...values, ...slots].join(', ') };
}

function insertValues(spec: CaptureSpec, entry: Entry): string {
  const { columns, values } = into(spec, entry);
  return `INSERT INTO ${J} (${columns}) VALUES (${values})`;
}

function insertSelect(spec: CaptureSpec, entry: Entry, rest: string, origin?: JournalOrigin): string {
  const { columns, values } = into(spec, entry, origin);
  return `INSERT INTO ${J} (${columns}) SELECT ${values} ${rest}`;
}

function ref(source: string, column: string): string {
  return `${source}.${quoteIdent(column)}`;
}

/** The row slots (and the rowid slot) filled from one row source. */
function rowFrom(spec: CaptureSpec, layout: SlotLayout, source: string): string[] {
  return rowSlots(
    layout,
    spec.columns.map((c) => ref(source, c)),
    ref(source, spec.keyColumns[0]!),
  );
}

/** A delete: the key alone, or the whole old row where before-images are on. */
function deleteEntry(spec: CaptureSpec, layout: SlotLayout, source: string): Entry {
  if (spec.beforeImages) return { op: JournalOps.delete + BEFORE_IMAGE_MARK, slots: rowFrom(spec, layout, source) };
  return { op: JournalOps.delete, slots: keySlots(layout, spec.keyColumns.map((c) => ref(source, c)), 'NULL') };
}

function updateEntry(spec: CaptureSpec, layout: SlotLayout): Entry {
  const slots = rowFrom(spec, layout, 'NEW');
  if (!spec.beforeImages) return { op: JournalOps.update, slots };
  return { op: JournalOps.update + BEFORE_IMAGE_MARK, slots: [...slots, ...spec.columns.map((c) => ref('OLD', c))] };
}

/**
 * A key change is a delete of the old key followed by an upsert of the new one.
 * Keys are compared by their quote() renderings: exact by storage class and blind
 * to the column's collation, so 'a' -> 'A' under NOCASE is still a key change.
 */
function keyMoved(spec: CaptureSpec): string {
  return spec.keyColumns.map((c) => `quote(${ref('OLD', c)}) IS NOT quote(${ref('NEW', c)})`).join(' OR ');
}

export function createTriggerStatements(spec: CaptureSpec): string[] {
  const layout = slotLayout(spec.columns, spec.key);
  const table = quoteIdent(spec.table);
  const insert = insertValues(spec, { op: JournalOps.insert, slots: rowFrom(spec, layout, 'NEW') });
  const moved = insertSelect(spec, deleteEntry(spec, layout, 'OLD'), `WHERE ${keyMoved(spec)}`);
  const update = insertValues(spec, updateEntry(spec, layout));
  const del = insertValues(spec, deleteEntry(spec, layout, 'OLD'));
  return [
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'ins'))} AFTER INSERT ON ${table} FOR EACH ROW BEGIN ${insert}; END`,
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'upd'))} AFTER UPDATE ON ${table} FOR EACH ROW BEGIN ${moved}; ${update}; END`,
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'del'))} AFTER DELETE ON ${table} FOR EACH ROW BEGIN ${del}; END`,
  ];
}

export function dropTriggerStatements(table: string): string[] {
  return TRIGGER_KINDS.map((kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(triggerName(table, kind))}`);
}

/**
 * Appends every current row of the table as a snapshot ('S') entry: the app's rows
 * when capture is installed, or ('R') the rows a two-way hydration just wrote.
 */
export function snapshotStatement(spec: CaptureSpec, origin: JournalOrigin = JournalOrigins.local): string {
  const layout = slotLayout(spec.columns, spec.key);
  return insertSelect(spec, { op: JournalOps.snapshot, slots: rowFrom(spec, layout, 's') }, `FROM ${quoteIdent(spec.table)} AS s`, origin);
}

/**
 * Appends an update ('U') entry with the current row for one key, bound as
 * parameters in key order; appends nothing when the key no longer exists.
 */
export function rowAtKeyStatement(spec: CaptureSpec): string {
  const layout = slotLayout(spec.columns, spec.key);
  const where = spec.keyColumns.map((c) => `${ref('s', c)} = ?`).join(' AND ');
  return insertSelect(spec, { op: JournalOps.update, slots: rowFrom(spec, layout, 's') }, `FROM ${quoteIdent(spec.table)} AS s WHERE ${where}`);
}
