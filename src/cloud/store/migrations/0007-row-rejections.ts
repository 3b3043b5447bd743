import type { Migration } from '../migrations.js';

/**
 * Rows the mirror refuses one by one, and mirrors keyed by a digest.
 *
 * - `row_rejected` joins the staging reasons: a row PostgreSQL refused on its own
 *   (a value out of range, a row too big) is set aside with the database's message
 *   while the rest of its batch flows.
 * - `edge_mirror_key_digests` lists the mirrors whose uniqueness is enforced on
 *   `_syncline_key_digest` (a SHA-256 of their text, blob and JSON key columns), so
 *   keys of any length fit; mirrors created before keep their plain primary key.
 */
export const rowRejections: Migration = {
  version: 7,
  name: 'row rejections and digest-keyed mirrors',
  sql: `
ALTER TABLE edge_staged_rows DROP CONSTRAINT edge_staged_rows_reason;
ALTER TABLE edge_staged_rows ADD CONSTRAINT edge_staged_rows_reason
  CHECK (reason IN ('schema_review', 'lineage_paused', 'materialization_failed', 'row_rejected'));

CREATE TABLE edge_mirror_key_digests (
  mirror_table text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
};
