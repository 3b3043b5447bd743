import type { SqliteDriver } from './driver/sqlite-driver.js';
import { JournalTables, TWO_WAY_HASH_PREFIX } from './journal/journal-schema.js';
import type { PublisherStats } from './publisher/publisher-options.js';
import { countQuarantined } from './journal/quarantine.js';

/** What `syncline agent` reports: per-table backlog and cursors, plus this run's counters. */
export interface AgentStatus {
  db: string;
  journal_epoch: string | undefined;
  running: boolean;
  tables: { table: string; acked_seq: number; pending: number }[];
  pending_total: number;
  in_flight: number;
  quarantined: number;
  batches_acked: number;
  rows_acked: number;
  retries: number;
  epoch_rotations: number;
  last_error?: string;
  /** Tables the cloud paused (flow control): their changes wait in the journal until it resumes them. */
  paused?: { table: string; reason: string; since: string }[];
  /** Telemetry tables: the last acked seq, rows behind the time cursor (never shipped) and rowids skipped before shipping. */
  telemetry?: { table: string; time_column: string | null; acked_seq: number; late_rows: number; gap_rows: number }[];
  telemetry_rows_acked?: number;
  /** Telemetry batches sent and not yet answered, over every telemetry table. */
  telemetry_in_flight?: number;
}

/** Counts unacked entries per table in one journal scan; computed on request, not in the loop. Two-way tables push on their own. */
export async function readBacklog(db: SqliteDriver, epoch: string): Promise<AgentStatus['tables']> {
  // One read transaction, so the counts and the cursors describe the same moment.
  const { pending, cursors } = await db.readTransaction(async (tx) => ({
    pending: await tx.all<{ tbl: string; n: bigint }>(
      `SELECT s.tbl AS tbl, count(*) AS n FROM ${JournalTables.journal} j
       JOIN ${JournalTables.schemas} s ON s.id = j.schema_id
       LEFT JOIN ${JournalTables.cursors} c ON c.tbl = s.tbl AND c.journal_epoch = ?
       WHERE j.seq > coalesce(c.acked_seq, 0) AND substr(s.hash, 1, ?) <> ? GROUP BY s.tbl`,
      [epoch, TWO_WAY_HASH_PREFIX.length, TWO_WAY_HASH_PREFIX],
    ),
    cursors: await tx.all<{ tbl: string; acked_seq: bigint }>(`SELECT tbl, acked_seq FROM ${JournalTables.cursors} WHERE journal_epoch = ?`, [epoch]),
  }));
  const tables = new Map<string, { table: string; acked_seq: number; pending: number }>();
  for (const c of cursors) tables.set(c.tbl, { table: c.tbl, acked_seq: Number(c.acked_seq), pending: 0 });
  for (const p of pending) {
    const entry = tables.get(p.tbl) ?? { table: p.tbl, acked_seq: 0, pending: 0 };
    entry.pending = Number(p.n);
    tables.set(p.tbl, entry);
  }
  return [...tables.values()].sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0));
}

export async function agentStatus(db: SqliteDriver, dbPath: string, epoch: string, running: boolean, inFlight: number, stats: PublisherStats | undefined): Promise<AgentStatus> {
  const tables = await readBacklog(db, epoch);
  const status: AgentStatus = {
    db: dbPath,
    journal_epoch: epoch,
    running,
    tables,
    pending_total: tables.reduce((sum, t) => sum + t.pending, 0),
    in_flight: inFlight,
    quarantined: await countQuarantined(db),
    batches_acked: stats?.batchesAcked ?? 0,
    rows_acked: stats?.rowsAcked ?? 0,
    retries: stats?.retries ?? 0,
    epoch_rotations: stats?.epochRotations ?? 0,
  };
  if (stats?.lastError) status.last_error = stats.lastError;
  return status;
}
