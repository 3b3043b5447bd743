import type { Statement } from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { TELEMETRY_BATCH_FORMAT_VERSION } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import type { WireTelemetryBatch } from '../../protocol/telemetry-batch.js';
import { encodeValue, type SqlValue } from '../../protocol/values.js';
import type { DeviceDb } from '../journal/device-db.js';
import { quoteIdent } from '../capture/sql-text.js';
import type { TelemetryCursor } from './telemetry-cursor.js';
import { selectList, type TelemetryTable } from './telemetry-table.js';

/** A batch ready to send, with where the cursor goes once it is acked. */
export interface TelemetryRead {
  batch: WireTelemetryBatch;
  end: { posTime: SqlValue; posRowid: bigint; seq: number; gapRows: number };
  /** Set when the batch's JSON is over the byte limit (it is read again smaller). */
  tooLarge?: boolean;
}

/** What one look found: a batch, a rewind of the rowid cursor, rows checked for late times. */
export interface TelemetryLook {
  read?: TelemetryRead;
  rewindTo?: bigint;
  checked?: { late: number; upTo: bigint };
}

type RawRow = [bigint, ...SqlValue[]];

const MAX_SEQ = BigInt(Number.MAX_SAFE_INTEGER);

/** better-sqlite3 returns BLOBs as Buffers; the wire encoder wants plain bytes. */
function plain(value: SqlValue): SqlValue {
  return value instanceof Uint8Array && value.constructor !== Uint8Array ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value;
}

/**
 * Reads a telemetry table past its cursor with plain indexed SELECTs: the app's
 * inserts pay nothing for it (no trigger, no journal row). Statements are
 * prepared once per reader.
 */
export class TelemetryReader {
  readonly #db: DeviceDb;
  readonly #t: TelemetryTable;
  readonly #first: Statement;
  readonly #next: Statement;
  readonly #max: Statement;
  readonly #late: Statement | undefined;
  readonly #noTime: Statement | undefined;
  readonly #timeIndex: number;

  constructor(db: DeviceDb, table: TelemetryTable) {
    this.#db = db;
    this.#t = table;
    const from = quoteIdent(table.table);
    const cols = selectList(table);
    const r = table.rowid;
    if (table.timeColumn === null) {
      this.#first = db.prepare(`SELECT ${cols} FROM ${from} WHERE ${r} > ? ORDER BY ${r} LIMIT ?`).raw(true);
      this.#next = this.#first;
      this.#late = undefined;
      this.#noTime = undefined;
      this.#timeIndex = -1;
    } else {
      const tc = quoteIdent(table.timeColumn);
      // Rows without a time are never shipped (they would have no place in a time series); the late check reports them.
      this.#first = db.prepare(`SELECT ${cols} FROM ${from} WHERE ${tc} IS NOT NULL ORDER BY ${tc}, ${r} LIMIT ?`).raw(true);
      this.#next = db.prepare(`SELECT ${cols} FROM ${from} WHERE (${tc}, ${r}) > (?, ?) ORDER BY ${tc}, ${r} LIMIT ?`).raw(true);
      this.#late = db.prepare(`SELECT count(*), max(${r}) FROM ${from} WHERE ${r} > ? AND (${tc} IS NULL OR (${tc}, ${r}) < (?, ?))`).raw(true);
      this.#noTime = db.prepare(`SELECT count(*), max(${r}) FROM ${from} WHERE ${r} > ? AND ${tc} IS NULL`).raw(true);
      this.#timeIndex = table.columns.findIndex((c) => c.name === table.timeColumn);
    }
    this.#max = db.prepare(`SELECT max(${r}) FROM ${from}`).pluck(true);
  }

  /**
   * One look at the table in one read snapshot: in time order it first counts the
   * rows added since the last look whose time is behind the cursor (they will never
   * be shipped), then reads the next batch; in rowid order, finding nothing, it
   * checks whether the newest rows were deleted (rowids then come back).
   */
  look(cursor: TelemetryCursor, limit: number): TelemetryLook {
    return this.#db.transaction(() => {
      const look: TelemetryLook = {};
      if (this.#late) {
        // Before anything is shipped only rows without a time are behind the (empty) cursor.
        const [count, max] = (cursor.posTime === null ? this.#noTime!.get(cursor.checkedRowid) : this.#late.get(cursor.checkedRowid, cursor.posTime, cursor.posRowid)) as [bigint, bigint | null];
        const top = (this.#max.get() as bigint | null) ?? 0n;
        const upTo = max !== null && max > top ? max : top;
        if (upTo > cursor.checkedRowid) look.checked = { late: Number(count), upTo };
      }
      const read = this.#read(cursor, limit);
      if (read) look.read = read;
      else if (this.#t.timeColumn === null && cursor.posRowid > 0n) {
        const max = (this.#max.get() as bigint | null) ?? 0n;
        if (max < cursor.posRowid) look.rewindTo = max;
      }
      return look;
    })();
  }

  #read(cursor: TelemetryCursor, limit: number): TelemetryRead | undefined {
    const t = this.#t;
    let rows: RawRow[];
    if (t.timeColumn === null) rows = this.#first.all(cursor.posRowid, limit) as RawRow[];
    else if (cursor.posTime === null) rows = this.#first.all(limit) as RawRow[];
    else rows = this.#next.all(cursor.posTime, cursor.posRowid, limit) as RawRow[];
    if (rows.length === 0) return undefined;
    const wireRows: WireTelemetryBatch['rows'] = new Array(rows.length);
    let gapRows = 0;
    let expected = cursor.posRowid + 1n;
    let seq = cursor.seq;
    for (let i = 0; i < rows.length; i++) {
      const raw = rows[i]!;
      const rowid = raw[0];
      if (t.timeColumn === null) {
        // A jump in rowids: rows deleted before they were shipped (or rowids the app chose itself).
        if (rowid > expected) gapRows += Number(rowid - expected);
        expected = rowid + 1n;
        const s = rowid + cursor.seqOffset;
        if (s > MAX_SEQ) throw new SynclineError('capture_failed', `telemetry table ${t.table}: rowid ${rowid} is beyond 2^53 and cannot number a row`, { table: t.table });
        seq = Number(s);
      } else seq += 1;
      const row = new Array(raw.length - 1);
      for (let j = 1; j < raw.length; j++) row[j - 1] = encodeValue(plain(raw[j]!));
      wireRows[i] = { seq, row };
    }
    const last = rows[rows.length - 1]!;
    const batch: WireTelemetryBatch = {
      format_version: TELEMETRY_BATCH_FORMAT_VERSION,
      batch_id: uuidv7(),
      journal_epoch: cursor.epoch,
      source_table: t.table,
      time_column: t.timeColumn,
      schema: { hash: t.hash, columns: t.columns },
      first_seq: wireRows[0]!.seq,
      last_seq: seq,
      rows: wireRows,
    };
    return { batch, end: { posTime: t.timeColumn === null ? null : (last[this.#timeIndex + 1] ?? null), posRowid: last[0], seq, gapRows } };
  }

  get db(): DeviceDb {
    return this.#db;
  }
}
