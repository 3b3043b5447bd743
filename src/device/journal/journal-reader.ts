import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import type { SqlValue } from '../../protocol/values.js';
import type { Statement } from 'better-sqlite3';
import type { DeviceDb } from './device-db.js';
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

type RawTuple = [bigint, bigint, string, JournalOrigin, bigint | null, ...SqlValue[]];

const OPS = new Set<string>(Object.values(JournalOps));

/** better-sqlite3 returns BLOBs as Buffers; SqlValue promises a plain Uint8Array (a view, no copy). */
function plainBytes(value: SqlValue): SqlValue {
  return value instanceof Uint8Array && !(value.constructor === Uint8Array) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value;
}

/**
 * Reads the journal in seq order. Schemas are immutable once written (a schema
 * change gets a new record), so they are cached by id for the reader's lifetime.
 * The read statement selects every slot column; SQLite re-prepares it when
 * capture widens the journal, so the width always matches.
 */
export class JournalReader {
  readonly #db: DeviceDb;
  readonly #schemas = new Map<number, CapturedSchema>();
  #readStmt: Statement<[bigint, number], RawTuple> | undefined;
  #maxStmt: Statement<[], bigint | null> | undefined;

  /** The journal must exist (capture installed) before the first read. */
  constructor(db: DeviceDb) {
    this.#db = db;
  }

  /** Up to `limit` entries with seq > afterSeq, oldest first. */
  readRaw(afterSeq: number, limit: number): RawJournalEntry[] {
    this.#readStmt ??= this.#db
      .prepare<[bigint, number], RawTuple>(`SELECT * FROM ${JournalTables.journal} WHERE seq > ? ORDER BY seq LIMIT ?`)
      .raw(true)
      .safeIntegers(true);
    return this.#rawEntries(this.#readStmt.all(BigInt(afterSeq), limit) as unknown as RawTuple[]);
  }

  /** Like readRaw, decoded. */
  read(afterSeq: number, limit: number): JournalEntry[] {
    return this.readRaw(afterSeq, limit).map((raw) => this.decode(raw));
  }

  /** The table's entries after `afterSeq` written under any schema but `schemaId`, decoded, oldest first. */
  readOtherSchemas(table: string, afterSeq: number, schemaId: number): JournalEntry[] {
    const tuples = this.#db
      .prepare(`SELECT * FROM ${JournalTables.journal} WHERE seq > ? AND schema_id IN (SELECT id FROM ${JournalTables.schemas} WHERE tbl = ? AND id <> ?) ORDER BY seq`)
      .raw(true)
      .safeIntegers(true)
      .all(BigInt(afterSeq), table, BigInt(schemaId)) as unknown as RawTuple[];
    return this.#rawEntries(tuples).map((raw) => this.decode(raw));
  }

  #rawEntries(tuples: RawTuple[]): RawJournalEntry[] {
    const entries = new Array<RawJournalEntry>(tuples.length);
    for (let t = 0; t < tuples.length; t++) {
      const tuple = tuples[t]!;
      const seq = Number(tuple[0]);
      const schemaId = Number(tuple[1]);
      const op = tuple[2];
      const beforeImage = op.endsWith(BEFORE_IMAGE_MARK);
      const base = beforeImage ? op.slice(0, -BEFORE_IMAGE_MARK.length) : op;
      const values = tuple.slice(JOURNAL_FIXED_COLUMNS.length) as SqlValue[];
      for (let i = 0; i < values.length; i++) values[i] = plainBytes(values[i]!);
      entries[t] = { seq, table: this.schema(schemaId).table, op: base as JournalOp, beforeImage, origin: tuple[3], values, schemaId };
      if (!OPS.has(base)) entries[t]!.corrupt = `journal entry ${seq} has an unknown op ${JSON.stringify(op)}`;
    }
    return entries;
  }

  decode(raw: RawJournalEntry): JournalEntry {
    if (raw.corrupt) throw new SynclineError('journal_corrupt', raw.corrupt, { table: raw.table, seq: raw.seq });
    const schema = this.schema(raw.schemaId);
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

  schema(id: number): CapturedSchema {
    const cached = this.#schemas.get(id);
    if (cached) return cached;
    const row = this.#db.prepare(`SELECT id, tbl, hash, columns, key FROM ${JournalTables.schemas} WHERE id = ?`).get(BigInt(id)) as
      | { id: bigint; tbl: string; hash: string; columns: string; key: string }
      | undefined;
    if (!row) throw new SynclineError('journal_corrupt', `journal refers to unknown schema ${id}`, { schema_id: id });
    const columns = JSON.parse(row.columns) as ColumnInfo[];
    const key = JSON.parse(row.key) as TableKey;
    const schema: CapturedSchema = { id, table: row.tbl, hash: row.hash, columns, key, layout: slotLayout(columns.map((c) => c.name), key) };
    this.#schemas.set(id, schema);
    return schema;
  }

  maxSeq(): number {
    this.#maxStmt ??= this.#db.prepare<[], bigint | null>(`SELECT max(seq) FROM ${JournalTables.journal}`).pluck(true);
    const row = this.#maxStmt.get() ?? null;
    return row === null ? 0 : Number(row);
  }
}
