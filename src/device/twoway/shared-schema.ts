/**
 * Syncline's two-way sync tables inside the device's SQLite file. Changes
 * themselves are captured into the journal like every other table's
 * (journal-schema.ts); these hold what only two-way sync needs. Like the journal
 * they live in the file itself: a copy of the file is a copy of its sync state,
 * pending changes included.
 */
export const SharedTables = {
  captured: '_syncline_shared_tables',
  applying: '_syncline_applying',
  settled: '_syncline_settled',
  outbox: '_syncline_outbox',
  conflicts: '_syncline_conflicts',
  superseded: '_syncline_superseded',
} as const;

/** Two-way sync's keys in the journal's `_syncline_state`. */
export const SharedStateKeys = {
  source: 'twoway_source_id',
  scope: 'twoway_scope',
  watermark: 'twoway_watermark',
  config: 'twoway_config',
  clock: 'twoway_clock',
  hydrated: 'twoway_hydrated',
  outboxId: 'twoway_outbox_bundle_id',
  outboxBase: 'twoway_outbox_base_seq',
  /** The push cursor: the app's journal entries of two-way tables at or below it are frozen into a push (or pushed). */
  pushed: 'twoway_pushed_seq',
} as const;

export const SHARED_DDL = `
-- Shared tables whose capture is installed, with the declaration it was installed for (JSON).
CREATE TABLE IF NOT EXISTS _syncline_shared_tables (
  name TEXT PRIMARY KEY,
  declaration TEXT NOT NULL,
  installed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Holds a row only inside Syncline's own transactions that apply remote changes: the guards of
-- tables that sync down only stand aside while it does. No other connection ever sees the row,
-- since it is deleted before those transactions commit.
CREATE TABLE IF NOT EXISTS _syncline_applying (
  applying INTEGER NOT NULL
);

-- Keys whose pending change a remote change settled since the last push, as of journal seq
-- \`seq\`: the app's journal entries of the key at or below it no longer count. pending = 1: the
-- key still has a change to push, now based on base_row (the remote row it was rebased onto,
-- quote() rendering; NULL when that was a delete); pending = 0: the remote change won. Emptied
-- when a push freezes the pending changes.
CREATE TABLE IF NOT EXISTS _syncline_settled (
  tbl TEXT NOT NULL,
  key TEXT NOT NULL,
  seq INTEGER NOT NULL,
  pending INTEGER NOT NULL,
  base_row TEXT,
  ms INTEGER NOT NULL,
  PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

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
