import { JournalTables } from './journal-schema.js';
import { SLOT_PREFIX } from './journal-slots.js';

/**
 * Journal layout 2 had no `origin` and `ms` columns. Readers take the value slots
 * by position after the fixed columns, so the two cannot be appended behind the
 * slots: the table is rebuilt with them in place, every entry keeping its seq
 * (origin 'L': before layout 3 only the app's changes were journaled).
 *
 * Pure SQL, so the agent's synchronous connection and the async driver (two-way
 * sync, which may meet such a file first) run the same conversion. Run inside one
 * IMMEDIATE transaction. legacy_alter_table keeps the final rename from checking
 * the capture triggers, which name the journal and, between DROP and RENAME,
 * would point at a missing table; they write by column name, so they carry on
 * unchanged against the new table.
 */

const NEXT = `${JournalTables.journal}_v3`;

/** True when the journal's columns (pragma_table_info order) are those of layout 2. */
export function isLayout2Journal(columns: readonly string[]): boolean {
  return columns.length > 0 && !columns.includes('pk') && !columns.includes('origin');
}

export function layout2RebuildStatements(columns: readonly string[]): string[] {
  const slots = columns.filter((name) => name.startsWith(SLOT_PREFIX));
  const copied = ['seq', 'schema_id', 'op', ...slots].join(', ');
  return [
    'PRAGMA legacy_alter_table = ON',
    `DROP TABLE IF EXISTS ${NEXT}`,
    `CREATE TABLE ${NEXT} (seq INTEGER PRIMARY KEY, schema_id INTEGER NOT NULL, op TEXT NOT NULL, origin TEXT NOT NULL DEFAULT 'L', ms INTEGER${slots.map((s) => `, ${s}`).join('')})`,
    `INSERT INTO ${NEXT} (${copied}) SELECT ${copied} FROM ${JournalTables.journal}`,
    `DROP TABLE ${JournalTables.journal}`,
    `ALTER TABLE ${NEXT} RENAME TO ${JournalTables.journal}`,
    'PRAGMA legacy_alter_table = OFF',
  ];
}
