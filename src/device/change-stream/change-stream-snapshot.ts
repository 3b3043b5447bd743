import type { Statement } from 'better-sqlite3';
import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import { readStoredTables } from '../capture/capture-table.js';
import { rowValues, type ChangeEvent } from './change-stream-event.js';
import { openDeviceDb, type DeviceDb } from '../journal/device-db.js';
import { maxJournalSeq } from '../journal/journal-state.js';
import { quoteIdent } from '../capture/sql-text.js';
import { keyColumnsOf, readTableShape } from '../capture/table-shape.js';

/**
 * The bootstrap of a change stream: every current row of the selected tables, and
 * the journal seq they are consistent with, read inside ONE read transaction on a
 * connection of its own. WAL gives that transaction a fixed snapshot of the file,
 * so the rows reflect exactly the commits whose journal entries are <= `seq`, and
 * the live stream continues with the entries > `seq`: no change is missed and none
 * is delivered twice, however much the app writes meanwhile. (Wippy's bootstrap
 * reads rows and subscribes to live changes separately, so the two overlap.)
 *
 * Rows are read lazily, as the subscriber takes them, so a large table never sits
 * in memory; the transaction stays open until the last row. It does not block
 * writers; it only keeps the WAL from being checkpointed past it meanwhile.
 */

interface TablePlan {
  table: string;
  keyNames: string[];
  columnNames: string[];
  sql: string;
}

type RawRow = SqlValue[];

/** Blobs come back as Buffers; events carry plain Uint8Arrays, as live events do. */
function plain(value: unknown): SqlValue {
  return Buffer.isBuffer(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : (value as SqlValue);
}

export class SnapshotReader {
  /** The journal high-water seq the snapshot is consistent with. */
  readonly seq: number;
  /** When the read transaction began (the `at` of every snapshot event). */
  readonly at: number;
  readonly #db: DeviceDb;
  readonly #plans: TablePlan[];
  #planIndex = -1;
  #rows: IterableIterator<RawRow> | undefined;
  #next: RawRow | undefined;
  #done = false;

  /** `selects` decides by the table's stored name. The file is opened a second time; a ':memory:' database cannot be snapshotted. */
  constructor(path: string, selects: (table: string) => boolean, busyTimeoutMs?: number) {
    if (path === '' || path === ':memory:') throw new SynclineError('invalid_config', 'a snapshot needs a database file (it reads on a connection of its own)', { field: 'snapshot' });
    this.#db = openDeviceDb(path, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
    try {
      this.#db.exec('BEGIN');
      this.at = Date.now();
      // The first read fixes the transaction's WAL snapshot: everything below sees the same commit.
      this.seq = maxJournalSeq(this.#db);
      this.#plans = [...readStoredTables(this.#db).keys()].filter(selects).sort().flatMap((table) => this.#plan(table));
      this.#advance();
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** True once the last row has been returned by read(). */
  get done(): boolean {
    return this.#done;
  }

  /** Up to `limit` snapshot events; `done` tells whether the last one is among them. */
  read(limit: number): ChangeEvent[] {
    const events: ChangeEvent[] = [];
    while (events.length < limit && this.#next) {
      const plan = this.#plans[this.#planIndex]!;
      const raw = this.#next;
      const keyWidth = plan.keyNames.length;
      events.push({
        op: 'snapshot',
        table: plan.table,
        key: rowValues(plan.keyNames, raw.slice(0, keyWidth).map(plain)),
        after: rowValues(plan.columnNames, raw.slice(keyWidth).map(plain)),
        seq: this.seq,
        origin: 'local',
        at: this.at,
      });
      this.#advance();
    }
    return events;
  }

  close(): void {
    this.#rows?.return?.();
    this.#rows = undefined;
    this.#next = undefined;
    if (this.#db.open) {
      if (this.#db.inTransaction) this.#db.exec('COMMIT');
      this.#db.close();
    }
  }

  /** The table's current shape, read inside the transaction, so the columns are those of the rows. */
  #plan(table: string): TablePlan[] {
    const shape = readTableShape(this.#db, table);
    const keyColumns = shape ? keyColumnsOf(shape) : undefined;
    if (!shape || !keyColumns) return [];
    const select = [...keyColumns, ...shape.columns.map((c) => c.name)].map((c) => `s.${quoteIdent(c)}`).join(', ');
    return [{ table, keyNames: shape.key.columns, columnNames: shape.columns.map((c) => c.name), sql: `SELECT ${select} FROM ${quoteIdent(table)} AS s` }];
  }

  /** Looks one row ahead, so the reader knows which event is the last. */
  #advance(): void {
    for (;;) {
      if (this.#rows) {
        const step = this.#rows.next();
        if (!step.done) {
          this.#next = step.value;
          return;
        }
        this.#rows = undefined;
      }
      this.#planIndex += 1;
      const plan = this.#plans[this.#planIndex];
      if (!plan) {
        this.#next = undefined;
        this.#done = true;
        this.close();
        return;
      }
      const statement = this.#db.prepare(plan.sql).raw(true) as Statement<[], RawRow>;
      this.#rows = statement.iterate() as IterableIterator<RawRow>;
    }
  }
}
