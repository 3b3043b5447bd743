import { setImmediate as nextTurn } from 'node:timers/promises';
import type { BatchLimits } from './batching.js';
import type { JournalReader, RawJournalEntry } from '../journal/journal-reader.js';

/**
 * The publisher's reads of the journal. scanJournal is one pass in seq order
 * from the lowest position any idle table still needs, grouping entries per
 * table in memory (the journal has no per-table index, on purpose: it would make
 * every captured write dearer); scanTable reads on for one table whose batch is
 * in flight. Values stay undecoded here; only entries that are actually sent get
 * parsed.
 */

export interface Lane {
  table: string;
  acked: number;
  /** The table has no unacked entry at or below this seq (acked, or scanned past without finding one). */
  floor: number;
  /** A delivery for this table is running; it takes no new entries (one batch in flight per table keeps order). */
  busy: boolean;
  /** When unsent entries of this table were first seen; drives the flush interval. */
  pendingSince: number | undefined;
  /** The cloud paused this table (flow control): it is not scanned or sent, its entries wait in the journal. */
  paused?: boolean;
  /** A two-way table: its entries share the journal but are pushed as bundles by two-way sync, never sent here. */
  twoWay?: boolean;
}

export interface ScanResult {
  /** Per table, the entries of its next batch candidate: one schema, seq order. */
  collected: Map<Lane, RawJournalEntry[]>;
  /** Tables whose candidate is complete: it hit a limit, or the schema changes after it. */
  full: Set<Lane>;
  /** The scan reached the end of the journal. */
  complete: boolean;
  /** A table turned up that starts below where this scan began; the next scan starts lower. */
  rescan: boolean;
}

const CHUNK = 1024;
/** Raw text overhead per entry when estimating its encoded size (seq, op and JSON punctuation). */
const ENTRY_OVERHEAD = 40;

export async function scanJournal(reader: JournalReader, lanes: Map<string, Lane>, limits: BatchLimits, budgetRows: number): Promise<ScanResult> {
  const result: ScanResult = { collected: new Map(), full: new Set(), complete: false, rescan: false };
  const idle = [...lanes.values()].filter((l) => !l.busy && !l.paused && !l.twoWay);
  if (idle.length === 0) return { ...result, complete: true };
  const from = Math.min(...idle.map((l) => l.floor));
  // The lanes this scan collects for, fixed at its start: a delivery that ends while a chunk is read frees
  // its lane, but the chunks read before that skipped the lane's entries, so collecting on would leave a gap.
  const scanned = new Set(idle);
  const estimate = new Map<Lane, number>();
  let position = from;
  let read = 0;
  while (read < budgetRows) {
    const chunk = await reader.readRaw(position, CHUNK);
    read += chunk.length;
    for (const entry of chunk) {
      let lane = lanes.get(entry.table);
      if (!lane) {
        // A table without a cursor row: its entries may start anywhere, so it is collected only by a scan from 0.
        lane = { table: entry.table, acked: 0, floor: 0, busy: false, pendingSince: undefined };
        lanes.set(entry.table, lane);
        scanned.add(lane);
        if (from > 0) result.rescan = true;
      }
      if (!scanned.has(lane) || entry.seq <= lane.floor || result.full.has(lane) || lane.floor < from) continue;
      let list = result.collected.get(lane);
      if (!list) {
        list = [];
        result.collected.set(lane, list);
      }
      if (list.length > 0 && list[0]!.schemaId !== entry.schemaId) {
        result.full.add(lane);
        continue;
      }
      list.push(entry);
      const bytes = (estimate.get(lane) ?? 0) + estimatedBytes(entry);
      estimate.set(lane, bytes);
      if (list.length >= limits.maxRows || bytes >= limits.maxBytes) result.full.add(lane);
    }
    if (chunk.length > 0) position = chunk[chunk.length - 1]!.seq;
    if (chunk.length < CHUNK) {
      result.complete = true;
      break;
    }
    if (idle.every((l) => result.full.has(l))) break;
  }
  // Idle tables that found nothing in (floor, position] have nothing there: later scans may start above it.
  for (const lane of idle) {
    if (!result.collected.has(lane) && lane.floor >= from) lane.floor = Math.max(lane.floor, position);
  }
  return result;
}

export interface TableScan {
  /** The table's entries, one schema, seq order. */
  entries: RawJournalEntry[];
  /** The entries make a complete batch: they reached a limit, or the table's next entry has another schema. */
  full: boolean;
}

/**
 * The entries of `table` after `afterSeq`, for the batch that follows one in
 * flight. Reads chunk by chunk with a turn of the event loop before each, so the
 * batch in flight and the agent loop are not held up, and reads at most
 * `budgetRows` journal entries (other tables' included).
 */
export async function scanTable(reader: JournalReader, table: string, afterSeq: number, limits: BatchLimits, budgetRows: number, signal: AbortSignal): Promise<TableScan> {
  const entries: RawJournalEntry[] = [];
  let bytes = 0;
  let position = afterSeq;
  for (let read = 0; read < budgetRows; ) {
    await nextTurn();
    if (signal.aborted) break;
    const chunk = await reader.readRaw(position, CHUNK);
    read += chunk.length;
    for (const entry of chunk) {
      if (entry.table !== table) continue;
      if (entries.length > 0 && entries[0]!.schemaId !== entry.schemaId) return { entries, full: true };
      entries.push(entry);
      bytes += estimatedBytes(entry);
      if (entries.length >= limits.maxRows || bytes >= limits.maxBytes) return { entries, full: true };
    }
    if (chunk.length < CHUNK) break;
    position = chunk[chunk.length - 1]!.seq;
  }
  return { entries, full: false };
}

function estimatedBytes(entry: RawJournalEntry): number {
  let bytes = ENTRY_OVERHEAD;
  for (const value of entry.values) {
    if (value === null) continue;
    bytes += typeof value === 'string' ? value.length : typeof value === 'object' ? value.byteLength * 2 : 8;
  }
  return bytes;
}
