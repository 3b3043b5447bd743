import { SynclineError } from '../../protocol/errors.js';
import type { SqlValue } from '../../protocol/values.js';
import type { JournalEntry, RawJournalEntry } from '../journal/journal-reader.js';
import { JournalOrigins, type JournalOp } from '../journal/journal-schema.js';

/**
 * What a change-stream subscriber receives. Built from journal entries (live
 * changes) or from a table scan (snapshot bootstrap); both use the same shape so a
 * consumer has one code path.
 */

export type ChangeOp = 'insert' | 'update' | 'delete' | 'snapshot';

/** Who made the change: this device's app ('local') or the cloud through two-way sync ('remote'). */
export type ChangeOrigin = 'local' | 'remote';

/** Column name -> value, in the table's column order. */
export type RowValues = Record<string, SqlValue>;

export interface ChangeEvent {
  /**
   * - insert/update/delete: a change the capture triggers journaled. A key change
   *   arrives as a delete of the old key followed by an update of the new key.
   * - snapshot: the row's full current content, to be applied as an upsert. Bootstrap
   *   rows are snapshots, and so are the journal's own snapshot entries, which capture
   *   appends when it (re)installs a table (first capture, a rebuilt table, a new epoch):
   *   they may repeat rows the subscriber already has, so 'insert' would be a lie.
   */
  op: ChangeOp;
  /** The table's name as SQLite stores it, whatever case the allowlist used. */
  table: string;
  /** Key columns -> values; `{ rowid }` for tables without a declared primary key. */
  key: RowValues;
  /** The old row: updates and deletes of tables captured with before-images only. */
  before?: RowValues;
  /** The new row: inserts, updates and snapshots. */
  after?: RowValues;
  /**
   * The journal seq, increasing in commit order. Bootstrap snapshot events all carry
   * the journal high-water seq they are consistent with; live events follow with
   * higher seqs.
   */
  seq: number;
  origin: ChangeOrigin;
  /**
   * When this stream read the change (ms since the Unix epoch): for live events the
   * moment the poll that found the entry ran, for bootstrap snapshot events the start
   * of the snapshot's read transaction. It is not the commit time (the journal does
   * not record one, to keep captured writes cheap); for a stream that is caught up it
   * trails the commit by at most one poll interval plus the read itself.
   */
  at: number;
}

const OPS: Record<JournalOp, ChangeOp> = { I: 'insert', U: 'update', D: 'delete', S: 'snapshot' };

export function changeOpOf(op: string, seq: number): ChangeOp {
  const mapped = OPS[op as JournalOp];
  if (!mapped) throw new SynclineError('journal_corrupt', `journal entry ${seq} has unknown op ${JSON.stringify(op).slice(0, 20)}`, { seq });
  return mapped;
}

/** The one place the stream decides origin: the journal entry's own column (two-way sync marks what it applied). */
export function originOf(entry: Pick<RawJournalEntry, 'origin'>): ChangeOrigin {
  return entry.origin === JournalOrigins.remote ? 'remote' : 'local';
}

/** An object from parallel name/value lists; a column called `__proto__` becomes an own property, not the prototype. */
export function rowValues(names: readonly string[], values: readonly SqlValue[]): RowValues {
  const row: RowValues = {};
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (name === '__proto__') Object.defineProperty(row, name, { value: values[i] ?? null, enumerable: true, writable: true, configurable: true });
    else row[name] = values[i] ?? null;
  }
  return row;
}

/** Turns decoded journal entries into events; column names are looked up once per schema. */
export class EventBuilder {
  readonly #names = new Map<number, string[]>();

  fromEntry(entry: JournalEntry, origin: ChangeOrigin, at: number): ChangeEvent {
    let names = this.#names.get(entry.schema.id);
    if (!names) {
      names = entry.columns.map((c) => c.name);
      this.#names.set(entry.schema.id, names);
    }
    const event: ChangeEvent = {
      op: changeOpOf(entry.op, entry.seq),
      table: entry.table,
      key: rowValues(entry.schema.key.columns, entry.pk),
      seq: entry.seq,
      origin,
      at,
    };
    if (entry.oldRow) event.before = rowValues(names, entry.oldRow);
    if (entry.row) event.after = rowValues(names, entry.row);
    return event;
  }
}
