import type Database from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { HybridClock, formatHlc, parseHlc } from '../../protocol/hlc.js';
import type { SharedTable, SnapshotChunk, WireBundle, WireConflict, WireRowChange } from '../../protocol/shared-sync.js';
import { decodeValue, encodeValue, type SqlValue } from '../../protocol/values.js';
import type { DeviceDb } from '../device-db.js';
import { parseLiteralList, renderLiteralList } from '../sql-literal.js';
import { quoteIdent, quotedList } from '../sql-text.js';
import { logConflict } from './conflict-log.js';
import { LocalTable } from './local-table.js';
import { resolveConflict, type ChangeSide, type ConflictResolver } from './resolve-conflict.js';
import { SharedStateKeys as K, SharedTables as T } from './shared-schema.js';
import { dropSharedTriggerStatements, sharedTriggerStatements } from './shared-triggers.js';
import { beginSuppressed, deleteSharedState, endSuppressed, readSharedState, withCaptureSuppressed, writeSharedState } from './shared-state.js';

/** A frozen change waiting in the outbox. */
export interface OutboxEntry {
  ordinal: number;
  table: string;
  keyText: string;
  op: 'upsert' | 'delete';
  row: SqlValue[] | null;
  baseRow: string | null;
  baseVersion: string | null;
  hlc: string;
}

export interface Outbox {
  bundleId: string;
  baseSeq: bigint;
  entries: OutboxEntry[];
}

/** What remote changes touched, for onChange listeners. `full` after a hydration, which replaces whole tables. */
export interface ChangeSet {
  keys: Map<string, SqlValue[][]>;
  full: boolean;
}

interface DirtyEntry {
  base_row: string | null;
  wall_ms: bigint;
}

interface RemoteSide {
  row: SqlValue[] | null;
  hlc: string;
  version: string;
}

const decodeRow = (row: readonly unknown[] | undefined | null): SqlValue[] | null => (row ? row.map((v) => decodeValue(v)) : null);
const renderRow = (row: readonly SqlValue[] | null): string | null => (row ? renderLiteralList(row) : null);

/**
 * The device side of two-way sync over the SQLite file: freezing pending
 * changes into the outbox, settling conflicts, applying pulled bundles and
 * snapshots with capture suppressed. Everything here is synchronous SQLite work
 * in short transactions; the network lives in SharedSync.
 */
export class SharedEngine {
  readonly db: DeviceDb;
  readonly source: string;
  readonly tables: Map<string, LocalTable>;
  readonly #order: readonly SharedTable[];
  readonly #clock: HybridClock;
  readonly #resolver: ConflictResolver | undefined;
  /** Looked up per pulled row, so prepared once. */
  readonly #dirtyAt: Database.Statement;
  readonly #dirtyGone: Database.Statement;
  readonly #dirtyRebased: Database.Statement;

  constructor(db: DeviceDb, declarations: readonly SharedTable[], source: string, resolver?: ConflictResolver) {
    this.db = db;
    this.source = source;
    this.#order = declarations;
    this.tables = new Map(declarations.map((t) => [t.name, new LocalTable(db, t)]));
    this.#resolver = resolver;
    this.#dirtyAt = db.prepare(`SELECT base_row, wall_ms FROM ${T.dirty} WHERE tbl = ? AND key = ?`);
    this.#dirtyGone = db.prepare(`DELETE FROM ${T.dirty} WHERE tbl = ? AND key = ?`);
    this.#dirtyRebased = db.prepare(`UPDATE ${T.dirty} SET base_row = ? WHERE tbl = ? AND key = ?`);
    const clock = readSharedState(db, K.clock);
    this.#clock = new HybridClock(source, clock ? (JSON.parse(clock) as { ms: number; counter: number }) : undefined);
  }

  get watermark(): bigint {
    return BigInt(readSharedState(this.db, K.watermark) ?? '0');
  }

  get hydrated(): boolean {
    return readSharedState(this.db, K.hydrated) === '1';
  }

  pendingCount(): number {
    const dirty = this.db.prepare(`SELECT count(*) AS n FROM ${T.dirty}`).get() as { n: bigint };
    const outbox = this.db.prepare(`SELECT count(*) AS n FROM ${T.outbox}`).get() as { n: bigint };
    return Number(dirty.n + outbox.n);
  }

