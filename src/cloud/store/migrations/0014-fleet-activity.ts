import type { Migration } from '../migrations.js';

/**
 * What operators see of the fleet's activity, written in the background by the
 * activity recorder (coalesced in memory, flushed every few seconds), never in
 * an ingest transaction:
 * - when each device was last heard from and over which transport;
 * - which bundle each two-way device (scope, source) has pulled up to;
 * - two-way counters summed over every server process on this database.
 * It also lets an operator pause a device's lineage (`operator_pause`), which
 * stays until an operator resumes it.
 */
export const fleetActivity: Migration = {
  version: 14,
  name: 'fleet-activity',
  sql: `
ALTER TABLE devices
  ADD COLUMN last_seen_at timestamptz,
  ADD COLUMN last_transport text CHECK (last_transport IN ('http', 'mqtt'));

ALTER TABLE edge_lineage_flow DROP CONSTRAINT edge_lineage_flow_pause_reason_check;
ALTER TABLE edge_lineage_flow ADD CONSTRAINT edge_lineage_flow_pause_reason_check
  CHECK (pause_reason IN ('volume_backpressure', 'circuit_breaker', 'operator_pause'));

CREATE TABLE sync_pull_watermarks (
  scope text NOT NULL,
  source text NOT NULL,
  -- the watermark the device pulled after (it has applied everything up to it)
  after_seq bigint NOT NULL,
  -- the newest whole bundle handed to it: its watermark once it applied that page
  pulled_seq bigint NOT NULL,
  pulled_at timestamptz NOT NULL,
  PRIMARY KEY (scope, source)
);

CREATE TABLE syncline_counters (
  name text PRIMARY KEY,
  value bigint NOT NULL DEFAULT 0
);
`,
};
