import { RESERVED_PREFIX } from '../protocol/constants.js';
import { JournalOps, JournalTables } from './journal-schema.js';
import { quoteIdent, quotedList, quoteText } from './sql-text.js';

/**
 * The SQL that captures one table: three AFTER triggers that append to the
 * journal, the snapshot that seeds it, and the re-read of single rows after a
 * schema change. Pure string building, so it is tested without a database.
 *
 * The triggers run inside the app's own transactions, in whatever SQLite build the
 * app links, so they use only quote(), ||, IS NOT and INSERT ... SELECT, which every
 * SQLite since long before 3.25 has. They do no lookups (the schema id is a
 * literal), because capture cost is paid on every write the app makes.
 *
 * Known limits of quote() that we accept rather than work around in the trigger:
 * - TEXT is rendered up to its first NUL character (quote() treats it as C text).
 * - -0.0 is rendered as 0.0 (SQLite's own REAL to text conversion drops the sign;
 *   a REAL-affinity column already stores -0.0 as 0).
 * And one limit of triggers: when `INSERT OR REPLACE` removes a *different* row that
 * clashes on a UNIQUE constraint, SQLite fires no delete trigger for it unless the
 * app's connection enables recursive_triggers, so that removal is not journaled.
 */

export interface CaptureSpec {
  table: string;
  /** Captured columns in the order of the schema record; the journal's row follows it. */
  columns: readonly string[];
  /** Key columns in key order, or the rowid alias (`rowid`, `_rowid_` or `oid`) for a rowid key. */
  keyColumns: readonly string[];
  schemaId: number;
  beforeImages: boolean;
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

const INTO = `INSERT INTO ${J} (tbl, op, pk, row, old_row, schema_id)`;

/** The value list of one journal entry; every part is an SQL expression. */
function entryValues(spec: CaptureSpec, op: string, pk: string, row: string, oldRow: string): string {
  return `${quoteText(spec.table)}, '${op}', ${pk}, ${row}, ${oldRow}, ${spec.schemaId}`;
}

export function createTriggerStatements(spec: CaptureSpec): string[] {
  const table = quoteIdent(spec.table);
  const newPk = quotedList('NEW.', spec.keyColumns);
  const oldPk = quotedList('OLD.', spec.keyColumns);
  const newRow = quotedList('NEW.', spec.columns);
  const oldRow = spec.beforeImages ? quotedList('OLD.', spec.columns) : 'NULL';
  const insert = `${INTO} VALUES (${entryValues(spec, JournalOps.insert, newPk, newRow, 'NULL')})`;
  // A key change is a delete of the old key followed by an upsert of the new one.
  // The keys are compared as their quote() renderings: exact by storage class and
  // blind to the column's collation, so 'a' -> 'A' under NOCASE is still a key change.
  const keyMoved = `${INTO} SELECT ${entryValues(spec, JournalOps.delete, oldPk, 'NULL', oldRow)} WHERE (${oldPk}) IS NOT (${newPk})`;
  const update = `${INTO} VALUES (${entryValues(spec, JournalOps.update, newPk, newRow, oldRow)})`;
  const del = `${INTO} VALUES (${entryValues(spec, JournalOps.delete, oldPk, 'NULL', oldRow)})`;
  return [
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'ins'))} AFTER INSERT ON ${table} FOR EACH ROW BEGIN ${insert}; END`,
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'upd'))} AFTER UPDATE ON ${table} FOR EACH ROW BEGIN ${keyMoved}; ${update}; END`,
    `CREATE TRIGGER ${quoteIdent(triggerName(spec.table, 'del'))} AFTER DELETE ON ${table} FOR EACH ROW BEGIN ${del}; END`,
  ];
}

export function dropTriggerStatements(table: string): string[] {
  return TRIGGER_KINDS.map((kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(triggerName(table, kind))}`);
}

/** Appends every current row of the table as a snapshot ('S') entry. */
export function snapshotStatement(spec: CaptureSpec): string {
  const values = entryValues(spec, JournalOps.snapshot, quotedList('s.', spec.keyColumns), quotedList('s.', spec.columns), 'NULL');
  return `${INTO} SELECT ${values} FROM ${quoteIdent(spec.table)} AS s`;
}

/**
 * Appends an update ('U') entry with the current row for one key, bound as
 * parameters in key order; appends nothing when the key no longer exists.
 */
export function rowAtKeyStatement(spec: CaptureSpec): string {
  const where = spec.keyColumns.map((c) => `s.${quoteIdent(c)} = ?`).join(' AND ');
  const values = entryValues(spec, JournalOps.update, quotedList('s.', spec.keyColumns), quotedList('s.', spec.columns), 'NULL');
  return `${INTO} SELECT ${values} FROM ${quoteIdent(spec.table)} AS s WHERE ${where}`;
}