  #table(name: string): LocalTable {
    const table = this.tables.get(name);
    if (!table) throw new SynclineError('unknown_table', `${name} is not a shared table on this device; reopen to take the server's new declarations`, { table: name });
    return table;
  }

  #saveClock(): void {
    writeSharedState(this.db, K.clock, JSON.stringify(this.#clock.state));
  }

  /**
   * Moves pending changes into the outbox, one entry per row with the row as it is
   * now, parents first. An outbox left by an unfinished push is returned as it is:
   * it is resent with the same bundle id, so the cloud can tell a retry.
   */
  freeze(): Outbox | undefined {
    return this.db
      .transaction(() => {
        const existing = this.outbox();
        if (existing) return existing;
        const dirty = this.db.prepare(`SELECT key, base_row, wall_ms FROM ${T.dirty} WHERE tbl = ? ORDER BY key`);
        const insert = this.db.prepare(`INSERT INTO ${T.outbox} (ordinal, tbl, key, op, row, base_row, hlc) VALUES (?, ?, ?, ?, ?, ?, ?)`);
        const frozen: { table: string; entry: DirtyEntry & { key: string }; row: SqlValue[] | null; hlc: string }[] = [];
        for (const declaration of this.#order) {
          const table = this.tables.get(declaration.name)!;
          for (const entry of dirty.all(declaration.name) as (DirtyEntry & { key: string })[]) {
            const row = table.read(parseLiteralList(entry.key));
            // Created and deleted again before it was ever pushed: nothing to tell the cloud.
            if (row === null && entry.base_row === null) continue;
            frozen.push({ table: declaration.name, entry, row, hlc: '' });
          }
        }
        // Stamped in the order the writes were made, not the parent-first order they travel in: a stamp only moves
        // forward, so stamping an earlier write after a later one would make it the later one for last_writer_wins.
        for (const change of [...frozen].sort((a, b) => (a.entry.wall_ms < b.entry.wall_ms ? -1 : a.entry.wall_ms > b.entry.wall_ms ? 1 : 0))) {
          change.hlc = this.#clock.stamp(Number(change.entry.wall_ms));
        }
        frozen.forEach(({ table, entry, row, hlc }, ordinal) =>
          insert.run(ordinal, table, entry.key, row ? 'upsert' : 'delete', row ? JSON.stringify(row.map(encodeValue)) : null, entry.base_row, hlc),
        );
        this.db.prepare(`DELETE FROM ${T.dirty}`).run();
        if (frozen.length === 0) return undefined;
        writeSharedState(this.db, K.outboxId, uuidv7());
        writeSharedState(this.db, K.outboxBase, this.watermark.toString());
        this.#saveClock();
        return this.outbox();
      })
      .immediate();
  }

  outbox(): Outbox | undefined {
    const bundleId = readSharedState(this.db, K.outboxId);
    if (!bundleId) return undefined;
    const rows = this.db.prepare(`SELECT ordinal, tbl, key, op, row, base_row, base_version, hlc FROM ${T.outbox} ORDER BY ordinal`).all() as {
      ordinal: bigint;
      tbl: string;
      key: string;
      op: 'upsert' | 'delete';
      row: string | null;
      base_row: string | null;
      base_version: string | null;
      hlc: string;
    }[];
    const entries = rows.map((r) => ({
      ordinal: Number(r.ordinal),
      table: r.tbl,
      keyText: r.key,
      op: r.op,
      row: r.row === null ? null : decodeRow(JSON.parse(r.row) as unknown[]),
      baseRow: r.base_row,
      baseVersion: r.base_version,
      hlc: r.hlc,
    }));
    return { bundleId, baseSeq: BigInt(readSharedState(this.db, K.outboxBase) ?? '0'), entries };
  }

  static wire(entry: OutboxEntry): WireRowChange {
    const change: WireRowChange = { table: entry.table, op: entry.op, key: parseLiteralList(entry.keyText).map(encodeValue), hlc: entry.hlc };
    if (entry.row) change.row = entry.row.map(encodeValue);
    if (entry.baseVersion !== null) change.base_version = entry.baseVersion;
    return change;
  }

  /**
   * The cloud committed the outbox (as bundle `bundleSeq`; absent when settling emptied it): it is done. The bundle
   * comes back in a pull and is skipped there as our own. Rows settled against a remote change are remembered until
   * then, since that change comes back first and must not overwrite them.
   */
  committed(bundleSeq?: bigint): void {
    this.db
      .transaction(() => {
        if (bundleSeq !== undefined && bundleSeq > this.watermark) {
          this.db
            .prepare(
              `INSERT INTO ${T.superseded} (tbl, key, bundle_seq) SELECT tbl, key, ? FROM ${T.outbox} WHERE base_version IS NOT NULL
               ON CONFLICT (tbl, key) DO UPDATE SET bundle_seq = excluded.bundle_seq`,
            )
            .run(bundleSeq);
        }
        this.db.prepare(`DELETE FROM ${T.outbox}`).run();
        deleteSharedState(this.db, K.outboxId);
        deleteSharedState(this.db, K.outboxBase);
      })
      .immediate();
  }

  /** Puts the outbox back among the pending changes (before a rebuild); the outbox's older base wins. */
  requeueOutbox(): void {
    this.db
      .transaction(() => {
        const outbox = this.outbox();
        for (const entry of outbox?.entries ?? []) {
          this.db
            .prepare(
              `INSERT INTO ${T.dirty} (tbl, key, base_row, wall_ms) VALUES (?, ?, ?, ?)
               ON CONFLICT (tbl, key) DO UPDATE SET base_row = excluded.base_row, wall_ms = max(wall_ms, excluded.wall_ms)`,
            )
            .run(entry.table, entry.keyText, entry.baseRow, parseHlc(entry.hlc)?.ms ?? 0);
        }
        this.committed();
      })
      .immediate();
  }

  #dirty(table: string, keyText: string): DirtyEntry | undefined {
    return this.#dirtyAt.get(table, keyText) as DirtyEntry | undefined;
  }

  #settle(table: LocalTable, key: SqlValue[], base: string | null, local: ChangeSide, remote: RemoteSide) {
    const decision = resolveConflict(
      { table: table.declaration, key, base: base === null ? null : parseLiteralList(base), local, remote: { op: remote.row ? 'upsert' : 'delete', ...remote } },
      this.#resolver,
    );
    const { resolution } = decision;
    const result = resolution.winner === 'remote' ? remote.row : resolution.winner === 'local' ? local.row : resolution.row;
    logConflict(this.db, {
      table: table.name,
      key,
      kind: 'version',
      policy: decision.policy,
      winner: resolution.winner,
      local: local.row,
      remote: remote.row,
      remoteVersion: remote.version,
      result,
      message: null,
    });
    return { winner: resolution.winner, result };
  }

  /**
   * A remote change of a row that also has pending local changes: the table's
   * policy decides, the standing row is written, and the pending entry either
   * goes (remote won) or stays with the remote row as its new base, so it is
   * pushed on top of what it was rebased onto.
   */
  #rebase(table: LocalTable, key: SqlValue[], keyText: string, dirty: DirtyEntry, remote: RemoteSide): void {
    const localRow = table.read(key);
    const local: ChangeSide = { op: localRow ? 'upsert' : 'delete', row: localRow, hlc: formatHlc({ ms: Number(dirty.wall_ms), counter: 0, source: this.source }) };
    const { winner, result } = this.#settle(table, key, dirty.base_row, local, remote);
    if (winner === 'remote') {
      table.put(key, remote.row);
      this.#dirtyGone.run(table.name, keyText);
      return;
    }
    if (winner === 'merged') table.put(key, result);
    this.#dirtyRebased.run(renderRow(remote.row), table.name, keyText);
  }

  /** Applies one whole pulled bundle in one transaction and moves the watermark past it. */
  applyBundle(bundle: WireBundle): ChangeSet {
    const changes: ChangeSet = { keys: new Map(), full: false };
    const seq = BigInt(bundle.bundle_seq);
    withCaptureSuppressed(this.db, () => {
      if (bundle.source !== this.source) {
        const superseded = this.db.prepare(`SELECT bundle_seq FROM ${T.superseded} WHERE tbl = ? AND key = ?`).pluck();
        for (const change of bundle.rows) {
          const table = this.#table(change.table);
          const key = change.key.map((v) => decodeValue(v));
          const keyText = renderLiteralList(key);
          const remote: RemoteSide = { row: decodeRow(change.row), hlc: change.hlc, version: change.version };
          this.#clock.observe(change.hlc);
          if (((superseded.get(table.name, keyText) as bigint | undefined) ?? 0n) > seq) continue;
          const dirty = this.#dirty(table.name, keyText);
          if (dirty) this.#rebase(table, key, keyText, dirty, remote);
          else table.put(key, remote.row);
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
        this.#saveClock();
      }
      this.moveWatermark(seq);
    });
    return changes;
  }

  /** Moves the watermark over bundles that carried nothing for this device. */
  advanceTo(seq: bigint): void {
    if (seq > this.watermark) this.moveWatermark(seq);
  }

  /** Every bundle up to `seq` is now applied: rows remembered as settled ahead of one of them need no more guarding. */
  moveWatermark(seq: bigint): void {
    this.db.prepare(`DELETE FROM ${T.superseded} WHERE bundle_seq <= ?`).run(seq);
    writeSharedState(this.db, K.watermark, seq.toString());
  }

  /**
   * The outbox was refused. Version conflicts are settled by the table's policy
   * against the server's row (the winner is written locally unless newer local
   * changes wait); the survivors carry the version they were settled against.
   * A change that broke a constraint on the server is rolled back locally to the
   * row it started from. Every case is logged; the outbox gets a new bundle id.
   */
  settleRefusal(conflicts: readonly WireConflict[]): ChangeSet {
    const changes: ChangeSet = { keys: new Map(), full: false };
    withCaptureSuppressed(this.db, () => {
      const outbox = this.outbox()!;
      const byKey = new Map(outbox.entries.map((e) => [`${e.table}\u0000${e.keyText}`, e]));
      for (const conflict of conflicts) {
        const table = this.tables.get(conflict.table);
        if (!table) throw new SynclineError('conflict', `the cloud refused the push: ${conflict.message}`, { kind: conflict.kind });
        const key = conflict.key.map((v) => decodeValue(v));
        const keyText = renderLiteralList(key);
        const entry = byKey.get(`${table.name}\u0000${keyText}`);
        if (!entry) continue;
        const newerLocal = this.#dirty(table.name, keyText) !== undefined;
        const standing = conflict.kind === 'version' ? this.#settleEntry(table, key, entry, conflict, newerLocal) : this.#rollBack(table, key, entry, conflict, newerLocal);
        if (standing && !newerLocal) {
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
      }
      writeSharedState(this.db, K.outboxId, uuidv7());
      this.#saveClock();
      if ((this.db.prepare(`SELECT count(*) AS n FROM ${T.outbox}`).get() as { n: bigint }).n === 0n) this.committed();
    });
    return changes;
  }

  #settleEntry(table: LocalTable, key: SqlValue[], entry: OutboxEntry, conflict: WireConflict, newerLocal: boolean): boolean {
    const remote: RemoteSide = { row: decodeRow(conflict.server_row), hlc: conflict.server_hlc ?? '', version: conflict.server_version };
    if (remote.hlc) this.#clock.observe(remote.hlc);
    const { winner, result } = this.#settle(table, key, entry.baseRow, { op: entry.op, row: entry.row, hlc: entry.hlc }, remote);
    if (winner === 'remote') {
      this.db.prepare(`DELETE FROM ${T.outbox} WHERE ordinal = ?`).run(entry.ordinal);
      if (!newerLocal) table.put(key, remote.row);
      return true;
    }
    this.db
      .prepare(`UPDATE ${T.outbox} SET op = ?, row = ?, base_row = ?, base_version = ? WHERE ordinal = ?`)
      .run(result ? 'upsert' : 'delete', result ? JSON.stringify(result.map(encodeValue)) : null, renderRow(remote.row), remote.version, entry.ordinal);
    if (winner === 'merged' && !newerLocal) table.put(key, result);
    return winner === 'merged';
  }

  #rollBack(table: LocalTable, key: SqlValue[], entry: OutboxEntry, conflict: WireConflict, newerLocal: boolean): boolean {
    this.db.prepare(`DELETE FROM ${T.outbox} WHERE ordinal = ?`).run(entry.ordinal);
    const before = entry.baseRow === null ? null : parseLiteralList(entry.baseRow);
    let message = `${conflict.kind}${conflict.constraint ? ` (${conflict.constraint})` : ''}: ${conflict.message}`;
    if (!newerLocal) {
      try {
        table.put(key, before);
      } catch (error) {
        message += `; the local row could not be rolled back: ${(error as Error).message}`;
      }
    }
    logConflict(this.db, { table: table.name, key, kind: conflict.kind, policy: 'rejected', winner: 'remote', local: entry.row, remote: null, remoteVersion: null, result: newerLocal ? entry.row : before, message });
    return !newerLocal;
  }

  /** Starts replacing the pulled tables with a snapshot; the write lock is held until finish() or abort(). */
  startHydration(): Hydration {
    return new Hydration(this, this.#order, (change) => this.#clock.observe(change), (t, k, kt, d, r) => this.#rebase(t, k, kt, d, r), () => this.#saveClock());
  }
}

