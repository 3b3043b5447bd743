import type { Logger } from 'pino';
import type { SqlValue } from '../../protocol/values.js';
import { dropTrigger, readOwnTriggers, readStoredTables, rewriteTriggers } from '../capture/capture-table.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { JournalReader } from './journal-reader.js';
import { BEFORE_IMAGE_MARK, JOURNAL_DDL, JOURNAL_LAYOUT_VERSION, JournalOps, JournalTables, StateKeys } from './journal-schema.js';
import { keySlots, rowSlots, slotName, slotsNeeded, type SlotLayout } from './journal-slots.js';
import { ensureJournalSlots, journalColumns, writeState } from './journal-state.js';
import { isLayout2Journal, layout2RebuildStatements } from './journal-rebuild.js';
import { parseLiteralList } from './sql-literal.js';

/**
 * Journal layout 1 kept each entry's key and rows as quote()-rendered text. A file
 * captured that way is converted in place, in one transaction: every entry keeps its
 * seq (the cloud has seen them under this epoch), nothing unshipped is lost, and
 * tables whose shape still matches their record get the new triggers without being
 * snapshotted again.
 */

const V1_TABLE = `${JournalTables.journal}_v1`;
const CHUNK = 2000;

type V1Entry = { seq: bigint; op: string; pk: string; row: string | null; old_row: string | null; schema_id: bigint };

async function hasLayout1Journal(db: SqliteQueryable): Promise<boolean> {
  return (await journalColumns(db)).includes('pk');
}

/** The slots of a layout-1 entry, by the rules of journal-slots.ts. */
function slotsOf(entry: V1Entry, layout: SlotLayout): { op: string; slots: SqlValue[] } {
  const pk = parseLiteralList(entry.pk);
  const oldRow = entry.old_row === null ? undefined : parseLiteralList(entry.old_row);
  if (entry.op === JournalOps.delete) {
    if (oldRow) return { op: JournalOps.delete + BEFORE_IMAGE_MARK, slots: rowSlots(layout, oldRow, pk[0]!) };
    return { op: entry.op, slots: keySlots(layout, pk, null) };
  }
  const row = rowSlots(layout, parseLiteralList(entry.row ?? ''), pk[0]!);
  return oldRow ? { op: entry.op + BEFORE_IMAGE_MARK, slots: [...row, ...oldRow] } : { op: entry.op, slots: row };
}

async function convertEntries(tx: SqliteQueryable): Promise<number> {
  const reader = new JournalReader(tx);
  const read = `SELECT seq, op, pk, row, old_row, schema_id FROM ${V1_TABLE} WHERE seq > ? ORDER BY seq LIMIT ${CHUNK}`;
  const insert = (width: number) => {
    const names = Array.from({ length: width }, (_, i) => slotName(i));
    return `INSERT INTO ${JournalTables.journal} (seq, schema_id, op${names.map((n) => `, ${n}`).join('')}) VALUES (?, ?, ?${', ?'.repeat(width)})`;
  };
  let converted = 0;
  // The journal was just created without slots; it is widened as entries need it.
  let width = 0;
  for (let after = 0n; ; ) {
    const entries = await tx.all<V1Entry>(read, [after]);
    for (const entry of entries) {
      const schema = await reader.schema(Number(entry.schema_id));
      const { op, slots } = slotsOf(entry, schema.layout);
      const needed = Math.max(slots.length, slotsNeeded(schema.layout, false));
      if (needed > width) {
        await ensureJournalSlots(tx, needed, schema.table);
        width = needed;
      }
      await tx.run(insert(slots.length), [entry.seq, entry.schema_id, op, ...slots]);
    }
    converted += entries.length;
    if (entries.length < CHUNK) return converted;
    after = entries[entries.length - 1]!.seq;
  }
}

/** Converts a layout-1 or layout-2 journal if the file has one; a no-op otherwise. */
export async function upgradeJournalLayout(driver: SqliteDriver, log: Logger): Promise<void> {
  await upgradeLayout2(driver, log);
  if (!(await hasLayout1Journal(driver))) return;
  await driver.writeTransaction(async (tx) => {
    if (!(await hasLayout1Journal(tx))) return;
    // The old triggers write the old columns; none may fire between here and their replacement.
    for (const trigger of await readOwnTriggers(tx)) await dropTrigger(tx, trigger.name);
    await tx.exec(`ALTER TABLE ${JournalTables.journal} RENAME TO ${V1_TABLE}`);
    await tx.exec(JOURNAL_DDL);
    const entries = await convertEntries(tx);
    await tx.exec(`DROP TABLE ${V1_TABLE}`);
    await writeState(tx, StateKeys.layoutVersion, String(JOURNAL_LAYOUT_VERSION));
    const kept: string[] = [];
    for (const stored of (await readStoredTables(tx)).values()) if (await rewriteTriggers(tx, stored)) kept.push(stored.name);
    log.info({ entries, tables: kept, layout: JOURNAL_LAYOUT_VERSION }, 'journal converted to the current layout; unchanged tables keep capturing without a new snapshot');
  });
}

/** Layout 2 gains origin and ms (journal-rebuild.ts); capture triggers stay as they are. */
async function upgradeLayout2(driver: SqliteDriver, log: Logger): Promise<void> {
  if (!isLayout2Journal(await journalColumns(driver))) return;
  await driver.writeTransaction(async (tx) => {
    const columns = await journalColumns(tx);
    if (!isLayout2Journal(columns)) return;
    for (const sql of layout2RebuildStatements(columns)) await tx.exec(sql);
    await writeState(tx, StateKeys.layoutVersion, String(JOURNAL_LAYOUT_VERSION));
    log.info({ layout: JOURNAL_LAYOUT_VERSION }, 'journal converted to the current layout (origin column); every entry kept');
  });
}
