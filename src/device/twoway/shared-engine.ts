import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { HybridClock, formatHlc, parseHlc } from '../../protocol/hlc.js';
import type { SharedTable, SnapshotChunk, WireBundle, WireConflict, WireRowChange } from '../../protocol/shared-sync.js';
import { decodeValue, encodeValue, type SqlValue } from '../../protocol/values.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { parseLiteralList, renderLiteralList } from '../journal/sql-literal.js';
import { quoteIdent, quotedList } from '../capture/sql-text.js';
import { logConflict } from './conflict-log.js';
import { LocalTable } from './local-table.js';
import { resolveConflict, type ChangeSide, type ConflictResolver } from './resolve-conflict.js';
import { SharedStateKeys as K, SharedTables as T } from './shared-schema.js';
import { dropSharedTriggerStatements, sharedTriggerStatements } from './shared-triggers.js';
import { deleteSharedState, readSharedState, withCaptureSuppressed, writeSharedState } from './shared-state.js';

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

type DirtyEntry = {
  base_row: string | null;
  wall_ms: bigint;
};

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
 * snapshots with capture suppressed. Each step is one write transaction on the
 * driver that awaits nothing but its own statements (hydration alone spans its
 * chunk downloads); the network lives in SharedSync.
 */
export class SharedEngine {
  readonly driver: SqliteDriver;
  readonly source: string;
  readonly tables: Map<string, LocalTable>;
  readonly #order: readonly SharedTable[];
  readonly #clock: HybridClock;
  readonly #resolver: ConflictResolver | undefined;
  /** The file's watermark and hydration flag as of the last transaction that changed them, for synchronous readers. */
  #watermark: bigint;
  #hydrated: boolean;

  private constructor(driver: SqliteDriver, declarations: readonly SharedTable[], source: string, clock: HybridClock, watermark: bigint, hydrated: boolean, resolver?: ConflictResolver) {
    this.driver = driver;
    this.source = source;
    this.#order = declarations;
    this.tables = new Map(declarations.map((t) => [t.name, new LocalTable(t)]));
    this.#resolver = resolver;
    this.#clock = clock;
    this.#watermark = watermark;
    this.#hydrated = hydrated;
  }

  static async load(driver: SqliteDriver, declarations: readonly SharedTable[], source: string, resolver?: ConflictResolver): Promise<SharedEngine> {
    const clock = await readSharedState(driver, K.clock);
    const watermark = BigInt((await readSharedState(driver, K.watermark)) ?? '0');
    const hydrated = (await readSharedState(driver, K.hydrated)) === '1';
    const hlc = new HybridClock(source, clock ? (JSON.parse(clock) as { ms: number; counter: number }) : undefined);
    return new SharedEngine(driver, declarations, source, hlc, watermark, hydrated, resolver);
  }

  get watermark(): bigint {
    return this.#watermark;
  }

  get hydrated(): boolean {
    return this.#hydrated;
  }

  async pendingCount(): Promise<number> {
    const row = await this.driver.get<{ n: bigint }>(`SELECT (SELECT count(*) FROM ${T.dirty}) + (SELECT count(*) FROM ${T.outbox}) AS n`);
    return Number(row!.n);
  }