/**
 * One hydration: the tables that sync down are emptied of every row without
 * pending changes, then filled chunk by chunk; rows with pending changes are
 * rebased on the snapshot's row when it is newer than what they were based on.
 * One transaction, so an interrupted hydration leaves the file as it was.
 */
export class Hydration {
  readonly #engine: SharedEngine;
  readonly #dirty = new Map<string, Map<string, DirtyEntry>>();
  readonly #seen = new Set<string>();
  readonly #before: bigint;
  #pulled: readonly SharedTable[] = [];
  #rows = 0;
  #latestHlc = '';

  constructor(
    engine: SharedEngine,
    order: readonly SharedTable[],
    private readonly observe: (hlc: string) => void,
    private readonly rebase: (table: LocalTable, key: SqlValue[], keyText: string, dirty: DirtyEntry, remote: RemoteSide) => void,
    private readonly saveClock: () => void,
  ) {
    this.#engine = engine;
    const db = engine.db;
    db.exec('BEGIN IMMEDIATE');
    try {
      beginSuppressed(db);
      this.#before = engine.watermark;
      const dirty = db.prepare(`SELECT tbl, key, base_row, wall_ms FROM ${T.dirty}`).all() as (DirtyEntry & { tbl: string; key: string })[];
      for (const entry of dirty) {
        if (!this.#dirty.has(entry.tbl)) this.#dirty.set(entry.tbl, new Map());
        this.#dirty.get(entry.tbl)!.set(entry.key, entry);
      }
      this.#pulled = order.filter((t) => t.direction === 'down' || t.direction === 'both');
      for (const table of this.#pulled) {
        const name = quoteIdent(table.name);
        // Capture is suppressed anyway; without the triggers each inserted row also skips the trigger's check,
        // which is most of an insert's cost. They are back before the transaction commits (or, rolled back, never left).
        for (const sql of dropSharedTriggerStatements(table.name)) db.exec(sql);
        if (this.#dirty.has(table.name)) {
          db.prepare(`DELETE FROM ${name} WHERE NOT EXISTS (SELECT 1 FROM ${T.dirty} d WHERE d.tbl = ? AND d.key = ${quotedList(`${name}.`, table.key)})`).run(table.name);
        } else {
          db.prepare(`DELETE FROM ${name}`).run();
        }
      }
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  get rows(): number {
    return this.#rows;
  }

  add(chunk: SnapshotChunk): void {
    const table = this.#engine.tables.get(chunk.table);
    if (!table) throw new SynclineError('unknown_table', `the snapshot has rows of ${chunk.table}, which is not shared on this device`, { table: chunk.table });
    const keyAt = table.declaration.key.map((k) => table.declaration.columns.findIndex((c) => c.name === k));
    const pending = this.#dirty.get(table.name);
    const own = new Set(chunk.own);
    for (let i = 0; i < chunk.rows.length; i++) {
      const wire = chunk.rows[i]!;
      const row = new Array<SqlValue>(wire.length);
      for (let c = 0; c < wire.length; c++) row[c] = decodeValue(wire[c]);
      const hlc = chunk.hlcs[i]!;
      if (hlc > this.#latestHlc) this.#latestHlc = hlc;
      if (pending) {
        const key = keyAt.map((p) => row[p]!);
        const keyText = renderLiteralList(key);
        const dirty = pending.get(keyText);
        if (dirty) {
          this.#seen.add(`${table.name}\u0000${keyText}`);
          // A row this device wrote last (its push committed, the pull that would have brought it back did not)
          // is what the pending change was made on, not a remote change; pulls skip the device's own bundles alike.
          if (BigInt(chunk.versions[i]!) > this.#before && !own.has(i)) this.rebase(table, key, keyText, dirty, { row, hlc, version: chunk.versions[i]! });
          continue;
        }
      }
      table.insert(row);
      this.#rows++;
    }
  }

  /**
   * Rows with pending changes that the snapshot no longer has were deleted on the
   * server after their base: settled like any remote delete. Then the watermark
   * moves to the snapshot and the transaction commits.
   */
  finish(snapshotSeq: bigint): void {
    const db = this.#engine.db;
    try {
      for (const [tableName, entries] of this.#dirty) {
        const table = this.#engine.tables.get(tableName);
        if (!table || table.declaration.direction === 'up') continue;
        for (const [keyText, dirty] of entries) {
          if (this.#seen.has(`${tableName}\u0000${keyText}`) || dirty.base_row === null || snapshotSeq <= this.#before) continue;
          this.rebase(table, parseLiteralList(keyText), keyText, dirty, { row: null, hlc: '', version: snapshotSeq.toString() });
        }
      }
      if (this.#latestHlc) this.observe(this.#latestHlc);
      this.saveClock();
      this.#engine.moveWatermark(snapshotSeq);
      writeSharedState(db, K.hydrated, '1');
      for (const table of this.#pulled) for (const sql of sharedTriggerStatements(table)) db.exec(sql);
      endSuppressed(db);
      db.exec('COMMIT');
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  abort(): void {
    const db = this.#engine.db;
    if (db.inTransaction) db.exec('ROLLBACK');
  }
}
