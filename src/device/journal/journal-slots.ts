import type { TableKey } from '../../protocol/schema.js';

/**
 * Where a journal entry keeps its values. The journal has one untyped column per
 * value slot (`v0`, `v1`, ...), so a trigger copies NEW/OLD values as they are:
 * no text rendering on the app's write path, and every storage class (64-bit
 * INTEGER, REAL including -0.0, TEXT with NULs, BLOB) comes back exactly.
 *
 * For a table of n columns:
 * - slots 0..n-1: the row in schema column order. Inserts, updates and snapshots
 *   hold the new row; deletes hold the key columns only (NULL elsewhere), or the
 *   whole old row where before-images are on.
 * - slot n, for tables keyed by rowid: the rowid, which no column holds.
 * - the next n slots: the old row of an update with a before-image.
 *
 * Trigger SQL and the journal reader both take their positions from here, so
 * they cannot disagree.
 */
export interface SlotLayout {
  /** Slots holding the row (the table's column count). */
  rowSlots: number;
  /** The slot of each key value, in key order. */
  keySlots: number[];
  /** The slot holding the rowid, for tables keyed by rowid. */
  rowidSlot: number | undefined;
  /** The first slot of an update's before-image. */
  beforeImageStart: number;
}

export const SLOT_PREFIX = 'v';

/** SQLite's default column limit is 2000; the journal spends three on seq, schema_id and op. */
export const MAX_SLOTS = 1997;

export function slotName(index: number): string {
  return `${SLOT_PREFIX}${index}`;
}

export function slotLayout(columns: readonly string[], key: TableKey): SlotLayout {
  const rowSlots = columns.length;
  if (key.kind === 'rowid') return { rowSlots, keySlots: [rowSlots], rowidSlot: rowSlots, beforeImageStart: rowSlots + 1 };
  const keySlots = key.columns.map((name) => columns.indexOf(name));
  return { rowSlots, keySlots, rowidSlot: undefined, beforeImageStart: rowSlots };
}

/** How many slots an entry of this table can use. */
export function slotsNeeded(layout: SlotLayout, beforeImages: boolean): number {
  return layout.beforeImageStart + (beforeImages ? layout.rowSlots : 0);
}

/**
 * The slots of a row: its values in column order, then the rowid for tables keyed
 * by it. Generic over the element so trigger SQL (expressions) and conversions
 * (values) fill slots by the same rule.
 */
export function rowSlots<T>(layout: SlotLayout, row: readonly T[], rowid: T): T[] {
  return layout.rowidSlot === undefined ? [...row] : [...row, rowid];
}

/** The slots of a delete without a before-image: each key value at its slot, `empty` everywhere else. */
export function keySlots<T>(layout: SlotLayout, key: readonly T[], empty: T): T[] {
  const slots = new Array<T>(layout.beforeImageStart).fill(empty);
  layout.keySlots.forEach((slot, i) => (slots[slot] = key[i]!));
  return slots;
}
