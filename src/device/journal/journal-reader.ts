import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import type { SqlValue } from '../../protocol/values.js';
import type { SqliteParam, SqliteQueryable, SqliteValue } from '../driver/sqlite-driver.js';
import { BEFORE_IMAGE_MARK, JOURNAL_FIXED_COLUMNS, JournalOps, JournalTables, type JournalOp, type JournalOrigin } from './journal-schema.js';
import { slotLayout, slotsNeeded, type SlotLayout } from './journal-slots.js';

/** A schema a journal entry refers to (`_syncline_schemas`), with the slot layout of its entries. */
export interface CapturedSchema {
  id: number;
  table: string;
  hash: string;
  columns: ColumnInfo[];
  key: TableKey;
  layout: SlotLayout;
}

/** A journal entry as stored: its value slots as read, sorted into key and rows only when needed. */
export interface RawJournalEntry {
  seq: number;
  table: string;
  op: JournalOp;
  /** The entry holds the old row too (op U+ or D+). */
  beforeImage: boolean;
  /** The app's change ('L') or a remote one two-way sync applied ('R'). */
  origin: JournalOrigin;
  /** Slot values (journal-slots.ts), as wide as the journal. */
  values: SqlValue[];
  schemaId: number;
  /** Why the entry cannot be decoded; decode() throws it, so the entry alone is set aside. */
  corrupt?: string;
}

/** A journal entry with its values decoded; `row` and `oldRow` follow `columns`. */
export interface JournalEntry {
  seq: number;
  table: string;
  op: JournalOp;
  pk: SqlValue[];
  row?: SqlValue[];
  /** Only for updates and deletes of tables captured with before-images. */
  oldRow?: SqlValue[];
  schema: CapturedSchema;
  columns: readonly ColumnInfo[];
}

const OPS = new Set<string>(Object.values(JournalOps));

/**
 * Reads the journal in seq order. Schemas are immutable once written (a schema
 * change gets a new record), so they are cached by id for the reader's lifetime.
 * The read selects every slot column, so it always has the journal's current
 * width; the driver keeps the statement prepared, and SQLite re-prepares it when
 * capture widens the journal.
 */
export class JournalReader {
  readonly #db: SqliteQueryable;
  readonly #schemas = new Map<number, CapturedSchema>();

  /** The journal must exist (capture installed) before the first read. Pass a transaction to read inside it. */
  constructor(db: SqliteQueryable) {
    this.#db = db;
  }

  /** Up to `limit` entries with seq > afterSeq, oldest first: one query for the whole chunk. */
  async readRaw(afterSeq: number, limit: number): Promise<RawJournalEntry[]> {
    return this.#rawEntries(await this.#tuples(`SELECT * FROM ${JournalTables.journal} WHERE seq > ? ORDER BY seq LIMIT ?`, [BigInt(afterSeq), limit]));
  }

  /** Like readRaw, decoded. */
  async read(afterSeq: number, limit: number): Promise<JournalEntry[]> {
    const raws = await this.readRaw(afterSeq, limit);
    const entries = new Array<JournalEntry>(raws.length);
    for (let i = 0; i < raws.length; i++) entries[i] = this.decode(raws[i]!);
    return entries;
  }

  /** The table's entries after `afterSeq` written under any schema but `schemaId`, decoded, oldest first. */
  async readOtherSchemas(table: string, afterSeq: number, schemaId: number): Promise<JournalEntry[]> {
    const rows = await this.#tuples(
      `SELECT * FROM ${JournalTables.journal} WHERE seq > ? AND schema_id IN (SELECT id FROM ${JournalTables.schemas} WHERE tbl = ? AND id <> ?) ORDER BY seq`,
      [BigInt(afterSeq), table, BigInt(schemaId)],
    );
    const entries: JournalEntry[] = [];
    for (const raw of await this.#rawEntries(rows)) entries.push(this.decode(raw));
    return entries;
  }

