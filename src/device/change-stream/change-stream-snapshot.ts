import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import { readStoredTables } from '../capture/capture-table.js';
import { quoteIdent } from '../capture/sql-text.js';
import { keyColumnsOf, readTableShape } from '../capture/table-shape.js';
import { BetterSqlite3Driver } from '../driver/better-sqlite3-driver.js';
import type { SqliteDriver, SqliteParam, SqliteQueryable } from '../driver/sqlite-driver.js';
import { maxJournalSeq } from '../journal/journal-state.js';
import { sharedTableNames } from '../twoway/shared-state.js';
import { rowValues, type ChangeEvent } from './change-stream-event.js';

/**
 * The bootstrap of a change stream: every current row of the selected tables, and
 * the journal seq they are consistent with, read inside ONE read transaction on a
 * connection of its own. WAL gives that transaction a fixed snapshot of the file,
 * so the rows reflect exactly the commits whose journal entries are <= `seq`, and
 * the live stream continues with the entries > `seq`: no change is missed and none
 * is delivered twice, however much the app writes meanwhile. (Wippy's bootstrap
 * reads rows and subscribes to live changes separately, so the two overlap.)
 *
 * Rows are read a page at a time as the subscriber takes them, so a large table
 * never sits in memory; the transaction stays open until the last page. It does
 * not block writers; it only keeps the WAL from being checkpointed past it meanwhile.
 */

/** Rows per query: one round trip per page, never one per row. */
const PAGE = 1000;

interface TablePlan {
  table: string;
  keyNames: string[];
  columnNames: string[];
  /** Columns the pages are ordered and continued by (o0, o1, ... in the select list). */
  order: number;
  first: string;
  next: string;
}

/**
 * Pages follow the rowid where the table has one (unique and never NULL), else the
 * declared key (a WITHOUT ROWID table's key is NOT NULL). Every column is selected
 * under a name of its own (o0.., k0.., c0..) so values keep their order whatever
 * the app called its columns.
 */
function planFor(table: string, keyColumns: string[], columns: string[], withoutRowid: boolean, rowidAlias: string | undefined): TablePlan {
  const order = !withoutRowid && rowidAlias ? [rowidAlias] : keyColumns;
  const select = [
    ...order.map((c, i) => `s.${quoteIdent(c)} AS o${i}`),
    ...keyColumns.map((c, i) => `s.${quoteIdent(c)} AS k${i}`),
    ...columns.map((c, i) => `s.${quoteIdent(c)} AS c${i}`),
  ].join(', ');
  const orderBy = order.map((c) => `s.${quoteIdent(c)}`).join(', ');
  const from = `SELECT ${select} FROM ${quoteIdent(table)} AS s`;
  return {
    table,
    keyNames: [],
    columnNames: columns,
    order: order.length,
    first: `${from} ORDER BY ${orderBy} LIMIT ${PAGE}`,
    next: `${from} WHERE (${orderBy}) > (${order.map(() => '?').join(', ')}) ORDER BY ${orderBy} LIMIT ${PAGE}`,
  };
}

export class SnapshotReader {
  /** The journal high-water seq the snapshot is consistent with. */
  readonly seq: number;
  /** When the read transaction began (the `at` of every snapshot event). */
  readonly at: number;
  readonly #driver: SqliteDriver;
  readonly #tx: SqliteQueryable;
  readonly #finish: () => void;
  readonly #transaction: Promise<void>;
  readonly #plans: TablePlan[];
  #planIndex = 0;
  /** The current page and the next row in it; the page is refilled before it runs dry, so `done` is known with the last row. */
  #page: SqlValue[][] = [];
  #pageAt = 0;
  #after: SqliteParam[] | undefined;
  #done = false;
  #closed = false;

  private constructor(driver: SqliteDriver, tx: SqliteQueryable, finish: () => void, transaction: Promise<void>, seq: number, plans: TablePlan[]) {
    this.#driver = driver;
    this.#tx = tx;
    this.#finish = finish;
    this.#transaction = transaction;
    this.at = Date.now();
    this.seq = seq;
    this.#plans = plans;
  }

  /** `selects` decides by the table's stored name. The file is opened a second time; a ':memory:' database cannot be snapshotted. */
  static async open(path: string, selects: (table: string) => boolean, busyTimeoutMs?: number): Promise<SnapshotReader> {
    if (path === '' || path === ':memory:') throw new SynclineError('invalid_config', 'a snapshot needs a database file (it reads on a connection of its own)', { field: 'snapshot' });
    const driver = BetterSqlite3Driver.open(path, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
    // The read transaction stays open until close(): `finish` lets it end.
    let finish = () => {};
    const held = new Promise<void>((resolve) => (finish = resolve));
    let opened: (tx: SqliteQueryable) => void = () => {};
    const inside = new Promise<SqliteQueryable>((resolve) => (opened = resolve));
    const transaction = driver.readTransaction(async (tx) => {
      opened(tx);
      await held;
    });
    try {
      const tx = await Promise.race([inside, transaction.then(() => Promise.reject(new Error('the snapshot transaction ended early')))]);
      // The first read fixes the transaction's WAL snapshot: everything below sees the same commit.
      const seq = await maxJournalSeq(tx);
      const plans: TablePlan[] = [];
      // Edge-captured tables and two-way ones: both write the one journal the live stream continues from.
      const captured = new Set([...(await readStoredTables(tx)).keys(), ...(await sharedTableNames(tx))]);
      for (const table of [...captured].filter(selects).sort()) {
        // The table's current shape, read inside the transaction, so the columns are those of the rows.
        const shape = await readTableShape(tx, table);
        const keyColumns = shape ? keyColumnsOf(shape) : undefined;
        if (!shape || !keyColumns) continue;
        const plan = planFor(table, keyColumns, shape.columns.map((c) => c.name), shape.withoutRowid, shape.rowidAlias);
        plan.keyNames = shape.key.columns;
        plans.push(plan);
      }
      const reader = new SnapshotReader(driver, tx, finish, transaction, seq, plans);
      await reader.#fillPage();
      return reader;
    } catch (error) {
      finish();
      await transaction.catch(() => undefined);
      await driver.close();
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
      const plan = this.#plans[this.#planIndex]!;
      const raw = this.#page[this.#pageAt++]!;
      const keyStart = plan.order;
      const keyEnd = keyStart + plan.keyNames.length;
      events.push({
        op: 'snapshot',
        table: plan.table,
        key: rowValues(plan.keyNames, raw.slice(keyStart, keyEnd)),
        after: rowValues(plan.columnNames, raw.slice(keyEnd)),
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
    this.#finish();
    await this.#transaction.catch(() => undefined);
    await this.#driver.close();
  }

  /** The next page of the current table, or of the tables after it; closes the reader after the last row. */
  async #fillPage(): Promise<void> {
    while (this.#planIndex < this.#plans.length) {
      const plan = this.#plans[this.#planIndex]!;
      const rows = this.#after === undefined ? await this.#tx.all(plan.first) : await this.#tx.all(plan.next, this.#after);
      if (rows.length > 0) {
        this.#page = rows.map((row) => Object.values(row) as SqlValue[]);
        this.#pageAt = 0;
        const last = this.#page[this.#page.length - 1]!;
        this.#after = last.slice(0, plan.order);
        return;
      }
      this.#planIndex += 1;
      this.#after = undefined;
    }
    await this.close();
  }
}
