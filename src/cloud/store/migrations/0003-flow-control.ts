import type { Migration } from '../migrations.js';

/**
 * Flow control: per lineage, the staged backlog (rows and bytes), the run of
 * batches a permanent materialization error kept out of the mirror, and whether
 * the device was told to stop sending; plus the control messages (pause_lineage,
 * resume_lineage) kept until the device acks them; and the broker password hash
 * of each device token, for an external Mosquitto.
 *
 * The counters are kept by triggers, not by the code that stages, replays or
 * discards rows: they stay exact whichever process or code path touches
 * edge_staged_rows, in the same transaction, and reading them costs one row
 * instead of a count over the backlog. Lock order is always lineage row, then
 * flow row (ingest and replay lock the lineage first; so does the controller).
 */
export const flowControl: Migration = {
  version: 3,
  name: 'flow control',
  sql: `
CREATE TABLE edge_lineage_flow (
  lineage_id uuid PRIMARY KEY REFERENCES edge_table_lineages (id),
  staged_rows bigint NOT NULL DEFAULT 0,
  -- UTF-8 bytes of the staged key and row JSON: what the backlog costs to keep
  staged_bytes bigint NOT NULL DEFAULT 0,
  -- batches in a row that a permanent materialization error kept out of the mirror
  consecutive_failures integer NOT NULL DEFAULT 0,
  -- what the device was told: keep sending, or stop and buffer locally
  device_state text NOT NULL DEFAULT 'sending' CHECK (device_state IN ('sending', 'paused')),
  pause_reason text CHECK (pause_reason IN ('volume_backpressure', 'circuit_breaker')),
  -- an operator resumed the device over the cap; the cap applies again once the backlog drained below the resume mark
  operator_override boolean NOT NULL DEFAULT false,
  changed_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((device_state = 'paused') = (pause_reason IS NOT NULL))
);

INSERT INTO edge_lineage_flow (lineage_id, staged_rows, staged_bytes)
SELECT lineage_id, count(*), sum(octet_length(pk::text) + coalesce(octet_length(row::text), 0))
FROM edge_staged_rows GROUP BY lineage_id;

CREATE FUNCTION syncline_flow_staged_added() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO edge_lineage_flow AS f (lineage_id, staged_rows, staged_bytes)
  SELECT lineage_id, count(*), sum(octet_length(pk::text) + coalesce(octet_length(row::text), 0))
  FROM syncline_added GROUP BY lineage_id
  ON CONFLICT (lineage_id) DO UPDATE SET staged_rows = f.staged_rows + excluded.staged_rows, staged_bytes = f.staged_bytes + excluded.staged_bytes;
  RETURN NULL;
END $fn$;

CREATE FUNCTION syncline_flow_staged_removed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE edge_lineage_flow AS f SET staged_rows = greatest(0, f.staged_rows - d.n), staged_bytes = greatest(0, f.staged_bytes - d.b)
  FROM (SELECT lineage_id, count(*) AS n, sum(octet_length(pk::text) + coalesce(octet_length(row::text), 0)) AS b
        FROM syncline_removed GROUP BY lineage_id) AS d
  WHERE f.lineage_id = d.lineage_id;
  RETURN NULL;
END $fn$;

-- An update may move a row or rewrite its values: count it out as it was and in as it is.
CREATE FUNCTION syncline_flow_staged_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO edge_lineage_flow AS f (lineage_id, staged_rows, staged_bytes)
  SELECT lineage_id, sum(n), sum(b) FROM (
    SELECT lineage_id, count(*) AS n, sum(octet_length(pk::text) + coalesce(octet_length(row::text), 0)) AS b FROM syncline_added GROUP BY lineage_id
    UNION ALL
    SELECT lineage_id, -count(*), -sum(octet_length(pk::text) + coalesce(octet_length(row::text), 0)) FROM syncline_removed GROUP BY lineage_id
  ) AS d GROUP BY lineage_id
  ON CONFLICT (lineage_id) DO UPDATE SET staged_rows = greatest(0, f.staged_rows + excluded.staged_rows), staged_bytes = greatest(0, f.staged_bytes + excluded.staged_bytes);
  RETURN NULL;
END $fn$;

CREATE TRIGGER edge_staged_rows_flow_added AFTER INSERT ON edge_staged_rows
  REFERENCING NEW TABLE AS syncline_added FOR EACH STATEMENT EXECUTE FUNCTION syncline_flow_staged_added();
CREATE TRIGGER edge_staged_rows_flow_removed AFTER DELETE ON edge_staged_rows
  REFERENCING OLD TABLE AS syncline_removed FOR EACH STATEMENT EXECUTE FUNCTION syncline_flow_staged_removed();
CREATE TRIGGER edge_staged_rows_flow_changed AFTER UPDATE ON edge_staged_rows
  REFERENCING OLD TABLE AS syncline_removed NEW TABLE AS syncline_added FOR EACH STATEMENT EXECUTE FUNCTION syncline_flow_staged_changed();

-- The circuit breaker's count: a batch ingested while materialization is failing (the one that
-- failed and each one staged behind it) or a replay that failed adds one; rows reaching the
-- mirror reset it.
CREATE FUNCTION syncline_flow_lineage_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.rows_applied > OLD.rows_applied THEN
    UPDATE edge_lineage_flow SET consecutive_failures = 0 WHERE lineage_id = NEW.id AND consecutive_failures <> 0;
  ELSIF NEW.pause_cause = 'materialization_failed'
        AND (NEW.rows_received > OLD.rows_received OR OLD.pause_cause IS DISTINCT FROM 'materialization_failed') THEN
    INSERT INTO edge_lineage_flow AS f (lineage_id, consecutive_failures) VALUES (NEW.id, 1)
    ON CONFLICT (lineage_id) DO UPDATE SET consecutive_failures = f.consecutive_failures + 1;
  END IF;
  RETURN NULL;
END $fn$;

CREATE TRIGGER edge_table_lineages_flow AFTER UPDATE ON edge_table_lineages FOR EACH ROW
  WHEN (NEW.rows_applied IS DISTINCT FROM OLD.rows_applied OR NEW.rows_received IS DISTINCT FROM OLD.rows_received
        OR NEW.pause_cause IS DISTINCT FROM OLD.pause_cause)
  EXECUTE FUNCTION syncline_flow_lineage_changed();

-- Control messages to devices, kept until acked and sent again while they wait.
CREATE TABLE edge_lineage_controls (
  -- the control_id devices see: UUIDv7, so a table's controls are ordered
  id uuid PRIMARY KEY,
  lineage_id uuid NOT NULL REFERENCES edge_table_lineages (id),
  device_id uuid NOT NULL REFERENCES devices (id),
  type text NOT NULL CHECK (type IN ('pause_lineage', 'resume_lineage')),
  reason text NOT NULL,
  message jsonb NOT NULL,
  -- superseded: a newer control for the lineage replaced it before the device acked it
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked', 'superseded')),
  ack_status text,
  send_count integer NOT NULL DEFAULT 0,
  next_send_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  acked_at timestamptz
);
CREATE INDEX edge_lineage_controls_device_pending ON edge_lineage_controls (device_id, id) WHERE state = 'pending';
CREATE INDEX edge_lineage_controls_due ON edge_lineage_controls (next_send_at) WHERE state = 'pending';
CREATE INDEX edge_lineage_controls_lineage ON edge_lineage_controls (lineage_id, id);

-- The Mosquitto password-file hash ($7$, PBKDF2-SHA512) of each device token, written with the
-- device: the token itself is never stored, and an external broker needs this to check it.
-- Devices created before this migration have none; they need a new device to use such a broker.
CREATE TABLE device_broker_credentials (
  device_id uuid PRIMARY KEY REFERENCES devices (id),
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
};
