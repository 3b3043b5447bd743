import { z } from 'zod';
import { batchAckSchema, controlAckAnswerSchema, controlsAnswerSchema } from './control.js';
import { wireValueSchema } from './admin-answers.js';
import { sharedTableSchema } from './shared-sync.js';

/**
 * Answers of the device-facing routes (row batches, controls, two-way sync) as
 * schemas, for the OpenAPI document and the response checks of the tests. The
 * device parses the same messages with the parsers of batch.ts, control.ts and
 * shared-sync.ts; these describe them and stay open to added fields.
 */

// Declared in control.ts, which the device loads without the rest of these.
export { batchAckSchema, controlAckAnswerSchema, controlsAnswerSchema };

export const sharedConfigAnswerSchema = z.object({ format_version: z.number(), scope: z.string(), source_id: z.string(), tables: z.array(sharedTableSchema) });

const conflictSchema = z.object({ table: z.string(), key: z.array(wireValueSchema), server_version: z.string(), message: z.string() });
export const pushAnswerSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('open'), session_id: z.string(), chunks_received: z.array(z.number()) }),
  z.object({ status: z.literal('committed'), bundle_seq: z.string(), duplicate: z.boolean() }),
  z.object({ status: z.literal('conflict'), conflicts: z.array(conflictSchema) }),
]);

const bundleRowSchema = z.object({ table: z.string(), op: z.enum(['upsert', 'delete']), key: z.array(wireValueSchema), row: z.array(wireValueSchema).optional(), hlc: z.string(), version: z.string() });
export const pullAnswerSchema = z.object({
  bundles: z.array(z.object({ bundle_seq: z.string(), source: z.string(), rows: z.array(bundleRowSchema), complete: z.boolean() })),
  target: z.string(),
  next: z.object({ after: z.string(), after_ordinal: z.number() }).nullable(),
});
export const snapshotAnswerSchema = z.object({ snapshot_id: z.string(), snapshot_seq: z.string() });
export const snapshotChunkAnswerSchema = z.union([
  z.object({ table: z.string(), columns: z.array(z.string()), rows: z.array(z.array(wireValueSchema)), versions: z.array(z.string()), hlcs: z.array(z.string()), own: z.array(z.number()) }),
  z.object({ end: z.literal(true), chunk_count: z.number(), row_count: z.number() }),
]);
