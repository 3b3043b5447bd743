import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import type { ChangeOp } from './change-stream-event.js';
import type { CheckpointRetention } from './checkpoint-retention.js';
import { validCheckpointName } from './checkpoint-store.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import type { Clock } from '../../protocol/wakeable-sleep.js';

/** One table of the allowlist, optionally opting into before-images. */
export interface TableSelection {
  name: string;
  /** Journal the old row of updates and deletes, so events carry `before`. Costs every update/delete of the table one more copied value per column. */
  beforeImages?: boolean;
}

export interface ChangeStreamOptions {
  /** The SQLite file, or an open driver (which the stream then never closes). */
  db: string | SqliteDriver;
  /** Only these tables (names compared case-insensitively, like SQLite does). Default: every table. */
  tables?: readonly (string | TableSelection)[];
  /** Only these ops. Default: all. */
  ops?: readonly ChangeOp[];
  /**
   * Start with every current row of the selected tables as `snapshot` events, then
   * the changes after them, with no gap and no duplicate across the switch.
   * 'initial': only when the named checkpoint does not exist yet (first run);
   * afterwards the stream resumes from the checkpoint.
   */
  snapshot?: boolean | 'initial';
  /** Start after this journal seq (an event's `seq`). Overrides a stored checkpoint. */
  from?: number;
  /** A durable consumer name: the stream resumes after the last acknowledged seq and pruning keeps what it still needs. */
  checkpoint?: string;
  /** Acknowledge each event once the consumer is done with it (see ChangeStream). Default true. */
  autoAck?: boolean;
  /** Write the checkpoint at most this often (ms); 0 writes on every ack. Default 1000. Close always writes it. */
  checkpointIntervalMs?: number;
  /** How often to look for new journal entries (ms). Default 50. */
  pollIntervalMs?: number;
  /** Events held for a subscriber that is behind. Default 10,000. */
  maxBuffered?: number;
  /** Stores the checkpoint retention limits in the file (they apply to every consumer of it). */
  retention?: Partial<CheckpointRetention>;
  logger?: Logger;
  /** The clock of the poll waits (tests pass a fake one). */
  clock?: Clock;
}

export const ChangeStreamDefaults = {
  pollIntervalMs: 50,
  checkpointIntervalMs: 1000,
  maxBuffered: 10_000,
} as const;

const ALL_OPS: readonly ChangeOp[] = ['insert', 'update', 'delete', 'snapshot'];

/** The options after validation, in the forms the stream uses. */
export interface StreamSettings {
  /** Lower-cased table name -> wants before-images; undefined means every table. */
  tables: ReadonlyMap<string, boolean> | undefined;
  ops: ReadonlySet<ChangeOp>;
  snapshot: boolean | 'initial';
  from: number | undefined;
  checkpoint: string | undefined;
  autoAck: boolean;
  checkpointIntervalMs: number;
  pollIntervalMs: number;
  maxBuffered: number;
}

function invalid(message: string, field: string): SynclineError {
  return new SynclineError('invalid_config', message, { field });
}

function whole(value: number | undefined, fallback: number, min: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw invalid(`${field} must be a whole number >= ${min}, got ${value}`, field);
  return value;
}

function tableMap(tables: ChangeStreamOptions['tables']): Map<string, boolean> | undefined {
  if (tables === undefined) return undefined;
  const map = new Map<string, boolean>();
  for (const t of tables) {
    const selection = typeof t === 'string' ? { name: t } : t;
    if (typeof selection.name !== 'string' || selection.name === '') throw invalid('table names must be non-empty strings', 'tables');
    const lower = selection.name.toLowerCase();
    map.set(lower, (map.get(lower) ?? false) || selection.beforeImages === true);
  }
  return map;
}

export function streamSettings(options: ChangeStreamOptions): StreamSettings {
  const ops = new Set(options.ops ?? ALL_OPS);
  for (const op of ops) if (!ALL_OPS.includes(op)) throw invalid(`unknown op ${String(op)}; ops are ${ALL_OPS.join(', ')}`, 'ops');
  if (ops.size === 0) throw invalid('ops selects nothing', 'ops');
  const snapshot = options.snapshot ?? false;
  if (snapshot !== false && !ops.has('snapshot')) throw invalid("a snapshot was asked for but ops leaves out 'snapshot'", 'ops');
  const from = options.from === undefined ? undefined : whole(options.from, 0, 0, 'from');
  if (from !== undefined && snapshot !== false) throw invalid('from and snapshot exclude each other: a snapshot starts at the current state', 'from');
  return {
    tables: tableMap(options.tables),
    ops,
    snapshot,
    from,
    checkpoint: options.checkpoint === undefined ? undefined : validCheckpointName(options.checkpoint),
    autoAck: options.autoAck ?? true,
    checkpointIntervalMs: whole(options.checkpointIntervalMs, ChangeStreamDefaults.checkpointIntervalMs, 0, 'checkpointIntervalMs'),
    pollIntervalMs: whole(options.pollIntervalMs, ChangeStreamDefaults.pollIntervalMs, 1, 'pollIntervalMs'),
    maxBuffered: whole(options.maxBuffered, ChangeStreamDefaults.maxBuffered, 1, 'maxBuffered'),
  };
}

/** Whether the stream delivers changes of `table` (as SQLite names it). */
export function selectsTable(settings: Pick<StreamSettings, 'tables'>, table: string): boolean {
  return settings.tables === undefined || settings.tables.has(table.toLowerCase());
}
