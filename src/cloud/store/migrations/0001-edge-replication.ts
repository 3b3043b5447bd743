import type { Migration } from '../migrations.js';

/**
 * Edge replication: tenants, devices, the batch ledger, lineages (one per device
 * and source table), the schemas each lineage has shown, how its columns bind to
 * mirror columns, and the rows held back while a lineage is paused.
 */
export const edgeReplication: Migration = {
  version: 1,
  name: 'edge replication',
  sql: `
CREATE TABLE orgs (
  id text PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
  id text PRIMARY KEY,
  org_id text NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, id)
);

INSERT INTO orgs (id, name) VALUES ('default', 'default');
INSERT INTO projects (id, org_id, name) VALUES ('default', 'default', 'default');

CREATE TABLE devices (
  id uuid PRIMARY KEY,
  org_id text NOT NULL,
  project_id text NOT NULL,
  name text NOT NULL,
  -- SHA-256 (hex) of the bearer token; the token itself is never stored.
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  FOREIGN KEY (org_id, project_id) REFERENCES projects (org_id, id)
);

CREATE TABLE edge_table_lineages (
  id uuid PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id),
  device_id uuid NOT NULL REFERENCES devices (id),
  source_table text NOT NULL,
  key_kind text NOT NULL CHECK (key_kind IN ('primary_key', 'rowid')),
  key_columns jsonb NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  status_reason text,
  -- the schema the mirror currently follows; NULL until the first schema is accepted
  schema_hash text,
  journal_epoch text,
  last_seq bigint NOT NULL DEFAULT 0,
  rows_received bigint NOT NULL DEFAULT 0,
  rows_applied bigint NOT NULL DEFAULT 0,
  mirror_table text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (device_id, source_table)
);

CREATE TABLE edge_export_segments (
  device_id uuid NOT NULL REFERENCES devices (id),
  batch_id uuid NOT NULL,
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  journal_epoch text NOT NULL,
  first_seq bigint NOT NULL,
  last_seq bigint NOT NULL,
  row_count integer NOT NULL,
  byte_count bigint NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  -- the answer given the first time, returned again for a redelivery
  ack jsonb NOT NULL,
  PRIMARY KEY (device_id, batch_id)
);
CREATE INDEX edge_export_segments_lineage ON edge_export_segments (lineage_id, received_at);

CREATE TABLE edge_schemas (
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  hash text NOT NULL,
  columns jsonb NOT NULL,
  key jsonb NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (lineage_id, hash)
);

CREATE TABLE edge_column_bindings (
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  source_column text NOT NULL,
  target_column text NOT NULL,
  pg_type text NOT NULL,
  PRIMARY KEY (lineage_id, source_column),
  UNIQUE (lineage_id, target_column)
);

-- Rows acknowledged but not materialized (paused lineage, or a key value the
-- mirror's key type cannot hold). Values are the stored-JSON form of type-mapping.ts.
CREATE TABLE edge_staged_rows (
  id bigserial PRIMARY KEY,
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  batch_id uuid NOT NULL,
  journal_epoch text NOT NULL,
  seq bigint NOT NULL,
  op text NOT NULL,
  pk jsonb NOT NULL,
  row jsonb,
  schema_hash text NOT NULL,
  reason text NOT NULL,
  staged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edge_staged_rows_lineage ON edge_staged_rows (lineage_id, journal_epoch, seq);
`,
};
