import { z } from 'zod';
import { batchAckSchema, controlAckAnswerSchema, controlsAnswerSchema } from './control.js';
import { wireValueSchema } from './wire-value-schema.js';
import { sharedTableSchema } from './shared-sync.js';

/**
 * Answers of the device-facing routes (row batches, controls, two-way sync) as
 * schemas, for the OpenAPI document, the response checks of the tests and the
 * devices that read them (the HTTP transport through control.ts, the two-way
 * client with these). Objects stay open to added fields; a field a reader
 * needs must be declared here, as parsing drops the undeclared ones.
 */

// Declared in control.ts, which the device loads without the rest of these.
export { batchAckSchema, controlAckAnswerSchema, controlsAnswerSchema };

/** The shared-table declarations a device receives from GET /v1/shared/config. */
export const sharedConfigAnswerSchema = z.object({ format_version: z.number(), scope: z.string(), source_id: z.string(), tables: z.array(sharedTableSchema) });
export type SharedConfigAnswer = z.infer<typeof sharedConfigAnswerSchema>;

/** A row the commit refused: a version conflict, or a constraint the row breaks. */
const conflictSchema = z.object({
  table: z.string(),
  key: z.array(wireValueSchema),
  kind: z.enum(['version', 'unique', 'check', 'not_null', 'foreign_key', 'invalid']),
  /** The server's row now (absent when the row is deleted or never existed). */
  server_row: z.array(wireValueSchema).optional(),
  server_version: z.string(),
  server_hlc: z.string().optional(),
  constraint: z.string().optional(),
  message: z.string(),
});
export type WireConflict = z.infer<typeof conflictSchema>;

export const pushAnswerSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('open'), session_id: z.string(), chunks_received: z.array(z.number()) }),
  z.object({ status: z.literal('committed'), bundle_seq: z.string(), duplicate: z.boolean() }),
  z.object({ status: z.literal('conflict'), conflicts: z.array(conflictSchema) }),
]);
export type PushAnswer = z.infer<typeof pushAnswerSchema>;

/** A row change of a pulled bundle (a WireRowChange with the version the server gave it). */
const bundleRowSchema = z.object({
  table: z.string(),
  op: z.enum(['upsert', 'delete']),
  key: z.array(wireValueSchema),
  row: z.array(wireValueSchema).optional(),
  hlc: z.string(),
  base_version: z.string().optional(),
  version: z.string(),
});

/** A committed bundle as pulled. A page may end inside a bundle (`complete: false`). */
const bundleSchema = z.object({ bundle_seq: z.string(), source: z.string(), rows: z.array(bundleRowSchema), complete: z.boolean() });
export type WireBundle = z.infer<typeof bundleSchema>;

export const pullAnswerSchema = z.object({
  bundles: z.array(bundleSchema),
  /** The head when paging began: pages up to it are stable whatever commits meanwhile. */
  target: z.string(),
  /** Where the next page starts: pass as after / after_ordinal. */
  next: z.object({ after: z.string(), after_ordinal: z.number() }).nullable(),
});
export type PullAnswer = z.infer<typeof pullAnswerSchema>;

export const snapshotAnswerSchema = z.object({
  snapshot_id: z.string(),
  /** The snapshot is the state right after this bundle. */
  snapshot_seq: z.string(),
});
export type SnapshotAnswer = z.infer<typeof snapshotAnswerSchema>;

const snapshotChunkSchema = z.object({
  table: z.string(),
  columns: z.array(z.string()),
  rows: z.array(z.array(wireValueSchema)),
  /** Per row: version and hlc, aligned with rows. */
  versions: z.array(z.string()),
  hlcs: z.array(z.string()),
  /** Indexes of the rows the requesting device wrote last (it may have pending changes made on top of them). */
  own: z.array(z.number()),
});
export type SnapshotChunk = z.infer<typeof snapshotChunkSchema>;

/** A scope's new head, announced as `event: bundle` on GET /v1/shared/events and on the scope's MQTT wake-up topic. */
export const bundleAnnouncementSchema = z.object({ head_seq: z.string().regex(/^[0-9]+$/) });
export type BundleAnnouncement = z.infer<typeof bundleAnnouncementSchema>;

/** A chunk, or the marker past the last one. */
export const snapshotChunkAnswerSchema = z.union([snapshotChunkSchema, z.object({ end: z.literal(true), chunk_count: z.number(), row_count: z.number() })]);
export type SnapshotChunkAnswer = z.infer<typeof snapshotChunkAnswerSchema>;
