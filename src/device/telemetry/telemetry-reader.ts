import { uuidv7 } from 'uuidv7';
import { TELEMETRY_BATCH_FORMAT_VERSION } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import type { WireTelemetryBatch } from '../../protocol/telemetry-batch.js';
import { encodeValue, type SqlValue } from '../../protocol/values.js';
import type { SqliteDriver, SqliteQueryable, SqliteRow } from '../driver/sqlite-driver.js';
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

/** A row of the select list (rowid, then the columns, as c0, c1, ...) as values in that order. */
function rawRow(row: SqliteRow): RawRow {
  return Object.values(row) as RawRow;
}

/**
 * Reads a telemetry table past its cursor with plain indexed SELECTs: the app's
 * inserts pay nothing for it (no trigger, no journal row). The SQL is built once
 * per reader; the driver keeps the statements prepared.
 */
export class TelemetryReader {
  readonly #db: SqliteDriver;
  readonly #t: TelemetryTable;
  readonly #first: string;
  readonly #next: string;
  readonly #max: string;
  readonly #late: string | undefined;
  readonly #noTime: string | undefined;
  readonly #timeIndex: number;

  constructor(db: SqliteDriver, table: TelemetryTable) {
    this.#db = db;
    this.#t = table;
    const from = quoteIdent(table.table);
    const cols = selectList(table);
    const r = table.rowid;
    if (table.timeColumn === null) {
      this.#first = `SELECT ${cols} FROM ${from} WHERE ${r} > ? ORDER BY ${r} LIMIT ?`;
      this.#next = this.#first;
      this.#late = undefined;
      this.#noTime = undefined;
      this.#timeIndex = -1;
    } else {
      const tc = quoteIdent(table.timeColumn);
      // Rows without a time are never shipped (they would have no place in a time series); the late check reports them.
      this.#first = `SELECT ${cols} FROM ${from} WHERE ${tc} IS NOT NULL ORDER BY ${tc}, ${r} LIMIT ?`;
      this.#next = `SELECT ${cols} FROM ${from} WHERE (${tc}, ${r}) > (?, ?) ORDER BY ${tc}, ${r} LIMIT ?`;
      this.#late = `SELECT count(*) AS n, max(${r}) AS top FROM ${from} WHERE ${r} > ? AND (${tc} IS NULL OR (${tc}, ${r}) < (?, ?))`;
      this.#noTime = `SELECT count(*) AS n, max(${r}) AS top FROM ${from} WHERE ${r} > ? AND ${tc} IS NULL`;
      this.#timeIndex = table.columns.findIndex((c) => c.name === table.timeColumn);
    }
    this.#max = `SELECT max(${r}) AS top FROM ${from}`;
  }

  /**
   * One look at the table in one read snapshot: in time order it first counts the
   * rows added since the last look whose time is behind the cursor (they will never
   * be shipped), then reads the next batch; in rowid order, finding nothing, it
   * checks whether the newest rows were deleted (rowids then come back).
   */
  look(cursor: TelemetryCursor, limit: number): Promise<TelemetryLook> {
    return this.#db.readTransaction(async (tx) => {
      const look: TelemetryLook = {};
      if (this.#late) {
        // Before anything is shipped only rows without a time are behind the (empty) cursor.
        const { n, top: max } = (cursor.posTime === null
          ? await tx.get<{ n: bigint; top: bigint | null }>(this.#noTime!, [cursor.checkedRowid])
          : await tx.get<{ n: bigint; top: bigint | null }>(this.#late, [cursor.checkedRowid, cursor.posTime, cursor.posRowid]))!;
        const top = (await this.#maxRowid(tx)) ?? 0n;
        const upTo = max !== null && max > top ? max : top;
        if (upTo > cursor.checkedRowid) look.checked = { late: Number(n), upTo };
      }
      const read = await this.#read(tx, cursor, limit);
      if (read) look.read = read;
      else if (this.#t.timeColumn === null && cursor.posRowid > 0n) {
        const max = (await this.#maxRowid(tx)) ?? 0n;
        if (max < cursor.posRowid) look.rewindTo = max;
      }
      return look;
    });
  }

  async #maxRowid(tx: SqliteQueryable): Promise<bigint | null> {
    return ((await tx.get<{ top: bigint | null }>(this.#max))!).top;
  }

  async #read(tx: SqliteQueryable, cursor: TelemetryCursor, limit: number): Promise<TelemetryRead | undefined> {
    const t = this.#t;
    let found: SqliteRow[];
    if (t.timeColumn === null) found = await tx.all(this.#first, [cursor.posRowid, limit]);
    else if (cursor.posTime === null) found = await tx.all(this.#first, [limit]);
    else found = await tx.all(this.#next, [cursor.posTime, cursor.posRowid, limit]);
    const rows = found.map(rawRow);
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
      for (let j = 1; j < raw.length; j++) row[j - 1] = encodeValue(raw[j]!);
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
}
