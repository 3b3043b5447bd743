import type { Migration } from '../migrations.js';

/**
 * Captured backend writes are kept as one row per statement and scope, not one
 * per changed row: `sync_bundle_chunks` holds the statement's keys and rows as two
 * JSON arrays, starting at `ordinal` of its bundle. Measured by the PostgreSQL
 * backend's CPU (bench group shared-backend, README): a second tuple and index
 * entry per captured row, each key parsed into jsonb, cost more than the
 * backend's own INSERT; one tuple per statement costs a fraction of it. Device
 * pushes keep writing `sync_bundle_rows` (they arrive as rows already).
 *
 * `sync_bundle_changes` shows both as rows, one per change, as pulls and tests read
 * them. A reader bounds `bundle_seq` (not only the row comparison on it and the
 * ordinal) so the bound reaches the chunks' index.
 *
 * `syncline_open_bundle` prunes chunks with the rows, and takes the scope's lock
 * and next seq in one UPDATE (it ran an upsert, a SELECT FOR UPDATE and an UPDATE:
 * a bundle is opened per backend transaction, so this is paid per transaction).
 */
export const bundleChunks: Migration = {
  version: 18,
  name: 'captured bundle rows in chunks',
  sql: `
CREATE TABLE sync_bundle_chunks (
  scope text NOT NULL,
  bundle_seq bigint NOT NULL,
  ordinal integer NOT NULL,
  tbl text NOT NULL,
  op "char" NOT NULL,
  hlc text NOT NULL,
  -- JSON arrays of the same length: each change's key (wire values) and its row (null for a delete)
  keys json NOT NULL,
  rows json,
  PRIMARY KEY (scope, bundle_seq, ordinal)
);
-- Written once, read whole by pulls: compressing costs the writer more than it saves.
ALTER TABLE sync_bundle_chunks ALTER COLUMN keys SET STORAGE EXTERNAL;
ALTER TABLE sync_bundle_chunks ALTER COLUMN rows SET STORAGE EXTERNAL;

CREATE VIEW sync_bundle_changes AS
  SELECT r.scope, r.bundle_seq, r.ordinal, r.tbl, r.op, r.key, r.row, r.hlc FROM sync_bundle_rows r
  UNION ALL
  SELECT c.scope, c.bundle_seq, c.ordinal + (e.i - 1)::int, c.tbl, c.op, e.key::jsonb, CASE WHEN c.op = 'U' THEN e.row END, c.hlc
    FROM sync_bundle_chunks c
    CROSS JOIN LATERAL ROWS FROM (json_array_elements(c.keys), json_array_elements(CASE WHEN c.op = 'U' THEN c.rows ELSE '[]'::json END)) WITH ORDINALITY AS e(key, row, i);

CREATE OR REPLACE FUNCTION syncline_open_bundle(p_scope text) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_slot text := 'syncline.b' || md5(p_scope);
  v_cached text := current_setting(v_slot, true);
  v_floor bigint;
  v_keep bigint;
  v_seq bigint;
BEGIN
  IF v_cached IS NOT NULL AND v_cached <> '' THEN RETURN v_cached::bigint; END IF;
  -- One statement takes the scope's lock and its next seq (the row exists after a scope's first bundle).
  UPDATE sync_scopes s SET head_seq = s.head_seq + 1 WHERE s.scope = p_scope RETURNING s.head_seq, s.floor_seq INTO v_seq, v_floor;
  IF NOT FOUND THEN
    INSERT INTO sync_scopes (scope) VALUES (p_scope) ON CONFLICT (scope) DO NOTHING;
    UPDATE sync_scopes s SET head_seq = s.head_seq + 1 WHERE s.scope = p_scope RETURNING s.head_seq, s.floor_seq INTO v_seq, v_floor;
  END IF;
  INSERT INTO sync_bundles (scope, bundle_seq, source, source_bundle_id, row_count)
    VALUES (p_scope, v_seq, 'backend', 'xact:' || pg_current_xact_id()::text, 0);
  SELECT coalesce(max(r.keep) FILTER (WHERE r.scope = p_scope), max(r.keep) FILTER (WHERE r.scope = ''), 10000) INTO v_keep
    FROM sync_retention r WHERE r.scope IN (p_scope, '');
  IF v_seq - v_keep > v_floor THEN
    DELETE FROM sync_bundle_rows WHERE scope = p_scope AND bundle_seq <= v_seq - v_keep;
    DELETE FROM sync_bundle_chunks WHERE scope = p_scope AND bundle_seq <= v_seq - v_keep;
    DELETE FROM sync_tombstones WHERE scope = p_scope AND version <= v_seq - v_keep;
    UPDATE sync_scopes SET floor_seq = v_seq - v_keep WHERE scope = p_scope;
  END IF;
  -- Delivered at commit only, to every server listening: the wake-up of devices.
  PERFORM pg_notify('syncline_bundles', json_build_object('scope', p_scope, 'head_seq', v_seq::text)::text);
  PERFORM set_config(v_slot, v_seq::text, true);
  RETURN v_seq;
END
$fn$;
`,
};
