import { z } from 'zod';

/**
 * Messages between a page and the dedicated Worker that holds its SQLite WASM
 * database (OPFS sync access handles exist only in workers). Structured clone
 * carries bigint and Uint8Array as they are, so values keep the driver's fixed
 * form: INTEGER bigint, REAL number, TEXT string, BLOB Uint8Array, NULL null.
 */
export const sqliteValueSchema = z.union([z.null(), z.bigint(), z.number(), z.string(), z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'a Uint8Array')]);
const paramSchema = z.union([sqliteValueSchema, z.boolean()]);

export const sqliteWorkerRequestSchema = z.discriminatedUnion('kind', [
  /** Opens (creating when missing) the database `name` in the worker's OPFS pool; the first message. */
  z.object({ id: z.number().int(), kind: z.literal('open'), name: z.string().min(1), directory: z.string().min(1) }),
  z.object({ id: z.number().int(), kind: z.enum(['all', 'run']), sql: z.string(), params: z.array(paramSchema) }),
  z.object({ id: z.number().int(), kind: z.literal('exec'), sql: z.string() }),
  z.object({ id: z.number().int(), kind: z.literal('close') }),
]);
export type SqliteWorkerRequest = z.infer<typeof sqliteWorkerRequestSchema>;

const rowSchema = z.record(z.string(), sqliteValueSchema);
const resultSchema = z.union([
  z.object({ rows: z.array(rowSchema) }),
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
