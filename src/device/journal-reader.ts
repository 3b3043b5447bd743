import { SynclineError } from '../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../protocol/schema.js';
import type { SqlValue } from '../protocol/values.js';
import type { Statement } from 'better-sqlite3';
import type { DeviceDb } from './device-db.js';
import { JournalTables, type JournalOp } from './journal-schema.js';
import { parseLiteralList } from './sql-literal.js';

/** A schema a journal entry refers to (`_syncline_schemas`). */
export interface CapturedSchema {
  id: number;
  table: string;
  hash: string;
  columns: ColumnInfo[];
  key: TableKey;
}

/** A journal entry as stored: values still in quote() form, decoded only when needed. */
export interface RawJournalEntry {
  seq: number;
  table: string;
  op: JournalOp;
  pk: string;
  row: string | null;
  oldRow: string | null;
  schemaId: number;
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

type RawTuple = [bigint, string, string, string, string | null, string | null, bigint];

/**
 * Reads the journal in seq order. Schemas are immutable once written (a schema
 * change gets a new record), so they are cached by id for the reader's lifetime.
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
      .prepare<[bigint, number], RawTuple>(`SELECT seq, tbl, op, pk, row, old_row, schema_id FROM ${JournalTables.journal} WHERE seq > ? ORDER BY seq LIMIT ?`)
      .raw(true);
    const rows = this.#readStmt.all(BigInt(afterSeq), limit) as unknown as RawTuple[];
    return rows.map(([seq, table, op, pk, row, oldRow, schemaId]) => ({
      seq: Number(seq),
      table,
      op: op as JournalOp,
      pk,
      row,
      oldRow,
      schemaId: Number(schemaId),
    }));
  }

  /** Like readRaw, decoded. */
  read(afterSeq: number, limit: number): JournalEntry[] {
    return this.readRaw(afterSeq, limit).map((raw) => this.decode(raw));
  }

  decode(raw: RawJournalEntry): JournalEntry {
    const schema = this.schema(raw.schemaId);
    const entry: JournalEntry = { seq: raw.seq, table: raw.table, op: raw.op, pk: decodeList(raw.pk, raw, 'pk'), schema, columns: schema.columns };
    if (raw.row !== null) entry.row = decodeList(raw.row, raw, 'row');
    if (raw.oldRow !== null) entry.oldRow = decodeList(raw.oldRow, raw, 'old_row');
    if (entry.row && entry.row.length !== schema.columns.length) {
      throw new SynclineError('journal_corrupt', `journal entry ${raw.seq} has ${entry.row.length} values for ${schema.columns.length} columns`, { table: raw.table, seq: raw.seq });
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
    const schema: CapturedSchema = { id, table: row.tbl, hash: row.hash, columns: JSON.parse(row.columns) as ColumnInfo[], key: JSON.parse(row.key) as TableKey };
    this.#schemas.set(id, schema);
    return schema;
  }

  maxSeq(): number {
    this.#maxStmt ??= this.#db.prepare<[], bigint | null>(`SELECT max(seq) FROM ${JournalTables.journal}`).pluck(true);
    const row = this.#maxStmt.get() ?? null;
    return row === null ? 0 : Number(row);
  }
}

function decodeList(text: string, raw: RawJournalEntry, field: string): SqlValue[] {
  try {
    return parseLiteralList(text);
  } catch (error) {
    throw error instanceof SynclineError ? error.withContext({ table: raw.table, seq: raw.seq, field }) : error;
  }
}
