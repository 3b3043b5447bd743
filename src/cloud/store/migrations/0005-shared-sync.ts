import type { Migration } from '../migrations.js';

/**
 * Two-way sync bookkeeping. The shared tables themselves live in the
 * `syncline_shared` schema and are provisioned from the server's declarations at
 * start (see cloud/shared/provision.ts); these tables order and remember bundles.
 */
export const sharedSync: Migration = {
  version: 5,
  name: 'shared sync',
  sql: `
CREATE SCHEMA IF NOT EXISTS syncline_shared;

-- One row per scope (user or tenant). Commits lock it, which makes bundle_seq gap-free.
-- Bundles at or below floor_seq were pruned: a device behind it re-hydrates from a snapshot.
CREATE TABLE sync_scopes (
  scope text PRIMARY KEY,
  head_seq bigint NOT NULL DEFAULT 0,
  floor_seq bigint NOT NULL DEFAULT 0
);

-- Committed bundles. (scope, source, source_bundle_id) makes a retried commit answer with the first one.
CREATE TABLE sync_bundles (
  scope text NOT NULL,
  bundle_seq bigint NOT NULL,
  source text NOT NULL,
  source_bundle_id text NOT NULL,
  row_count integer NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, bundle_seq),
  UNIQUE (scope, source, source_bundle_id)
);

-- The rows of each bundle in apply order, kept for pulls until retention prunes them.
-- key and row are JSON arrays of wire values in the table's declared column order.
CREATE TABLE sync_bundle_rows (
  scope text NOT NULL,
  bundle_seq bigint NOT NULL,
  ordinal integer NOT NULL,
  tbl text NOT NULL,
  op "char" NOT NULL,
  key jsonb NOT NULL,
  row jsonb,
  hlc text NOT NULL,
  PRIMARY KEY (scope, bundle_seq, ordinal)
);

-- Deleted rows keep their version so a later push based on an older view is a conflict.
CREATE TABLE sync_tombstones (
  scope text NOT NULL,
  tbl text NOT NULL,
  key text NOT NULL,
  version bigint NOT NULL,
  source text NOT NULL,
  hlc text NOT NULL,
  PRIMARY KEY (scope, tbl, key)
);

-- Chunked uploads of large bundles, committed (or abandoned) as a whole.
CREATE TABLE sync_push_sessions (
  id uuid PRIMARY KEY,
  scope text NOT NULL,
  source text NOT NULL,
  source_bundle_id text NOT NULL,
  base_seq bigint NOT NULL,
  row_count integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (scope, source, source_bundle_id)
);
CREATE TABLE sync_push_chunks (
  session_id uuid NOT NULL REFERENCES sync_push_sessions (id) ON DELETE CASCADE,
  chunk_index integer NOT NULL,
  row_count integer NOT NULL,
  rows jsonb NOT NULL,
  PRIMARY KEY (session_id, chunk_index)
);

`,
};
