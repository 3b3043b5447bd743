import type { SqlValue } from '../../protocol/values.js';
import type { SqliteQueryable, SqliteRow } from '../driver/sqlite-driver.js';
import { renderLiteralList } from '../journal/sql-literal.js';
import { BEFORE_IMAGE_MARK, JournalOps, JournalOrigins, JournalTables } from '../journal/journal-schema.js';
import { slotName, slotsNeeded, type SlotLayout } from '../journal/journal-slots.js';
import { SharedTables } from './shared-schema.js';

/**
 * The changes two-way sync has to push, read per key from the one journal: the
 * app's entries ('L') of two-way tables above the push cursor, coalesced. A key's
 * base (the row both sides started from, which conflicts are settled against) is
 * the before-image of its first such entry; its time is that of its latest write.
 * Keys a remote change settled since the last push (`_syncline_settled`) start
 * again from that point: either still pending on the remote row as their new
 * base, or not pending until the app writes them again.
 */

/** One key's pending change. `base` is the row rendered as a quote() list, null when the key did not exist. */
export interface PendingChange {
  base: string | null;
  ms: bigint;
}

/** Table -> key (quote() rendering of the key values) -> pending change. */
export type PendingView = Map<string, Map<string, PendingChange>>;

/** Where to find a two-way table's entries: its schema ids and their slot layouts. */
export type CapturedSchemas = Map<number, { table: string; layout: SlotLayout }>;

function put(view: PendingView, table: string, key: string, change: PendingChange): void {
  let keys = view.get(table);
  if (!keys) view.set(table, (keys = new Map()));
  keys.set(key, change);
}

function slice(row: SqliteRow, from: number, count: number): SqlValue[] {
  const values = new Array<SqlValue>(count);
  for (let i = 0; i < count; i++) values[i] = row[slotName(from + i)] as SqlValue;
  return values;
}

/** The row the key had before its first pending entry; a key change's new key started from nothing. */
function baseOf(row: SqliteRow, layout: SlotLayout, keyText: string): string | null {
  const op = row.op as string;
  if (!op.endsWith(BEFORE_IMAGE_MARK)) return null;
  const old = op.startsWith(JournalOps.delete) ? slice(row, 0, layout.rowSlots) : slice(row, layout.beforeImageStart, layout.rowSlots);
  const oldKey = renderLiteralList(layout.keySlots.map((slot) => old[slot]!));
  return oldKey === keyText ? renderLiteralList(old) : null;
}

export async function readPending(tx: SqliteQueryable, schemas: CapturedSchemas, pushed: bigint): Promise<PendingView> {
  const view: PendingView = new Map();
  const settled = new Map<string, bigint>();
  for (const s of await tx.all<{ tbl: string; key: string; seq: bigint; pending: bigint; base_row: string | null; ms: bigint }>(`SELECT tbl, key, seq, pending, base_row, ms FROM ${SharedTables.settled}`)) {
    settled.set(`${s.tbl}\u0000${s.key}`, s.seq);
    if (s.pending !== 0n) put(view, s.tbl, s.key, { base: s.base_row, ms: s.ms });
  }
  if (schemas.size === 0) return view;
  const width = Math.max(...[...schemas.values()].map((s) => slotsNeeded(s.layout, true)));
  const slots = Array.from({ length: width }, (_, i) => slotName(i)).join(', ');
  const rows = await tx.all(
    `SELECT seq, schema_id, op, ms, ${slots} FROM ${JournalTables.journal}
     WHERE seq > ? AND origin = '${JournalOrigins.local}' AND schema_id IN (${[...schemas.keys()].join(', ')}) ORDER BY seq`,
    [pushed],
  );
  for (const row of rows) {
    const schema = schemas.get(Number(row.schema_id))!;
    const key = renderLiteralList(schema.layout.keySlots.map((slot) => row[slotName(slot)] as SqlValue));
    const seen = settled.get(`${schema.table}\u0000${key}`);
    if (seen !== undefined && (row.seq as bigint) <= seen) continue;
    const ms = (row.ms as bigint | null) ?? 0n;
    const pending = view.get(schema.table)?.get(key);
    if (pending) {
      if (ms > pending.ms) pending.ms = ms;
    } else {
      put(view, schema.table, key, { base: baseOf(row, schema.layout, key), ms });
    }
  }
  return view;
}

/** Records how a remote change settled a key, as of the journal's newest entry now. */
export async function settleKey(tx: SqliteQueryable, table: string, key: string, outcome: { pending: false } | { pending: true; base: string | null; ms: bigint }): Promise<void> {
  await tx.run(
    `INSERT INTO ${SharedTables.settled} (tbl, key, seq, pending, base_row, ms) VALUES (?, ?, (SELECT coalesce(max(seq), 0) FROM ${JournalTables.journal}), ?, ?, ?)
     ON CONFLICT (tbl, key) DO UPDATE SET seq = excluded.seq, pending = excluded.pending, base_row = excluded.base_row, ms = excluded.ms`,
    [table, key, outcome.pending ? 1 : 0, outcome.pending ? outcome.base : null, outcome.pending ? outcome.ms : 0],
  );
}

/**
 * Whether the app wrote a two-way table since the push cursor: the newest such
 * entry's seq, or 0. Read from the end, so it stops at the first it meets.
 */
export async function newestLocalSeq(db: SqliteQueryable, schemas: CapturedSchemas, pushed: bigint): Promise<bigint> {
  if (schemas.size === 0) return 0n;
  const row = await db.get<{ seq: bigint }>(
    `SELECT seq FROM ${JournalTables.journal} WHERE seq > ? AND origin = '${JournalOrigins.local}' AND schema_id IN (${[...schemas.keys()].join(', ')}) ORDER BY seq DESC LIMIT 1`,
    [pushed],
  );
  return row?.seq ?? 0n;
}
