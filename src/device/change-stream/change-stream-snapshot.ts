import type { SqlValue } from '../../protocol/values.js';
import { readStoredTables } from '../capture/capture-table.js';
import { quoteIdent } from '../capture/sql-text.js';
import { keyColumnsOf, readTableShape } from '../capture/table-shape.js';
import type { SqliteDriver, SqliteQueryable, SqliteValue } from '../driver/sqlite-driver.js';
import { maxJournalSeq } from '../journal/journal-state.js';
import { sharedTableNames } from '../twoway/shared-state.js';
import { rowValues, type ChangeEvent } from './change-stream-event.js';

/**
 * The bootstrap of a change stream: every current row of the selected tables, and
 * the journal seq they are consistent with, read inside ONE read transaction of
 * the stream's driver, so the rows reflect exactly the commits whose journal
 * entries are <= `seq`, and the live stream continues with the entries > `seq`: no
 * change is missed and none is delivered twice, however much the app writes
 * meanwhile. (Wippy's bootstrap reads rows and subscribes to live changes
 * separately, so the two overlap.)
 *
 * Inside that transaction SQLite copies each table into a TEMP table of the
 * connection (one statement per table, at SQLite's own speed), and the transaction
 * ends; the subscriber then takes the copies a page at a time. Holding the read
 * transaction open while the subscriber reads instead would, on a driver with one
 * connection (the browser's OPFS database), hold up every other call on it, the
 * app's writes included, for as long as the subscriber takes, and on a file it
 * keeps the WAL from being checkpointed meanwhile. The copies sit in SQLite's
 * temp store (a temporary file with better-sqlite3, memory in the browser), not
 * in the JS heap; no other connection sees them, and close() drops them.
 */

/** Rows per query: one round trip per page, never one per row. */
const PAGE = 1000;

/** Numbers the copies of each snapshot, so two streams on one connection never share a TEMP table. */
let snapshots = 0;

interface TableCopy {
  table: string;
  /** The TEMP table holding the rows, in the order of the original's rowid (or key). */
  copy: string;
  keyNames: string[];
  columnNames: string[];
  page: string;
}

/**
 * Copies `table` into the TEMP table `copy` in the order of its rowid where it has
 * one (unique and never NULL), else of its declared key (a WITHOUT ROWID table's
 * key is NOT NULL). The copy's columns are named k0.., c0.. and declare no type, so
 * every value keeps its storage class (a declared type would apply its affinity).
 */
async function copyTable(tx: SqliteQueryable, table: string, copy: string): Promise<TableCopy | undefined> {
  // The table's current shape, read inside the transaction, so the columns are those of the rows.
  const shape = await readTableShape(tx, table);
  const keyColumns = shape ? keyColumnsOf(shape) : undefined;
  if (!shape || !keyColumns) return undefined;
  const columns = shape.columns.map((c) => c.name);
  const order = !shape.withoutRowid && shape.rowidAlias ? [shape.rowidAlias] : keyColumns;
  const names = [...keyColumns.map((_, i) => `k${i}`), ...columns.map((_, i) => `c${i}`)];
  const select = [...keyColumns, ...columns].map((c) => `s.${quoteIdent(c)}`).join(', ');
  await tx.exec(`CREATE TEMP TABLE ${quoteIdent(copy)} (${names.join(', ')})`);
  await tx.run(`INSERT INTO temp.${quoteIdent(copy)} (${names.join(', ')}) SELECT ${select} FROM ${quoteIdent(table)} AS s ORDER BY ${order.map((c) => `s.${quoteIdent(c)}`).join(', ')}`);
  return {
    table,
    copy,
    keyNames: shape.key.columns,
    columnNames: columns,
    // The copy's rowids follow the insert order; the first value of each row is the rowid to continue after.
    page: `SELECT rowid, ${names.join(', ')} FROM temp.${quoteIdent(copy)} WHERE rowid > ? ORDER BY rowid LIMIT ${PAGE}`,
  };
}