  /** Rows of `SELECT *`: the fixed columns (JOURNAL_FIXED_COLUMNS), then the slots, in column order (an object keeps its columns in that order). */
  /** Rows as value arrays: the driver's fast path where it has one (no object per row), else its objects' values. */
  async #tuples(sql: string, params: SqliteParam[]): Promise<SqliteValue[][]> {
    if (this.#db.values) return this.#db.values(sql, params);
    return (await this.#db.all(sql, params)).map((row) => Object.values(row));
  }

  async #rawEntries(rows: SqliteValue[][]): Promise<RawJournalEntry[]> {
    const entries = new Array<RawJournalEntry>(rows.length);
    for (let t = 0; t < rows.length; t++) {
      const tuple = rows[t]!;
      const seq = Number(tuple[0]);
      const schemaId = Number(tuple[1]);
      const op = tuple[2] as string;
      const beforeImage = op.endsWith(BEFORE_IMAGE_MARK);
      const base = beforeImage ? op.slice(0, -BEFORE_IMAGE_MARK.length) : op;
      const values = tuple.slice(JOURNAL_FIXED_COLUMNS.length) as SqlValue[];
      const table = (this.#schemas.get(schemaId) ?? (await this.schema(schemaId))).table;
      entries[t] = { seq, table, op: base as JournalOp, beforeImage, origin: tuple[3] as JournalOrigin, values, schemaId };
      if (!OPS.has(base)) entries[t]!.corrupt = `journal entry ${seq} has an unknown op ${JSON.stringify(op)}`;
    }
    return entries;
  }

  /** Sorts an entry's slots into key and rows; its schema was loaded when the entry was read, so this needs no query. */
  decode(raw: RawJournalEntry): JournalEntry {
    if (raw.corrupt) throw new SynclineError('journal_corrupt', raw.corrupt, { table: raw.table, seq: raw.seq });
    const schema = this.#schemas.get(raw.schemaId)!;
    const { layout } = schema;
    if (raw.values.length < slotsNeeded(layout, raw.beforeImage)) {
      throw new SynclineError('journal_corrupt', `journal entry ${raw.seq} has ${raw.values.length} value slots, its schema needs ${slotsNeeded(layout, raw.beforeImage)}`, { table: raw.table, seq: raw.seq });
    }
    const { values } = raw;
    const pk = new Array<SqlValue>(layout.keySlots.length);
    for (let i = 0; i < pk.length; i++) pk[i] = values[layout.keySlots[i]!]!;
    const entry: JournalEntry = { seq: raw.seq, table: raw.table, op: raw.op, pk, schema, columns: schema.columns };
    if (raw.op === JournalOps.delete) {
      if (raw.beforeImage) entry.oldRow = values.slice(0, layout.rowSlots);
    } else {
      entry.row = values.slice(0, layout.rowSlots);
      if (raw.beforeImage) entry.oldRow = values.slice(layout.beforeImageStart, layout.beforeImageStart + layout.rowSlots);
    }
    return entry;
  }

  /** A schema by id; read once, then from the cache. */
  async schema(id: number): Promise<CapturedSchema> {
    const cached = this.#schemas.get(id);
    if (cached) return cached;
    const row = await this.#db.get<{ id: bigint; tbl: string; hash: string; columns: string; key: string }>(`SELECT id, tbl, hash, columns, key FROM ${JournalTables.schemas} WHERE id = ?`, [BigInt(id)]);
    if (!row) throw new SynclineError('journal_corrupt', `journal refers to unknown schema ${id}`, { schema_id: id });
    const columns = JSON.parse(row.columns) as ColumnInfo[];
    const key = JSON.parse(row.key) as TableKey;
    const schema: CapturedSchema = { id, table: row.tbl, hash: row.hash, columns, key, layout: slotLayout(columns.map((c) => c.name), key) };
    this.#schemas.set(id, schema);
    return schema;
  }

  /** The schema of an entry this reader has read (its schema is cached by then). */
  schemaOf(raw: RawJournalEntry): CapturedSchema {
    return this.#schemas.get(raw.schemaId)!;
  }

  async maxSeq(): Promise<number> {
    const row = await this.#db.get<{ seq: bigint | null }>(`SELECT max(seq) AS seq FROM ${JournalTables.journal}`);
    return row!.seq === null ? 0 : Number(row!.seq);
  }
}
