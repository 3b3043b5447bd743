import { z } from 'zod';
import { HLC_PATTERN } from './hlc.js';
import type { WireValue } from './values.js';

/**
 * The wire protocol of two-way sync: shared tables declared on the server,
 * pushed by devices as bundles, pulled back as committed bundles or a snapshot.
 * Device SDK and cloud both import these shapes; nothing else spells them.
 *
 * Format history:
 * - 1: bundles of coalesced row changes; keys and rows are arrays of wire values
 *   in the declared column order.
 */
export const SHARED_FORMAT_VERSION = 1;

export const SharedRoutes = {
  config: '/v1/shared/config',
  push: '/v1/shared/push',
  pushChunk: '/v1/shared/push/:id/chunks/:index',
  pushCommit: '/v1/shared/push/:id/commit',
  pushSession: '/v1/shared/push/:id',
  pull: '/v1/shared/pull',
  snapshots: '/v1/shared/snapshots',
  snapshotChunk: '/v1/shared/snapshots/:id/chunks/:index',
  snapshot: '/v1/shared/snapshots/:id',
  events: '/v1/shared/events',
  /** Admin: a server-side write through Syncline, committed as one bundle of a scope. */
  adminBundles: '/v1/admin/shared/scopes/:scope/bundles',
} as const;

/** The header naming the device (source) when the token carries no source claim. */
export const SOURCE_HEADER = 'x-syncline-source';

export const SharedDefaults = {
  /** Rows per upload chunk, per pull page and per snapshot chunk. */
  chunkRows: 4096,
  /** Committed bundles kept per scope before the oldest are pruned. */
  retentionBundles: 10_000,
  /** The most rows one bundle may carry. */
  maxBundleRows: 1_000_000,
  /** An unfinished push session or an unread snapshot is dropped after this long. */
  sessionTtlMs: 60 * 60 * 1000,
} as const;

export const SHARED_COLUMN_TYPES = ['INTEGER', 'REAL', 'TEXT', 'BLOB', 'UUID'] as const;
export type SharedColumnType = (typeof SHARED_COLUMN_TYPES)[number];
export const SHARED_KEY_TYPES: readonly SharedColumnType[] = ['INTEGER', 'TEXT', 'BLOB', 'UUID'];

export const DIRECTIONS = ['up', 'down', 'both', 'none'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const CONFLICT_POLICIES = ['server_wins', 'client_wins', 'last_writer_wins', 'merge_columns'] as const;
export type ConflictPolicy = (typeof CONFLICT_POLICIES)[number];
/** What decides when merge_columns finds both sides changed the same column (or a delete is involved). */
export const TIEBREAKS = ['server_wins', 'client_wins', 'last_writer_wins'] as const;
export type Tiebreak = (typeof TIEBREAKS)[number];

export const SCOPE_KINDS = ['user', 'tenant'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];

const identifier = z.string().min(1).max(63);

/** A non-negative 64-bit integer in decimal text (versions and bundle sequence numbers are PostgreSQL bigints). */
const int64Text = z
  .string()
  .regex(/^[0-9]{1,19}$/)
  .refine((text) => BigInt(text) <= 9223372036854775807n, 'at most 9223372036854775807');

export const sharedColumnSchema = z.strictObject({
  name: identifier,
  type: z.enum(SHARED_COLUMN_TYPES),
  nullable: z.boolean().default(true),
});
export type SharedColumn = z.infer<typeof sharedColumnSchema>;

export const sharedReferenceSchema = z.strictObject({
  columns: z.array(identifier).min(1),
  table: identifier,
});
export type SharedReference = z.infer<typeof sharedReferenceSchema>;

export const sharedTableSchema = z.strictObject({
  name: identifier,
  direction: z.enum(DIRECTIONS),
  columns: z.array(sharedColumnSchema).min(1),
  key: z.array(identifier).min(1),
  scope: z.enum(SCOPE_KINDS).default('user'),
  conflict: z.enum(CONFLICT_POLICIES).default('server_wins'),
  tiebreak: z.enum(TIEBREAKS).default('server_wins'),
  /** A business table of your own in this PostgreSQL schema; absent: Syncline provisions it in syncline_shared. */
  schema: identifier.optional(),
  /** The column holding the scope in that table (go-oversync's `_sync_scope_id`); default `_syncline_scope`. */
  scope_column: identifier.optional(),
  /** Foreign keys to other shared tables of the same scope; they reference the target's key. */
  references: z.array(sharedReferenceSchema).default([]),
});
export type SharedTable = z.infer<typeof sharedTableSchema>;

/** One row change of a bundle. `row` is absent for deletes; values follow the table's declared columns. */
export interface WireRowChange {
  table: string;
  op: 'upsert' | 'delete';
  key: WireValue[];
  row?: WireValue[];
  /** Hybrid logical clock of the write (see hlc.ts). */
  hlc: string;
  /** The server version this change was resolved against, when the device resolved a conflict on it. */
  base_version?: string;
}

export const wireRowChangeSchema = z.strictObject({
  table: z.string().min(1).max(200),
  op: z.enum(['upsert', 'delete']),
  key: z.array(z.unknown()).min(1),
  row: z.array(z.unknown()).optional(),
  hlc: z.string().regex(HLC_PATTERN, 'an HLC stamp: 15-digit ms, 6-digit counter, source id'),
  base_version: int64Text.optional(),
});
/** A row change as received: shaped, with values still to be decoded. */
export type ReceivedRowChange = z.infer<typeof wireRowChangeSchema>;

export const pushBeginSchema = z.strictObject({
  format_version: z.literal(SHARED_FORMAT_VERSION),
  source_bundle_id: z.string().min(1).max(100),
  /** The newest bundle the device had applied when it froze the changes. */
  base_seq: int64Text,
  row_count: z.number().int().min(1).max(SharedDefaults.maxBundleRows),
  /** Small bundles travel in the begin request and commit at once. */
  rows: z.array(wireRowChangeSchema).optional(),
});
export type PushBegin = z.infer<typeof pushBeginSchema>;

export const pushChunkSchema = z.strictObject({
  rows: z.array(wireRowChangeSchema).min(1),
});

/** The PostgreSQL channel every commit of a bundle notifies (migrations 0010 and 0018 spell it in SQL too). */
export const BUNDLES_CHANNEL = 'syncline_bundles';

/**
 * The payload of a BUNDLES_CHANNEL notification, between server processes: the
 * scope that committed and its new head. Written by commitBundle and by the
 * backend-capture SQL (json_build_object), read by every process's ScopeEvents.
 */
export const bundleNotificationSchema = z.object({ scope: z.string().min(1), head_seq: int64Text });
export type BundleNotification = z.infer<typeof bundleNotificationSchema>;

// The answers (config, push, pull, snapshots) are declared as schemas in sync-answers.ts, their types inferred there.
export type { PullAnswer, PushAnswer, SharedConfigAnswer, SnapshotAnswer, SnapshotChunk, SnapshotChunkAnswer, WireBundle, WireConflict } from './sync-answers.js';
