import type { Migration } from '../migrations.js';

/**
 * Telemetry: lineages and a batch ledger of their own (a table can move between
 * the row and telemetry strategies without their seqs meeting), column mappings
 * per (project, table, schema), named points, rows held while a mapping waits for
 * review, and the value store.
 *
 * The store is narrow: one row per (device, point, time) with the value in the
 * column its kind uses. It is range-partitioned by day on `ts` (partitions are
 * created ahead and on demand, retention drops whole partitions), with a BRIN
 * index on time for range scans and a btree on (device, point, ts) for series
 * queries; `telemetry_latest` keeps the newest value per (device, point).
 * numeric holds every INTEGER (all 64 bits) and every double's shortest
 * round-trip text exactly.
 */
export const telemetry: Migration = {
  version: 11,
  name: 'telemetry',
  sql: `
CREATE TABLE telemetry_lineages (
  id uuid PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id),
  device_id uuid NOT NULL REFERENCES devices (id),
  source_table text NOT NULL,
  journal_epoch text,
  last_seq bigint NOT NULL DEFAULT 0,
  rows_received bigint NOT NULL DEFAULT 0,
  rows_stored bigint NOT NULL DEFAULT 0,
  schema_hash text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (device_id, source_table)
);

CREATE TABLE telemetry_segments (
  device_id uuid NOT NULL REFERENCES devices (id),
  batch_id uuid NOT NULL,
  lineage_id uuid NOT NULL REFERENCES telemetry_lineages (id),
  journal_epoch text NOT NULL,
  first_seq bigint NOT NULL,
  last_seq bigint NOT NULL,
  row_count integer NOT NULL,
  byte_count bigint NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  ack jsonb NOT NULL,
  PRIMARY KEY (device_id, batch_id)
);

CREATE TABLE telemetry_mappings (
  id uuid PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id),
  source_table text NOT NULL,
  schema_hash text NOT NULL,
  columns jsonb NOT NULL,
  time_column text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved')),
  -- approved: [{column, point_id, kind}] for the columns that feed points
  points jsonb,
  time_unit text NOT NULL DEFAULT 'auto' CHECK (time_unit IN ('auto', 's', 'ms', 'us')),
  decided_by text,
  decided_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, source_table, schema_hash)
);

CREATE TABLE telemetry_points (
  id serial PRIMARY KEY,
  project_id text NOT NULL REFERENCES projects (id),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('numeric', 'text', 'boolean')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TABLE telemetry_staged (
  id bigserial PRIMARY KEY,
  mapping_id uuid NOT NULL REFERENCES telemetry_mappings (id),
  lineage_id uuid NOT NULL REFERENCES telemetry_lineages (id),
  seq bigint NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  -- values in the stored-JSON form of type-mapping.ts, aligned with the mapping's columns
  row jsonb NOT NULL
);
CREATE INDEX telemetry_staged_mapping ON telemetry_staged (mapping_id, lineage_id, seq);

CREATE TABLE telemetry_values (
  device_id uuid NOT NULL,
  point_id integer NOT NULL,
  ts timestamptz NOT NULL,
  v_num numeric,
  v_text text,
  v_bool boolean
) PARTITION BY RANGE (ts);
CREATE INDEX telemetry_values_series ON telemetry_values (device_id, point_id, ts);
CREATE INDEX telemetry_values_ts ON telemetry_values USING brin (ts);

CREATE TABLE telemetry_latest (
  device_id uuid NOT NULL,
  point_id integer NOT NULL,
  ts timestamptz NOT NULL,
  v_num numeric,
  v_text text,
  v_bool boolean,
  PRIMARY KEY (device_id, point_id)
);
`,
};
