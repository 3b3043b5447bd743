/**
 * How much snapshot state the server keeps, across every process on the database.
 * Its own module without imports, so `syncline server --help` shows the defaults
 * without loading the server.
 */
export interface SnapshotLimits {
  /** Rows per chunk. */
  chunkRows: number;
  /** Bytes all snapshots in the database may hold; a new snapshot beyond it is refused as unavailable. */
  maxBytes: number;
  /** Bytes one scope's snapshots may hold; a build going past it fails. */
  maxScopeBytes: number;
  /** Snapshots of one scope at a time; a new one frees the oldest beyond it. */
  maxPerScope: number;
  /** A snapshot nobody read for this long is freed. */
  idleMs: number;
  /** A build that stopped making progress for this long counts as failed. */
  stallMs: number;
  /** How often a reader looks for a chunk another process is still building. */
  pollMs: number;
}

export const MIB = 1024 ** 2;

/** The defaults of everything but chunkRows (which follows the protocol's chunk size). */
export const SNAPSHOT_LIMIT_DEFAULTS = {
  maxBytes: 4096 * MIB,
  maxScopeBytes: 1024 * MIB,
  maxPerScope: 3,
  idleMs: 2 * 60_000,
  stallMs: 30_000,
  pollMs: 20,
} as const satisfies Omit<SnapshotLimits, 'chunkRows'>;
