/**
 * Syncline's two-way sync tables inside the device's SQLite file. Like the
 * journal they live in the file itself: a copy of the file is a copy of its
 * sync state, pending changes included.
 */
export const SharedTables = {
  state: '_syncline_shared_state',
  captured: '_syncline_shared_tables',
  dirty: '_syncline_dirty',
  applying: '_syncline_applying',
  outbox: '_syncline_outbox',
  conflicts: '_syncline_conflicts',
  superseded: '_syncline_superseded',
} as const;

export const SharedStateKeys = {
  source: 'source_id',
  scope: 'scope',
  watermark: 'watermark',
  config: 'config',
  clock: 'clock',
  hydrated: 'hydrated',
  outboxId: 'outbox_bundle_id',
  outboxBase: 'outbox_base_seq',
} as const;

export const SHARED_DDL = `
CREATE TABLE IF NOT EXISTS _syncline_shared_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Shared tables whose capture is installed, with the declaration it was installed for (JSON).
CREATE TABLE IF NOT EXISTS _syncline_shared_tables (
  name TEXT PRIMARY KEY,
  declaration TEXT NOT NULL,
  installed_at TEXT NOT NULL
) WITHOUT ROWID;

-- One entry per changed row since it was last in sync, whatever number of writes made it: the
-- key (quote() rendering, as in the journal), the row as it was before the first of those
-- writes (NULL when it did not exist), and the time of the latest write.
CREATE TABLE IF NOT EXISTS _syncline_dirty (
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  base_row TEXT,
  wall_ms INTEGER NOT NULL,
  PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

-- Holds a row only inside Syncline's own transactions that apply remote changes: the capture
-- triggers skip while it does, so remote changes never echo back. No other connection ever sees
-- the row, since it is deleted before those transactions commit.
CREATE TABLE IF NOT EXISTS _syncline_applying (
  applying INTEGER NOT NULL
);

-- The changes of one push, frozen: pushed (and retried) as they are until the cloud commits them.
CREATE TABLE IF NOT EXISTS _syncline_outbox (
  ordinal INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  op TEXT NOT NULL,
  -- the row as a JSON array of wire values; NULL for a delete
  row TEXT,
  base_row TEXT,
  -- set once a conflict on this row was resolved against that server version
  base_version TEXT,
  hlc TEXT NOT NULL
);

-- Rows this device pushed after settling a conflict, with the bundle that committed them, until pulls reach
-- that bundle: the remote changes they were settled against come back first, in earlier bundles, and are skipped.
CREATE TABLE IF NOT EXISTS _syncline_superseded (
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  bundle_seq INTEGER NOT NULL,
  PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

-- Every conflict and how it was resolved; nothing a device wrote is dropped without a row here.
CREATE TABLE IF NOT EXISTS _syncline_conflicts (
  id INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  policy TEXT NOT NULL,
  winner TEXT NOT NULL,
  local_row TEXT,
  remote_row TEXT,
  remote_version TEXT,
  result_row TEXT,
  message TEXT,
  resolved_at TEXT NOT NULL
);
`;