export class SnapshotReader {
  /** The journal high-water seq the snapshot is consistent with. */
  readonly seq: number;
  /** When the read transaction began (the `at` of every snapshot event). */
  readonly at: number;
  readonly #db: SqliteDriver;
  readonly #copies: TableCopy[];
  #copyIndex = 0;
  /** The current page and the next row in it; the page is refilled before it runs dry, so `done` is known with the last row. */
  #page: SqliteValue[][] = [];
  #pageAt = 0;
  #after = 0n;
  #done = false;
  #closed = false;

  private constructor(db: SqliteDriver, at: number, seq: number, copies: TableCopy[]) {
    this.#db = db;
    this.at = at;
    this.seq = seq;
    this.#copies = copies;
  }

  /** `selects` decides by the table's stored name. */
  static async open(db: SqliteDriver, selects: (table: string) => boolean): Promise<SnapshotReader> {
    const id = ++snapshots;
    const copies: TableCopy[] = [];
    const at = Date.now();
    let seq = 0;
    try {
      await db.readTransaction(async (tx) => {
        // The first read fixes the transaction's snapshot: everything below sees the same commit.
        seq = await maxJournalSeq(tx);
        // Edge-captured tables and two-way ones: both write the one journal the live stream continues from.
        const captured = new Set([...(await readStoredTables(tx)).keys(), ...(await sharedTableNames(tx))]);
        for (const table of [...captured].filter(selects).sort()) {
          const copy = await copyTable(tx, table, `_syncline_snapshot_${id}_${copies.length}`);
          if (copy) copies.push(copy);
        }
      });
      const reader = new SnapshotReader(db, at, seq, copies);
      await reader.#fillPage();
      return reader;
    } catch (error) {
      await dropCopies(db, copies);
      throw error;
    }
  }

  /** True once the last row has been returned by read(). */
  get done(): boolean {
    return this.#done;
  }

  /** Up to `limit` snapshot events; `done` tells whether the last one is among them. */
  async read(limit: number): Promise<ChangeEvent[]> {
    const events: ChangeEvent[] = [];
    while (events.length < limit && !this.#done) {
      const copy = this.#copies[this.#copyIndex]!;
      const raw = this.#page[this.#pageAt++]! as SqlValue[];
      // raw: the copy's rowid, the key columns, the table's columns.
      const keyEnd = 1 + copy.keyNames.length;
      events.push({
        op: 'snapshot',
        table: copy.table,
        key: rowValues(copy.keyNames, raw.slice(1, keyEnd)),
        after: rowValues(copy.columnNames, raw.slice(keyEnd)),
        seq: this.seq,
        origin: 'local',
        at: this.at,
      });
      if (this.#pageAt >= this.#page.length) await this.#fillPage();
    }
    return events;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#done = true;
    this.#page = [];
    await dropCopies(this.#db, this.#copies);
  }

  /** The next page of the current copy, or of the copies after it; closes the reader after the last row. */
  async #fillPage(): Promise<void> {
    while (this.#copyIndex < this.#copies.length) {
      const copy = this.#copies[this.#copyIndex]!;
      const rows = this.#db.values ? await this.#db.values(copy.page, [this.#after]) : (await this.#db.all(copy.page, [this.#after])).map((row) => Object.values(row));
      if (rows.length > 0) {
        this.#page = rows;
        this.#pageAt = 0;
        this.#after = rows[rows.length - 1]![0] as bigint;
        return;
      }
      this.#copyIndex += 1;
      this.#after = 0n;
    }
    await this.close();
  }
}

/** Drops the copies and hands back the cache pages they took (the temp store's cache grows up to SQLite's cache size and keeps its pages). */
async function dropCopies(db: SqliteDriver, copies: readonly TableCopy[]): Promise<void> {
  if (copies.length === 0) return;
  await db.exec(`${copies.map((c) => `DROP TABLE IF EXISTS temp.${quoteIdent(c.copy)}`).join('; ')}; PRAGMA shrink_memory`);
}
