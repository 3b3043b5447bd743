import { z } from 'zod';

/**
 * Messages between a page and the dedicated Worker that holds its SQLite WASM
 * database (OPFS sync access handles exist only in workers). Structured clone
 * carries bigint and Uint8Array as they are, so values keep the driver's fixed
 * form: INTEGER bigint, REAL number, TEXT string, BLOB Uint8Array, NULL null.
 */
type SqliteValue = null | bigint | number | string | Uint8Array;

function isValue(value: unknown): value is SqliteValue {
  return value === null || typeof value === 'bigint' || typeof value === 'number' || typeof value === 'string' || value instanceof Uint8Array;
}

// Rows and parameters are checked by one loop each instead of a union schema per
// value: a snapshot chunk or a bulk insert crosses here once per row, and zod's
// per-value union cost about 8 µs a row (a whole call costs about 100 µs).
const paramsSchema = z.custom<(SqliteValue | boolean)[]>((value) => Array.isArray(value) && value.every((v) => typeof v === 'boolean' || isValue(v)), 'SQLite parameters');
const rowsSchema = z.custom<Record<string, SqliteValue>[]>(
  (value) =>
    Array.isArray(value) &&
    value.every((row) => {
      if (typeof row !== 'object' || row === null || Array.isArray(row)) return false;
      for (const key in row) if (!isValue((row as Record<string, unknown>)[key])) return false;
      return true;
    }),
  'rows of SQLite values',
);

export const sqliteWorkerRequestSchema = z.discriminatedUnion('kind', [
  /** Opens (creating when missing) the database `name` in the worker's OPFS pool; the first message. */
  z.object({ id: z.number().int(), kind: z.literal('open'), name: z.string().min(1), directory: z.string().min(1) }),
  z.object({ id: z.number().int(), kind: z.enum(['all', 'run']), sql: z.string(), params: paramsSchema }),
  z.object({ id: z.number().int(), kind: z.literal('exec'), sql: z.string() }),
  z.object({ id: z.number().int(), kind: z.literal('close') }),
]);
export type SqliteWorkerRequest = z.infer<typeof sqliteWorkerRequestSchema>;

const resultSchema = z.union([
  z.object({ rows: rowsSchema }),
  z.object({ changes: z.number().int(), lastInsertRowid: z.bigint() }),
  z.object({ done: z.literal(true) }),
]);

export const sqliteWorkerAnswerSchema = z.union([
  z.object({ id: z.number().int(), ok: z.literal(true), result: resultSchema }),
  /** `code` is SQLite's extended result code name (SQLITE_CONSTRAINT_UNIQUE) when SQLite raised it. */
  z.object({ id: z.number().int(), ok: z.literal(false), message: z.string(), code: z.string().optional() }),
]);
export type SqliteWorkerAnswer = z.infer<typeof sqliteWorkerAnswerSchema>;
export type SqliteWorkerResult = z.infer<typeof resultSchema>;
