import type { Migration } from '../migrations.js';

/**
 * Capture of backend writes and snapshot state shared by every server process.
 *
 * - `syncline_open_bundle(scope)` gives the bundle a backend transaction writes
 *   into for one scope: the first call of a transaction locks the scope row (as a
 *   device push does), takes the next gap-free bundle_seq and remembers it in a
 *   transaction-local setting, so every later write of the transaction joins the
 *   same bundle. The lock is held until the writer commits, so bundles commit in
 *   bundle_seq order; a rollback takes the sequence number back with it.
 * - `sync_retention` lets that function prune as a device push does.
 * - Snapshots live in `sync_snapshots` / `sync_snapshot_chunks`, so any process
 *   serves any chunk and the heap holds none of them.
 * The per-table capture triggers are generated from the declarations at start
 * (cloud/shared/capture-sql.ts), not here.
 */
export const backendCapture: Migration = {
  version: 10,
  name: 'backend capture',
  sql: `
-- Bundles kept per scope; scope '' is the default. Written by each server at start.
CREATE TABLE sync_retention (
  scope text PRIMARY KEY,
  keep integer NOT NULL CHECK (keep >= 1)
);

CREATE FUNCTION syncline_open_bundle(p_scope text) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  v_slot text := 'syncline.b' || md5(p_scope);
  v_cached text := current_setting(v_slot, true);
  v_head bigint;
  v_floor bigint;
  v_keep bigint;
  v_seq bigint;
BEGIN
  IF v_cached IS NOT NULL AND v_cached <> '' THEN RETURN v_cached::bigint; END IF;
  INSERT INTO sync_scopes (scope) VALUES (p_scope) ON CONFLICT (scope) DO NOTHING;
  SELECT s.head_seq, s.floor_seq INTO v_head, v_floor FROM sync_scopes s WHERE s.scope = p_scope FOR UPDATE;
  v_seq := v_head + 1;
  INSERT INTO sync_bundles (scope, bundle_seq, source, source_bundle_id, row_count)
    VALUES (p_scope, v_seq, 'backend', 'xact:' || pg_current_xact_id()::text, 0);
  UPDATE sync_scopes SET head_seq = v_seq WHERE scope = p_scope;
  v_keep := coalesce((SELECT r.keep FROM sync_retention r WHERE r.scope = p_scope), (SELECT r.keep FROM sync_retention r WHERE r.scope = ''), 10000);
  IF v_seq - v_keep > v_floor THEN
    DELETE FROM sync_bundle_rows WHERE scope = p_scope AND bundle_seq <= v_seq - v_keep;
    DELETE FROM sync_tombstones WHERE scope = p_scope AND version <= v_seq - v_keep;
    UPDATE sync_scopes SET floor_seq = v_seq - v_keep WHERE scope = p_scope;
  END IF;
  -- Delivered at commit only, to every server listening: the wake-up of devices.
  PERFORM pg_notify('syncline_bundles', json_build_object('scope', p_scope, 'head_seq', v_seq::text)::text);
  PERFORM set_config(v_slot, v_seq::text, true);
  RETURN v_seq;
END
$fn$;

CREATE TABLE sync_snapshots (
  id uuid PRIMARY KEY,
  scope text NOT NULL,
  snapshot_seq bigint NOT NULL,
  chunk_rows integer NOT NULL,
  -- building -> done | failed; a build whose process died stops beating and counts as failed
  status text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'done', 'failed')),
  chunk_count integer NOT NULL DEFAULT 0,
  row_count bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  beat_at timestamptz NOT NULL DEFAULT now(),
  -- the PostgreSQL backend running the build: when it is gone (its process was killed), so is the build
  builder_pid integer,
  read_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_snapshots_scope ON sync_snapshots (scope, created_at);
CREATE TABLE sync_snapshot_chunks (
  snapshot_id uuid NOT NULL REFERENCES sync_snapshots (id) ON DELETE CASCADE,
  chunk_index integer NOT NULL,
  body text NOT NULL,
  PRIMARY KEY (snapshot_id, chunk_index)
);
-- Chunks are written once and read once or twice: compressing them costs more than it saves.
ALTER TABLE sync_snapshot_chunks ALTER COLUMN body SET STORAGE EXTERNAL;
`,
};
