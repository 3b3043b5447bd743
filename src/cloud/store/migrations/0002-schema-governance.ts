import type { Migration } from '../migrations.js';

/**
 * Schema governance: why a lineage is paused, the review workflow and its audit
 * trail, columns an operator chose not to mirror, replay intents that drain staged
 * rows after a decision, admin tokens with roles, idempotent operator requests,
 * and approvals remembered per (project, table, schema) for later devices.
 */
export const schemaGovernance: Migration = {
  version: 2,
  name: 'schema governance',
  sql: `
ALTER TABLE edge_table_lineages ADD COLUMN pause_cause text
  CHECK (pause_cause IN ('schema_review', 'schema_rejected', 'replay', 'materialization_failed'));
UPDATE edge_table_lineages
   SET pause_cause = CASE WHEN status_reason LIKE 'materialization failed:%' THEN 'materialization_failed' ELSE 'schema_review' END
 WHERE status = 'paused';
ALTER TABLE edge_table_lineages ADD CONSTRAINT edge_table_lineages_pause_cause
  CHECK ((status = 'active') = (pause_cause IS NULL));

CREATE INDEX edge_staged_rows_replay ON edge_staged_rows (lineage_id, id);

CREATE TABLE edge_schema_reviews (
  id uuid PRIMARY KEY,
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  project_id text NOT NULL REFERENCES projects (id),
  schema_hash text NOT NULL,
  -- the schema the mirror followed when the review opened; NULL for a first schema
  base_schema_hash text,
  -- 'ingest': a device sent this schema; 'replay': staged rows of an older schema need a decision
  origin text NOT NULL CHECK (origin IN ('ingest', 'replay')),
  classification text NOT NULL CHECK (classification IN ('compatible_mapped', 'compatible_additive', 'ambiguous', 'breaking')),
  summary text NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'in_review', 'approved', 'rejected', 'superseded')),
  -- bumped on every transition; approve and reject must quote the current one
  action_version integer NOT NULL DEFAULT 1,
  claimed_by text,
  claimed_at timestamptz,
  decided_by text,
  decided_at timestamptz,
  decision jsonb,
  superseded_by uuid REFERENCES edge_schema_reviews (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (lineage_id, schema_hash) REFERENCES edge_schemas (lineage_id, hash)
);
-- At most one open review per lineage: the one whose decision the lineage waits for.
CREATE UNIQUE INDEX edge_schema_reviews_open ON edge_schema_reviews (lineage_id) WHERE status IN ('queued', 'in_review');
CREATE INDEX edge_schema_reviews_status ON edge_schema_reviews (status, id);
CREATE INDEX edge_schema_reviews_lineage ON edge_schema_reviews (lineage_id, id);

CREATE TABLE edge_review_events (
  id bigserial PRIMARY KEY,
  review_id uuid NOT NULL REFERENCES edge_schema_reviews (id),
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  from_status text,
  to_status text NOT NULL,
  action_version integer NOT NULL,
  detail jsonb
);
CREATE INDEX edge_review_events_review ON edge_review_events (review_id, id);

-- Source columns an operator decided not to mirror; their values are not stored.
CREATE TABLE edge_ignored_columns (
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  source_column text NOT NULL,
  PRIMARY KEY (lineage_id, source_column)
);

CREATE TABLE edge_replay_intents (
  id uuid PRIMARY KEY,
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  review_id uuid REFERENCES edge_schema_reviews (id),
  requested_by text NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'blocked', 'failed')),
  -- staged rows with id <= after_id were handled (replayed, or left staged because no mirror key can hold them)
  after_id bigint NOT NULL DEFAULT 0,
  rows_total bigint NOT NULL,
  rows_replayed bigint NOT NULL DEFAULT 0,
  rows_kept bigint NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE UNIQUE INDEX edge_replay_intents_pending ON edge_replay_intents (lineage_id) WHERE state = 'pending';
CREATE INDEX edge_replay_intents_lineage ON edge_replay_intents (lineage_id, created_at);

CREATE TABLE admin_tokens (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  -- SHA-256 (hex) of the bearer token; the token itself is never stored.
  token_hash text NOT NULL UNIQUE,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE admin_idempotency_keys (
  key text PRIMARY KEY,
  request_hash text NOT NULL,
  status_code integer NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- An approval an operator asked to reuse: later lineages of the same table in the
-- project that show the same schema (from the same base) get the same column decisions.
CREATE TABLE edge_schema_approvals (
  project_id text NOT NULL REFERENCES projects (id),
  source_table text NOT NULL,
  -- '' when the approval was for a first schema
  base_schema_hash text NOT NULL,
  schema_hash text NOT NULL,
  columns jsonb NOT NULL,
  review_id uuid NOT NULL REFERENCES edge_schema_reviews (id),
  approved_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, source_table, base_schema_hash, schema_hash)
);
`,
};
