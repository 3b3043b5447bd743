/**
 * Syncline's own tables inside the device's SQLite file. Everything Syncline keeps
 * on the device lives in the file itself, so a copy of the file is a copy of the
 * sync state, and the app's own process needs nothing but SQLite to feed it.
 *
 * Bump JOURNAL_LAYOUT_VERSION when a table here changes shape; the agent refuses a
 * file with a newer layout than it knows.
 */
export const JOURNAL_LAYOUT_VERSION = 3;

export const JournalTables = {
  journal: '_syncline_journal',
  state: '_syncline_state',
  tables: '_syncline_tables',
  schemas: '_syncline_schemas',
  cursors: '_syncline_cursors',
  quarantine: '_syncline_quarantine',
  checkpoints: '_syncline_checkpoints',
  flow: '_syncline_flow',
} as const;

/** Journal op codes: one character keeps each captured change small. */
export const JournalOps = { insert: 'I', update: 'U', delete: 'D', snapshot: 'S' } as const;
export type JournalOp = (typeof JournalOps)[keyof typeof JournalOps];

/** Appended to 'U' and 'D' when the entry also holds the old row (the table opted into before-images). */
export const BEFORE_IMAGE_MARK = '+';

/**
 * Who made a journaled change: the app ('L', the column's default, so edge triggers
 * never name it) or the cloud, through two-way sync applying pulled rows ('R').
 * Remote entries are there for local consumers (the change stream); no pusher or
 * publisher ever ships them back.
 */
export const JournalOrigins = { local: 'L', remote: 'R' } as const;
export type JournalOrigin = (typeof JournalOrigins)[keyof typeof JournalOrigins];

/**
 * Schema records of two-way tables describe their declaration, not the local
 * table, and their hash says so; edge readers (the agent's backlog) leave them out.
 */
export const TWO_WAY_HASH_PREFIX = 'twoway:';

/** The journal's columns before the value slots; readers take the slots from this position on. */
export const JOURNAL_FIXED_COLUMNS = ['seq', 'schema_id', 'op', 'origin', 'ms'] as const;

/** Keys in `_syncline_state`. */
export const StateKeys = {
  layoutVersion: 'layout_version',
  journalEpoch: 'journal_epoch',
  /** The device this file ships for (device-binding.ts). */
  deviceBinding: 'device_binding',
} as const;

export const JOURNAL_DDL = `
-- One row per captured change. seq is the rowid: SQLite admits one writer at a time and a
-- transaction holds the write lock from its first write to its commit, so rowid order is
-- commit order. Pruning always keeps the newest entry so max(rowid)+1 never goes back.
-- The values follow in untyped slot columns v0, v1, ... (journal-slots.ts), added as wider
-- tables are captured; schema_id names the table, its schema and so the slot layout.
CREATE TABLE IF NOT EXISTS _syncline_journal (
  seq INTEGER PRIMARY KEY,
  schema_id INTEGER NOT NULL,
  -- I, U, D or S; U+ and D+ also hold the old row
  op TEXT NOT NULL,
  -- L: the app's own change; R: a remote change two-way sync applied (never shipped back)
  origin TEXT NOT NULL DEFAULT 'L',
  -- two-way tables only: when the app wrote the row (ms since the Unix epoch), which their
  -- conflicts are decided by; NULL for edge tables, whose capture stays free of clock reads
  ms INTEGER
);

CREATE TABLE IF NOT EXISTS _syncline_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Captured tables and how they are captured.
CREATE TABLE IF NOT EXISTS _syncline_tables (
  name TEXT PRIMARY KEY,
  schema_id INTEGER NOT NULL,
  before_images INTEGER NOT NULL DEFAULT 0,
  without_rowid INTEGER NOT NULL DEFAULT 0,
  installed_at TEXT NOT NULL
) WITHOUT ROWID;

-- Every schema a journal entry may refer to; columns and key are JSON (protocol ColumnInfo[], TableKey).
CREATE TABLE IF NOT EXISTS _syncline_schemas (
  id INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  hash TEXT NOT NULL,
  columns TEXT NOT NULL,
  key TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (tbl, hash)
);

-- Publisher progress per table: entries at or below acked_seq are in the cloud.
CREATE TABLE IF NOT EXISTS _syncline_cursors (
  tbl TEXT PRIMARY KEY,
  acked_seq INTEGER NOT NULL,
  journal_epoch TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Batches the cloud refused as invalid, kept with the reason so nothing is dropped silently.
CREATE TABLE IF NOT EXISTS _syncline_quarantine (
  id INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  error_code TEXT NOT NULL,
  message TEXT NOT NULL,
  batch TEXT NOT NULL,
  quarantined_at TEXT NOT NULL
);

-- Named change-stream consumers: pruning keeps every entry above the lowest checkpoint
-- (within the configured retention).
CREATE TABLE IF NOT EXISTS _syncline_checkpoints (
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Flow control: what the cloud last said about each table (pause_lineage / resume_lineage). A
-- paused table is not sent; its changes wait in the journal until a resume. control_id is the
-- newest control applied (UUIDv7), so a redelivered or overtaken older control changes nothing.
CREATE TABLE IF NOT EXISTS _syncline_flow (
  tbl TEXT PRIMARY KEY,
  paused INTEGER NOT NULL,
  reason TEXT,
  control_id TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;
`;
