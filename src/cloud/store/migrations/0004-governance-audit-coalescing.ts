import type { Migration } from '../migrations.js';

/**
 * Schema governance, second part: one audit log for every operator and replay
 * action (it takes over the per-review event history), a closed set of staging
 * reasons (the words move to `detail`), reviews reopened for deferred columns,
 * lineages that stay active while their backlog replays, and coalescing: per
 * project, the same table of many devices in one mirror keyed by device and key,
 * with approved schemas reused for later devices (it replaces remembered approvals).
 */
export const governanceAuditCoalescing: Migration = {
  version: 4,
  name: 'governance audit and coalescing',
  sql: `
CREATE TABLE edge_audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  -- the admin token's label ("name (token id)"), "bootstrap admin token", or "system"
  actor text NOT NULL,
  action text NOT NULL,
  project_id text,
  lineage_id uuid,
  review_id uuid,
  detail jsonb
);
CREATE INDEX edge_audit_log_lineage ON edge_audit_log (lineage_id, id);
CREATE INDEX edge_audit_log_review ON edge_audit_log (review_id, id);

INSERT INTO edge_audit_log (at, actor, action, project_id, lineage_id, review_id, detail)
SELECT e.at, e.actor,
       CASE e.action WHEN 'discard_staged' THEN 'staged.purge' ELSE 'review.' || e.action END,
       r.project_id, r.lineage_id, e.review_id,
       jsonb_build_object('from_status', e.from_status, 'to_status', e.to_status, 'action_version', e.action_version) || coalesce(e.detail, '{}'::jsonb)
FROM edge_review_events e JOIN edge_schema_reviews r ON r.id = e.review_id ORDER BY e.id;
DROP TABLE edge_review_events;

ALTER TABLE edge_staged_rows ADD COLUMN detail text;
UPDATE edge_staged_rows SET detail = reason,
  reason = CASE WHEN reason LIKE 'materialization failed:%' OR reason LIKE 'a key value does not fit%' THEN 'materialization_failed' ELSE 'schema_review' END;
ALTER TABLE edge_staged_rows ADD CONSTRAINT edge_staged_rows_reason
  CHECK (reason IN ('schema_review', 'lineage_paused', 'materialization_failed'));

-- A replay no longer pauses its lineage: new rows queue behind the pending replay instead.
UPDATE edge_table_lineages SET status = 'active', pause_cause = NULL, status_reason = NULL WHERE pause_cause = 'replay';
ALTER TABLE edge_table_lineages DROP CONSTRAINT edge_table_lineages_pause_cause_check;
ALTER TABLE edge_table_lineages ADD CONSTRAINT edge_table_lineages_pause_cause_check
  CHECK (pause_cause IN ('schema_review', 'schema_rejected', 'materialization_failed'));

-- 'defer': columns an approval deferred wait in a review of their own.
ALTER TABLE edge_schema_reviews DROP CONSTRAINT edge_schema_reviews_origin_check;
ALTER TABLE edge_schema_reviews ADD CONSTRAINT edge_schema_reviews_origin_check CHECK (origin IN ('ingest', 'replay', 'defer'));

ALTER TABLE projects ADD COLUMN coalescing text NOT NULL DEFAULT 'none' CHECK (coalescing IN ('none', 'project'));

-- Lineages of many devices share a coalesced mirror.
ALTER TABLE edge_table_lineages DROP CONSTRAINT edge_table_lineages_mirror_table_key;
CREATE INDEX edge_table_lineages_mirror ON edge_table_lineages (mirror_table);

-- One shared mirror per (project, source table, key): its key is the device id plus the key columns.
CREATE TABLE edge_coalesced_mirrors (
  project_id text NOT NULL REFERENCES projects (id),
  source_table text NOT NULL,
  key_kind text NOT NULL,
  key_columns jsonb NOT NULL,
  -- the mirror columns holding the key, after the device id
  key_targets jsonb NOT NULL,
  mirror_table text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, source_table, key_kind, key_columns)
);

-- Schemas approved into a coalesced mirror; a later device showing one is approved with the same column actions.
CREATE TABLE edge_coalesced_schemas (
  project_id text NOT NULL REFERENCES projects (id),
  source_table text NOT NULL,
  schema_hash text NOT NULL,
  columns jsonb NOT NULL,
  review_id uuid NOT NULL REFERENCES edge_schema_reviews (id),
  approved_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, source_table, schema_hash)
);
DROP TABLE edge_schema_approvals;
`,
};
