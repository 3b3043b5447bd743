import type { SharedTable } from '../../protocol/shared-sync.js';
import type { SqlValue } from '../../protocol/values.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { BEFORE_IMAGE_MARK, JournalOps, JournalTables } from '../journal/journal-schema.js';
import { rowSlots, slotName } from '../journal/journal-slots.js';
import { parseLiteralList } from '../journal/sql-literal.js';
import { LocalTable } from './local-table.js';
import { SharedStateKeys, SharedTables } from './shared-schema.js';
import { dropGuardStatements, guardTriggerStatements } from './shared-triggers.js';
import { writeState } from '../journal/journal-state.js';
import { installCapture, newestSeq, twoWayCapture, type TwoWayCapture } from './twoway-journal.js';

/**
 * Before the one journal, two-way sync captured its tables with triggers of its
 * own into `_syncline_dirty` (one entry per changed key: the row before the first
 * unpushed write and the time of the latest) and kept its state in
 * `_syncline_shared_state`. Such a file is converted in place, inside the
 * caller's transaction: the tables get journal capture, each dirty key becomes
 * one journal entry of the app's above the push cursor (with its base row as the
 * before-image and its write time), so nothing unpushed is lost; the state moves
 * into the journal's state table. A frozen outbox stays as it is and is resent
 * with its bundle id.
 */

const LEGACY = { dirty: '_syncline_dirty', state: '_syncline_shared_state' } as const;

async function exists(tx: SqliteQueryable, table: string): Promise<boolean> {
  return (await tx.get(`SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?`, [table])) !== undefined;
}

/** The journal entry that stands for one dirty key: what the app did to it since it was last in sync. */
function entryFor(capture: TwoWayCapture, base: SqlValue[] | null, row: SqlValue[] | null): { op: string; slots: SqlValue[] } | undefined {
  const { layout } = capture;
  if (row === null) return base === null ? undefined : { op: JournalOps.delete + BEFORE_IMAGE_MARK, slots: rowSlots(layout, base, null) };
  if (base === null) return { op: JournalOps.insert, slots: rowSlots(layout, row, null) };
  return { op: JournalOps.update + BEFORE_IMAGE_MARK, slots: [...rowSlots(layout, row, null), ...base] };
}

export async function upgradeTwoWayLayout(tx: SqliteQueryable): Promise<void> {
  if (await exists(tx, LEGACY.state)) {
    await tx.run(`INSERT OR REPLACE INTO ${JournalTables.state} (key, value) SELECT 'twoway_' || key, value FROM ${LEGACY.state}`);
    await tx.exec(`DROP TABLE ${LEGACY.state}`);
  }
  if (!(await exists(tx, LEGACY.dirty))) return;
  const declared = (await tx.all<{ declaration: string }>(`SELECT declaration FROM ${SharedTables.captured}`)).map((r) => JSON.parse(r.declaration) as SharedTable);
  const pushed = await newestSeq(tx);
  for (const table of declared) {
    // The old capture triggers carried the guards' names; a down-only table's guard is put back as it was.
    for (const sql of dropGuardStatements(table.name)) await tx.exec(sql);
    const capture = await twoWayCapture(tx, table);
    await installCapture(tx, capture);
    if (table.direction === 'down') {
      for (const sql of guardTriggerStatements(table)) await tx.exec(sql);
      continue;
    }
    const local = new LocalTable(table);
    const dirty = await tx.all<{ key: string; base_row: string | null; wall_ms: bigint }>(`SELECT key, base_row, wall_ms FROM ${LEGACY.dirty} WHERE tbl = ? ORDER BY wall_ms, key`, [table.name]);
    for (const { key: keyText, base_row, wall_ms } of dirty) {
      const key = parseLiteralList(keyText);
      const entry = entryFor(capture, base_row === null ? null : parseLiteralList(base_row), await local.read(tx, key));
      if (!entry) continue;
      const names = entry.slots.map((_, i) => `, ${slotName(i)}`).join('');
      await tx.run(`INSERT INTO ${JournalTables.journal} (schema_id, op, ms${names}) VALUES (?, ?, ?${', ?'.repeat(entry.slots.length)})`, [capture.spec.schemaId, entry.op, wall_ms, ...entry.slots]);
    }
  }
  await writeState(tx, SharedStateKeys.pushed, pushed.toString());
  await tx.exec(`DROP TABLE ${LEGACY.dirty}`);
}
