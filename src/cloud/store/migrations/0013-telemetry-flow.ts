import type { Migration } from '../migrations.js';

/**
 * Flow control for telemetry lineages: their flow rows and controls live in the
 * same tables as row lineages' (one controller, one downlink, one operator view),
 * so those tables no longer point at edge_table_lineages only (a lineage id is a
 * UUIDv7 of either kind, never both). The staged backlog of a telemetry lineage
 * (rows waiting for their mapping's review) is counted by triggers on
 * telemetry_staged, as edge_staged_rows' is: bytes are those of the stored row
 * JSON.
 */
export const telemetryFlow: Migration = {
  version: 13,
  name: 'telemetry flow control',
  sql: `
ALTER TABLE edge_lineage_flow DROP CONSTRAINT IF EXISTS edge_lineage_flow_lineage_id_fkey;
ALTER TABLE edge_lineage_controls DROP CONSTRAINT IF EXISTS edge_lineage_controls_lineage_id_fkey;

INSERT INTO edge_lineage_flow (lineage_id, staged_rows, staged_bytes)
SELECT lineage_id, count(*), sum(octet_length(row::text)) FROM telemetry_staged GROUP BY lineage_id
ON CONFLICT (lineage_id) DO NOTHING;

CREATE FUNCTION syncline_flow_telemetry_added() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO edge_lineage_flow AS f (lineage_id, staged_rows, staged_bytes)
  SELECT lineage_id, count(*), sum(octet_length(row::text)) FROM syncline_added GROUP BY lineage_id
  ON CONFLICT (lineage_id) DO UPDATE SET staged_rows = f.staged_rows + excluded.staged_rows, staged_bytes = f.staged_bytes + excluded.staged_bytes;
  RETURN NULL;
END $fn$;

CREATE FUNCTION syncline_flow_telemetry_removed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE edge_lineage_flow AS f SET staged_rows = greatest(0, f.staged_rows - d.n), staged_bytes = greatest(0, f.staged_bytes - d.b)
  FROM (SELECT lineage_id, count(*) AS n, sum(octet_length(row::text)) AS b FROM syncline_removed GROUP BY lineage_id) AS d
  WHERE f.lineage_id = d.lineage_id;
  RETURN NULL;
END $fn$;

CREATE TRIGGER telemetry_staged_flow_added AFTER INSERT ON telemetry_staged
  REFERENCING NEW TABLE AS syncline_added FOR EACH STATEMENT EXECUTE FUNCTION syncline_flow_telemetry_added();
CREATE TRIGGER telemetry_staged_flow_removed AFTER DELETE ON telemetry_staged
  REFERENCING OLD TABLE AS syncline_removed FOR EACH STATEMENT EXECUTE FUNCTION syncline_flow_telemetry_removed();
`,
};