  #table(name: string): LocalTable {
    const table = this.tables.get(name);
    if (!table) throw new SynclineError('unknown_table', `${name} is not a shared table on this device; reopen to take the server's new declarations`, { table: name });
    return table;
  }

  #saveClock(tx: SqliteQueryable): Promise<void> {
    return writeSharedState(tx, K.clock, JSON.stringify(this.#clock.state));
  }

  /**
   * Moves pending changes into the outbox, one entry per row with the row as it is
   * now, parents first. An outbox left by an unfinished push is returned as it is:
   * it is resent with the same bundle id, so the cloud can tell a retry.
   */
  freeze(): Promise<Outbox | undefined> {
    return this.driver.writeTransaction(async (tx) => {
      const existing = await this.#readOutbox(tx);
      if (existing) return existing;
      const frozen: { table: string; entry: DirtyEntry & { key: string }; row: SqlValue[] | null; hlc: string }[] = [];
      for (const declaration of this.#order) {
        const table = this.tables.get(declaration.name)!;
        const dirty = await tx.all<DirtyEntry & { key: string }>(`SELECT key, base_row, wall_ms FROM ${T.dirty} WHERE tbl = ? ORDER BY key`, [declaration.name]);
        for (const entry of dirty) {
          const row = await table.read(tx, parseLiteralList(entry.key));
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
      const insert = `INSERT INTO ${T.outbox} (ordinal, tbl, key, op, row, base_row, hlc) VALUES (?, ?, ?, ?, ?, ?, ?)`;
      for (const [ordinal, { table, entry, row, hlc }] of frozen.entries()) {
        await tx.run(insert, [ordinal, table, entry.key, row ? 'upsert' : 'delete', row ? JSON.stringify(row.map(encodeValue)) : null, entry.base_row, hlc]);
      }
      await tx.run(`DELETE FROM ${T.dirty}`);
      if (frozen.length === 0) return undefined;
      await writeSharedState(tx, K.outboxId, uuidv7());
      await writeSharedState(tx, K.outboxBase, (await this.#storedWatermark(tx)).toString());
      await this.#saveClock(tx);
      return this.#readOutbox(tx);
    });
  }

  outbox(): Promise<Outbox | undefined> {
    return this.driver.readTransaction((tx) => this.#readOutbox(tx));
  }

  async #readOutbox(tx: SqliteQueryable): Promise<Outbox | undefined> {
    const bundleId = await readSharedState(tx, K.outboxId);
    if (!bundleId) return undefined;
    const rows = await tx.all<{
      ordinal: bigint;
      tbl: string;
      key: string;
      op: 'upsert' | 'delete';
      row: string | null;
      base_row: string | null;
      base_version: string | null;
      hlc: string;
    }>(`SELECT ordinal, tbl, key, op, row, base_row, base_version, hlc FROM ${T.outbox} ORDER BY ordinal`);
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
    return { bundleId, baseSeq: BigInt((await readSharedState(tx, K.outboxBase)) ?? '0'), entries };
  }

  async #storedWatermark(tx: SqliteQueryable): Promise<bigint> {
    return BigInt((await readSharedState(tx, K.watermark)) ?? '0');
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
  committed(bundleSeq?: bigint): Promise<void> {
    return this.driver.writeTransaction((tx) => this.#committed(tx, bundleSeq));
  }

  async #committed(tx: SqliteQueryable, bundleSeq?: bigint): Promise<void> {
    if (bundleSeq !== undefined && bundleSeq > (await this.#storedWatermark(tx))) {
      await tx.run(
        `INSERT INTO ${T.superseded} (tbl, key, bundle_seq) SELECT tbl, key, ? FROM ${T.outbox} WHERE base_version IS NOT NULL
         ON CONFLICT (tbl, key) DO UPDATE SET bundle_seq = excluded.bundle_seq`,
        [bundleSeq],
      );
    }
    await tx.run(`DELETE FROM ${T.outbox}`);
    await deleteSharedState(tx, K.outboxId);
    await deleteSharedState(tx, K.outboxBase);
  }

  /** Puts the outbox back among the pending changes (before a rebuild); the outbox's older base wins. */
  requeueOutbox(): Promise<void> {
    return this.driver.writeTransaction(async (tx) => {
      const outbox = await this.#readOutbox(tx);
      for (const entry of outbox?.entries ?? []) {
        await tx.run(
          `INSERT INTO ${T.dirty} (tbl, key, base_row, wall_ms) VALUES (?, ?, ?, ?)
           ON CONFLICT (tbl, key) DO UPDATE SET base_row = excluded.base_row, wall_ms = max(wall_ms, excluded.wall_ms)`,
          [entry.table, entry.keyText, entry.baseRow, parseHlc(entry.hlc)?.ms ?? 0],
        );
      }
      await this.#committed(tx);
    });
  }

  #dirty(tx: SqliteQueryable, table: string, keyText: string): Promise<DirtyEntry | undefined> {
    return tx.get<DirtyEntry>(`SELECT base_row, wall_ms FROM ${T.dirty} WHERE tbl = ? AND key = ?`, [table, keyText]);
  }

  async #settle(tx: SqliteQueryable, table: LocalTable, key: SqlValue[], base: string | null, local: ChangeSide, remote: RemoteSide) {
    const decision = resolveConflict(
      { table: table.declaration, key, base: base === null ? null : parseLiteralList(base), local, remote: { op: remote.row ? 'upsert' : 'delete', ...remote } },
      this.#resolver,
    );
    const { resolution } = decision;
    const result = resolution.winner === 'remote' ? remote.row : resolution.winner === 'local' ? local.row : resolution.row;
    await logConflict(tx, {
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
  async rebase(tx: SqliteQueryable, table: LocalTable, key: SqlValue[], keyText: string, dirty: DirtyEntry, remote: RemoteSide): Promise<void> {
    const localRow = await table.read(tx, key);
    const local: ChangeSide = { op: localRow ? 'upsert' : 'delete', row: localRow, hlc: formatHlc({ ms: Number(dirty.wall_ms), counter: 0, source: this.source }) };
    const { winner, result } = await this.#settle(tx, table, key, dirty.base_row, local, remote);
    if (winner === 'remote') {
      await table.put(tx, key, remote.row);
      await tx.run(`DELETE FROM ${T.dirty} WHERE tbl = ? AND key = ?`, [table.name, keyText]);
      return;
    }
    if (winner === 'merged') await table.put(tx, key, result);
    await tx.run(`UPDATE ${T.dirty} SET base_row = ? WHERE tbl = ? AND key = ?`, [renderRow(remote.row), table.name, keyText]);
  }

  /** Applies one whole pulled bundle in one transaction and moves the watermark past it. */
  async applyBundle(bundle: WireBundle): Promise<ChangeSet> {
    const changes: ChangeSet = { keys: new Map(), full: false };
    const seq = BigInt(bundle.bundle_seq);
    await withCaptureSuppressed(this.driver, async (tx) => {
      if (bundle.source !== this.source) {
        for (const change of bundle.rows) {
          const table = this.#table(change.table);
          const key = change.key.map((v) => decodeValue(v));
          const keyText = renderLiteralList(key);
          const remote: RemoteSide = { row: decodeRow(change.row), hlc: change.hlc, version: change.version };
          this.#clock.observe(change.hlc);
          const superseded = await tx.get<{ bundle_seq: bigint }>(`SELECT bundle_seq FROM ${T.superseded} WHERE tbl = ? AND key = ?`, [table.name, keyText]);
          if ((superseded?.bundle_seq ?? 0n) > seq) continue;
          const dirty = await this.#dirty(tx, table.name, keyText);
          if (dirty) await this.rebase(tx, table, key, keyText, dirty, remote);
          else await table.put(tx, key, remote.row);
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
        await this.#saveClock(tx);
      }
      await this.moveWatermark(tx, seq);
    });
    this.#watermark = seq;
    return changes;
  }

  /** Moves the watermark over bundles that carried nothing for this device. */
  async advanceTo(seq: bigint): Promise<void> {
    if (seq <= this.#watermark) return;
    await this.driver.writeTransaction((tx) => this.moveWatermark(tx, seq));
    this.#watermark = seq;
  }

  /** Every bundle up to `seq` is now applied: rows remembered as settled ahead of one of them need no more guarding. */
  async moveWatermark(tx: SqliteQueryable, seq: bigint): Promise<void> {
    await tx.run(`DELETE FROM ${T.superseded} WHERE bundle_seq <= ?`, [seq]);
    await writeSharedState(tx, K.watermark, seq.toString());
  }

  /**
   * The outbox was refused. Version conflicts are settled by the table's policy
   * against the server's row (the winner is written locally unless newer local
   * changes wait); the survivors carry the version they were settled against.
   * A change that broke a constraint on the server is rolled back locally to the
   * row it started from. Every case is logged; the outbox gets a new bundle id.
   */
  settleRefusal(conflicts: readonly WireConflict[]): Promise<ChangeSet> {
    const changes: ChangeSet = { keys: new Map(), full: false };
    return withCaptureSuppressed(this.driver, async (tx) => {
      const outbox = (await this.#readOutbox(tx))!;
      const byKey = new Map(outbox.entries.map((e) => [`${e.table}\u0000${e.keyText}`, e]));
      for (const conflict of conflicts) {
        const table = this.tables.get(conflict.table);
        if (!table) throw new SynclineError('conflict', `the cloud refused the push: ${conflict.message}`, { kind: conflict.kind });
        const key = conflict.key.map((v) => decodeValue(v));
        const keyText = renderLiteralList(key);
        const entry = byKey.get(`${table.name}\u0000${keyText}`);
        if (!entry) continue;
        const newerLocal = (await this.#dirty(tx, table.name, keyText)) !== undefined;
        const standing =
          conflict.kind === 'version' ? await this.#settleEntry(tx, table, key, entry, conflict, newerLocal) : await this.#rollBack(tx, table, key, entry, conflict, newerLocal);
        if (standing && !newerLocal) {
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
      }
      await writeSharedState(tx, K.outboxId, uuidv7());
      await this.#saveClock(tx);
      if ((await tx.get<{ n: bigint }>(`SELECT count(*) AS n FROM ${T.outbox}`))!.n === 0n) await this.#committed(tx);
      return changes;
    });
  }

  async #settleEntry(tx: SqliteQueryable, table: LocalTable, key: SqlValue[], entry: OutboxEntry, conflict: WireConflict, newerLocal: boolean): Promise<boolean> {
    const remote: RemoteSide = { row: decodeRow(conflict.server_row), hlc: conflict.server_hlc ?? '', version: conflict.server_version };
    if (remote.hlc) this.#clock.observe(remote.hlc);
    const { winner, result } = await this.#settle(tx, table, key, entry.baseRow, { op: entry.op, row: entry.row, hlc: entry.hlc }, remote);
    if (winner === 'remote') {
      await tx.run(`DELETE FROM ${T.outbox} WHERE ordinal = ?`, [entry.ordinal]);
      if (!newerLocal) await table.put(tx, key, remote.row);
      return true;
    }
    await tx.run(`UPDATE ${T.outbox} SET op = ?, row = ?, base_row = ?, base_version = ? WHERE ordinal = ?`, [
      result ? 'upsert' : 'delete',
      result ? JSON.stringify(result.map(encodeValue)) : null,
      renderRow(remote.row),
      remote.version,
      entry.ordinal,
    ]);
    if (winner === 'merged' && !newerLocal) await table.put(tx, key, result);
    return winner === 'merged';
  }

  async #rollBack(tx: SqliteQueryable, table: LocalTable, key: SqlValue[], entry: OutboxEntry, conflict: WireConflict, newerLocal: boolean): Promise<boolean> {
    await tx.run(`DELETE FROM ${T.outbox} WHERE ordinal = ?`, [entry.ordinal]);
    const before = entry.baseRow === null ? null : parseLiteralList(entry.baseRow);
    let message = `${conflict.kind}${conflict.constraint ? ` (${conflict.constraint})` : ''}: ${conflict.message}`;
    if (!newerLocal) {
      // A failing statement undoes only itself in SQLite; the transaction goes on.
      try {
        await table.put(tx, key, before);
      } catch (error) {
        message += `; the local row could not be rolled back: ${(error as Error).message}`;
      }
    }
    await logConflict(tx, {
      table: table.name,
      key,
      kind: conflict.kind,
      policy: 'rejected',
      winner: 'remote',
      local: entry.row,
      remote: null,
      remoteVersion: null,
      result: newerLocal ? entry.row : before,
      message,
    });
    return !newerLocal;
  }

  /**
   * Replaces the pulled tables with a snapshot read from `chunks`, in one write
   * transaction held while the chunks arrive, so an interrupted hydration leaves
   * the file as it was. Returns the rows inserted.
   */
  async hydrate(chunks: AsyncIterable<SnapshotChunk>, snapshotSeq: bigint, progress?: (chunks: number, rows: number) => void): Promise<number> {
    const rows = await withCaptureSuppressed(this.driver, async (tx) => {
      const run = await Hydration.start(this, tx, this.#order);
      let count = 0;
      for await (const chunk of chunks) {
        await run.add(chunk);
        progress?.(++count, run.rows);
      }
      await run.finish(snapshotSeq, (hlc) => this.#clock.observe(hlc));
      await this.#saveClock(tx);
      await this.moveWatermark(tx, snapshotSeq);
      await writeSharedState(tx, K.hydrated, '1');
      return run.rows;
    });
    this.#watermark = snapshotSeq;
    this.#hydrated = true;
    return rows;
  }
}

/**
 * One hydration, inside the engine's transaction: the tables that sync down are
 * emptied of every row without pending changes, then filled chunk by chunk; rows
 * with pending changes are rebased on the snapshot's row when it is newer than
 * what they were based on.
 */
class Hydration {
  readonly #engine: SharedEngine;
  readonly #tx: SqliteQueryable;
  readonly #dirty: Map<string, Map<string, DirtyEntry>>;
  readonly #seen = new Set<string>();
  readonly #before: bigint;
  readonly #pulled: readonly SharedTable[];
  #rows = 0;
  #latestHlc = '';

  private constructor(engine: SharedEngine, tx: SqliteQueryable, before: bigint, dirty: Map<string, Map<string, DirtyEntry>>, pulled: readonly SharedTable[]) {
    this.#engine = engine;
    this.#tx = tx;
    this.#before = before;
    this.#dirty = dirty;
    this.#pulled = pulled;
  }

  static async start(engine: SharedEngine, tx: SqliteQueryable, order: readonly SharedTable[]): Promise<Hydration> {
    const before = BigInt((await readSharedState(tx, K.watermark)) ?? '0');
    const dirty = new Map<string, Map<string, DirtyEntry>>();
    for (const entry of await tx.all<DirtyEntry & { tbl: string; key: string }>(`SELECT tbl, key, base_row, wall_ms FROM ${T.dirty}`)) {
      if (!dirty.has(entry.tbl)) dirty.set(entry.tbl, new Map());
      dirty.get(entry.tbl)!.set(entry.key, entry);
    }
    const pulled = order.filter((t) => t.direction === 'down' || t.direction === 'both');
    for (const table of pulled) {
      const name = quoteIdent(table.name);
      // Capture is suppressed anyway; without the triggers each inserted row also skips the trigger's check,
      // which is most of an insert's cost. They are back before the transaction commits (or, rolled back, never left).
      for (const sql of dropSharedTriggerStatements(table.name)) await tx.exec(sql);
      if (dirty.has(table.name)) {
        await tx.run(`DELETE FROM ${name} WHERE NOT EXISTS (SELECT 1 FROM ${T.dirty} d WHERE d.tbl = ? AND d.key = ${quotedList(`${name}.`, table.key)})`, [table.name]);
      } else {
        await tx.run(`DELETE FROM ${name}`);
      }
    }
    return new Hydration(engine, tx, before, dirty, pulled);
  }

  get rows(): number {
    return this.#rows;
  }

  async add(chunk: SnapshotChunk): Promise<void> {
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
          if (BigInt(chunk.versions[i]!) > this.#before && !own.has(i)) await this.#engine.rebase(this.#tx, table, key, keyText, dirty, { row, hlc, version: chunk.versions[i]! });
          continue;
        }
      }
      await table.insert(this.#tx, row);
      this.#rows++;
    }
  }

  /**
   * Rows with pending changes that the snapshot no longer has were deleted on the
   * server after their base: settled like any remote delete. Then the triggers
   * come back; the engine moves the watermark to the snapshot in the same transaction.
   */
  async finish(snapshotSeq: bigint, observe: (hlc: string) => void): Promise<void> {
    for (const [tableName, entries] of this.#dirty) {
      const table = this.#engine.tables.get(tableName);
      if (!table || table.declaration.direction === 'up') continue;
      for (const [keyText, dirty] of entries) {
        if (this.#seen.has(`${tableName}\u0000${keyText}`) || dirty.base_row === null || snapshotSeq <= this.#before) continue;
        await this.#engine.rebase(this.#tx, table, parseLiteralList(keyText), keyText, dirty, { row: null, hlc: '', version: snapshotSeq.toString() });
      }
    }
    if (this.#latestHlc) observe(this.#latestHlc);
    for (const table of this.#pulled) for (const sql of sharedTriggerStatements(table)) await this.#tx.exec(sql);
  }
}
