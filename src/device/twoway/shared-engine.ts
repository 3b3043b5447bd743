import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { HybridClock, formatHlc, parseHlc } from '../../protocol/hlc.js';
import type { SharedTable, SnapshotChunk, WireBundle, WireConflict, WireRowChange } from '../../protocol/shared-sync.js';
import { decodeValue, encodeValue, type SqlValue } from '../../protocol/values.js';
import type { SqliteDriver, SqliteQueryable } from '../driver/sqlite-driver.js';
import { parseLiteralList, renderLiteralList } from '../journal/sql-literal.js';
import { quoteIdent, quotedList } from '../capture/sql-text.js';
import { JournalOrigins, JournalTables } from '../journal/journal-schema.js';
import { logConflict } from './conflict-log.js';
import { LocalTable } from './local-table.js';
import { newestLocalSeq, readPending, settleKey, type CapturedSchemas, type PendingChange, type PendingView } from './pending-view.js';
import { resolveConflict, type ChangeSide, type ConflictResolver } from './resolve-conflict.js';
import { pushedSchemas } from './shared-capture.js';
import { SharedStateKeys as K, SharedTables as T } from './shared-schema.js';
import { dropGuardStatements, guardTriggerStatements } from './shared-triggers.js';
import { withRemoteApply } from './shared-state.js';
import { readState, writeState } from '../journal/journal-state.js';
import { deleteState, dropCapture, installCapture, newestSeq, pruneTwoWay, twoWayCapture } from './twoway-journal.js';

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

interface RemoteSide {
  row: SqlValue[] | null;
  hlc: string;
  version: string;
}

const decodeRow = (row: readonly unknown[] | undefined | null): SqlValue[] | null => (row ? row.map((v) => decodeValue(v)) : null);
const renderRow = (row: readonly SqlValue[] | null): string | null => (row ? renderLiteralList(row) : null);

/**
 * The device side of two-way sync over the SQLite file: freezing the pending
 * changes the journal holds (pending-view.ts) into the outbox, settling
 * conflicts, applying pulled bundles and snapshots as remote applies (journaled
 * with origin 'R', never pushed). Each step is one write transaction on the
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
  /** Where the journal keeps the entries of the tables this device pushes. */
  readonly #schemas: CapturedSchemas;
  /** The file's watermark and hydration flag as of the last transaction that changed them, for synchronous readers. */
  #watermark: bigint;
  #hydrated: boolean;

  private constructor(
    driver: SqliteDriver,
    declarations: readonly SharedTable[],
    source: string,
    clock: HybridClock,
    state: { watermark: bigint; hydrated: boolean; schemas: CapturedSchemas },
    resolver?: ConflictResolver,
  ) {
    this.driver = driver;
    this.source = source;
    this.#order = declarations;
    this.tables = new Map(declarations.map((t) => [t.name, new LocalTable(t)]));
    this.#resolver = resolver;
    this.#clock = clock;
    this.#watermark = state.watermark;
    this.#hydrated = state.hydrated;
    this.#schemas = state.schemas;
  }

  static async load(driver: SqliteDriver, declarations: readonly SharedTable[], source: string, resolver?: ConflictResolver): Promise<SharedEngine> {
    const clock = await readState(driver, K.clock);
    const watermark = BigInt((await readState(driver, K.watermark)) ?? '0');
    const hydrated = (await readState(driver, K.hydrated)) === '1';
    const hlc = new HybridClock(source, clock ? (JSON.parse(clock) as { ms: number; counter: number }) : undefined);
    return new SharedEngine(driver, declarations, source, hlc, { watermark, hydrated, schemas: await pushedSchemas(driver, declarations) }, resolver);
  }

  get watermark(): bigint {
    return this.#watermark;
  }

  get hydrated(): boolean {
    return this.#hydrated;
  }

  async #pushed(tx: SqliteQueryable): Promise<bigint> {
    return BigInt((await readState(tx, K.pushed)) ?? '0');
  }

  /** The pending changes not yet frozen into a push. */
  async #pending(tx: SqliteQueryable): Promise<PendingView> {
    return readPending(tx, this.#schemas, await this.#pushed(tx));
  }

  async pendingCount(): Promise<number> {
    return this.driver.readTransaction(async (tx) => {
      let count = Number((await tx.get<{ n: bigint }>(`SELECT count(*) AS n FROM ${T.outbox}`))!.n);
      for (const keys of (await this.#pending(tx)).values()) count += keys.size;
      return count;
    });
  }

  /** The changes waiting to be frozen into a push, per table and key. */
  pendingView(): Promise<PendingView> {
    return this.driver.readTransaction((tx) => this.#pending(tx));
  }

  /** The newest journal seq of an app write not yet frozen into a push (0: none): cheap, for noticing new local writes. */
  async localWriteMark(): Promise<bigint> {
    return this.driver.readTransaction(async (tx) => newestLocalSeq(tx, this.#schemas, await this.#pushed(tx)));
  }

  #table(name: string): LocalTable {
    const table = this.tables.get(name);
    if (!table) throw new SynclineError('unknown_table', `${name} is not a shared table on this device; reopen to take the server's new declarations`, { table: name });
    return table;
  }

  #saveClock(tx: SqliteQueryable): Promise<void> {
    return writeState(tx, K.clock, JSON.stringify(this.#clock.state));
  }

  /**
   * Moves pending changes into the outbox, one entry per row with the row as it is
   * now, parents first, and the push cursor past them. An outbox left by an
   * unfinished push is returned as it is: it is resent with the same bundle id, so
   * the cloud can tell a retry.
   */
  freeze(): Promise<Outbox | undefined> {
    return this.driver.writeTransaction(async (tx) => {
      const existing = await this.#readOutbox(tx);
      if (existing) return existing;
      const pending = await this.#pending(tx);
      const frozen: { table: string; key: string; change: PendingChange; row: SqlValue[] | null; hlc: string }[] = [];
      for (const declaration of this.#order) {
        const table = this.tables.get(declaration.name)!;
        const keys = pending.get(declaration.name);
        if (!keys) continue;
        for (const key of [...keys.keys()].sort()) {
          const change = keys.get(key)!;
          const row = await table.read(tx, parseLiteralList(key));
          // Created and deleted again before it was ever pushed: nothing to tell the cloud.
          if (row === null && change.base === null) continue;
          frozen.push({ table: declaration.name, key, change, row, hlc: '' });
        }
      }
      // Stamped in the order the writes were made, not the parent-first order they travel in: a stamp only moves
      // forward, so stamping an earlier write after a later one would make it the later one for last_writer_wins.
      for (const entry of [...frozen].sort((a, b) => (a.change.ms < b.change.ms ? -1 : a.change.ms > b.change.ms ? 1 : 0))) {
        entry.hlc = this.#clock.stamp(Number(entry.change.ms));
      }
      const insert = `INSERT INTO ${T.outbox} (ordinal, tbl, key, op, row, base_row, hlc) VALUES (?, ?, ?, ?, ?, ?, ?)`;
      for (const [ordinal, { table, key, change, row, hlc }] of frozen.entries()) {
        await tx.run(insert, [ordinal, table, key, row ? 'upsert' : 'delete', row ? JSON.stringify(row.map(encodeValue)) : null, change.base, hlc]);
      }
      await tx.run(`DELETE FROM ${T.settled}`);
      await writeState(tx, K.pushed, (await newestSeq(tx)).toString());
      if (frozen.length === 0) return undefined;
      await writeState(tx, K.outboxId, uuidv7());
      await writeState(tx, K.outboxBase, (await this.#storedWatermark(tx)).toString());
      await this.#saveClock(tx);
      return this.#readOutbox(tx);
    });
  }

  outbox(): Promise<Outbox | undefined> {
    return this.driver.readTransaction((tx) => this.#readOutbox(tx));
  }

  async #readOutbox(tx: SqliteQueryable): Promise<Outbox | undefined> {
    const bundleId = await readState(tx, K.outboxId);
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
    return { bundleId, baseSeq: BigInt((await readState(tx, K.outboxBase)) ?? '0'), entries };
  }

  async #storedWatermark(tx: SqliteQueryable): Promise<bigint> {
    return BigInt((await readState(tx, K.watermark)) ?? '0');
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
  async committed(bundleSeq?: bigint): Promise<void> {
    // Bundle seqs are gap-free per scope: right after the watermark, no other device's bundle can come before ours,
    // so the watermark moves over it now, and neither a pull nor its event wake-up has to bring it back (less latency
    // for the other devices, whose pulls no longer queue behind ours on the server).
    const moved = await this.driver.writeTransaction(async (tx) => {
      const next = bundleSeq !== undefined && bundleSeq === (await this.#storedWatermark(tx)) + 1n;
      await this.#committed(tx, bundleSeq);
      if (next) await this.moveWatermark(tx, bundleSeq);
      return next;
    });
    if (moved) this.#watermark = bundleSeq!;
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
    await deleteState(tx, K.outboxId);
    await deleteState(tx, K.outboxBase);
    await this.#prune(tx);
  }

  #prune(tx: SqliteQueryable): Promise<void> {
    return this.#pushed(tx).then((pushed) => pruneTwoWay(tx, this.#order.map((t) => t.name), pushed));
  }

  /** Puts the outbox back among the pending changes (before a rebuild); the outbox's older base wins. */
  requeueOutbox(): Promise<void> {
    return this.driver.writeTransaction(async (tx) => {
      const outbox = await this.#readOutbox(tx);
      const pending = await this.#pending(tx);
      for (const entry of outbox?.entries ?? []) {
        const newer = pending.get(entry.table)?.get(entry.keyText)?.ms ?? 0n;
        const ms = BigInt(parseHlc(entry.hlc)?.ms ?? 0);
        await settleKey(tx, entry.table, entry.keyText, { pending: true, base: entry.baseRow, ms: newer > ms ? newer : ms });
      }
      await this.#committed(tx);
    });
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
   * A remote change of a row that also has a pending local change: the table's
   * policy decides and the standing row is written. The pending change either
   * goes (remote won) or stays with the remote row as its new base, so it is
   * pushed on top of what it was rebased onto; returned as it stands now.
   */
  async rebase(tx: SqliteQueryable, table: LocalTable, key: SqlValue[], keyText: string, pending: PendingChange, remote: RemoteSide): Promise<PendingChange | undefined> {
    const localRow = await table.read(tx, key);
    const local: ChangeSide = { op: localRow ? 'upsert' : 'delete', row: localRow, hlc: formatHlc({ ms: Number(pending.ms), counter: 0, source: this.source }) };
    const { winner, result } = await this.#settle(tx, table, key, pending.base, local, remote);
    if (winner === 'remote') {
      await table.put(tx, key, remote.row);
      await settleKey(tx, table.name, keyText, { pending: false });
      return undefined;
    }
    if (winner === 'merged') await table.put(tx, key, result);
    const rebased = { base: renderRow(remote.row), ms: pending.ms };
    await settleKey(tx, table.name, keyText, { pending: true, ...rebased });
    return rebased;
  }

  /** Applies one whole pulled bundle in one transaction and moves the watermark past it. */
  async applyBundle(bundle: WireBundle): Promise<ChangeSet> {
    const changes: ChangeSet = { keys: new Map(), full: false };
    const seq = BigInt(bundle.bundle_seq);
    await withRemoteApply(this.driver, async (tx) => {
      if (bundle.source !== this.source) {
        const pending = await this.#pending(tx);
        for (const change of bundle.rows) {
          const table = this.#table(change.table);
          const key = change.key.map((v) => decodeValue(v));
          const keyText = renderLiteralList(key);
          const remote: RemoteSide = { row: decodeRow(change.row), hlc: change.hlc, version: change.version };
          this.#clock.observe(change.hlc);
          const superseded = await tx.get<{ bundle_seq: bigint }>(`SELECT bundle_seq FROM ${T.superseded} WHERE tbl = ? AND key = ?`, [table.name, keyText]);
          if ((superseded?.bundle_seq ?? 0n) > seq) continue;
          const keys = pending.get(table.name);
          const local = keys?.get(keyText);
          if (local) {
            const standing = await this.rebase(tx, table, key, keyText, local, remote);
            if (standing) keys!.set(keyText, standing);
            else keys!.delete(keyText);
          } else {
            await table.put(tx, key, remote.row);
          }
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
        await this.#saveClock(tx);
      }
      await this.moveWatermark(tx, seq);
      await this.#prune(tx);
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
    await writeState(tx, K.watermark, seq.toString());
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
    return withRemoteApply(this.driver, async (tx) => {
      const outbox = (await this.#readOutbox(tx))!;
      const pending = await this.#pending(tx);
      const byKey = new Map(outbox.entries.map((e) => [`${e.table}\u0000${e.keyText}`, e]));
      for (const conflict of conflicts) {
        const table = this.tables.get(conflict.table);
        if (!table) throw new SynclineError('conflict', `the cloud refused the push: ${conflict.message}`, { kind: conflict.kind });
        const key = conflict.key.map((v) => decodeValue(v));
        const keyText = renderLiteralList(key);
        const entry = byKey.get(`${table.name}\u0000${keyText}`);
        if (!entry) continue;
        const newerLocal = pending.get(table.name)?.has(keyText) ?? false;
        const standing =
          conflict.kind === 'version' ? await this.#settleEntry(tx, table, key, entry, conflict, newerLocal) : await this.#rollBack(tx, table, key, entry, conflict, newerLocal);
        if (standing && !newerLocal) {
          if (!changes.keys.has(table.name)) changes.keys.set(table.name, []);
          changes.keys.get(table.name)!.push(key);
        }
      }
      await writeState(tx, K.outboxId, uuidv7());
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
    const rows = await withRemoteApply(this.driver, async (tx) => {
      const run = await Hydration.start(this, tx, this.#order, await this.#pending(tx));
      let count = 0;
      for await (const chunk of chunks) {
        await run.add(chunk);
        progress?.(++count, run.rows);
      }
      await run.finish(snapshotSeq, (hlc) => this.#clock.observe(hlc));
      await this.#saveClock(tx);
      await this.moveWatermark(tx, snapshotSeq);
      await writeState(tx, K.hydrated, '1');
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
 * what they were based on. The journal records the result as one remote
 * snapshot per table, for local consumers that keep a checkpoint.
 */
class Hydration {
  readonly #engine: SharedEngine;
  readonly #tx: SqliteQueryable;
  readonly #pending: PendingView;
  readonly #seen = new Set<string>();
  readonly #before: bigint;
  readonly #pulled: readonly SharedTable[];
  #rows = 0;
  #latestHlc = '';

  private constructor(engine: SharedEngine, tx: SqliteQueryable, before: bigint, pending: PendingView, pulled: readonly SharedTable[]) {
    this.#engine = engine;
    this.#tx = tx;
    this.#before = before;
    this.#pending = pending;
    this.#pulled = pulled;
  }

  static async start(engine: SharedEngine, tx: SqliteQueryable, order: readonly SharedTable[], pending: PendingView): Promise<Hydration> {
    const before = BigInt((await readState(tx, K.watermark)) ?? '0');
    const pulled = order.filter((t) => t.direction === 'down' || t.direction === 'both');
    for (const table of pulled) {
      const name = quoteIdent(table.name);
      // Without capture and guard each inserted row skips the triggers, which are most of an insert's cost; the
      // journal gets the tables' rows as snapshots at the end. They are back before the transaction commits
      // (or, rolled back, never left).
      await dropCapture(tx, table.name);
      for (const sql of dropGuardStatements(table.name)) await tx.exec(sql);
      const keep = pending.get(table.name);
      if (keep && keep.size > 0) {
        await tx.run(`DELETE FROM ${name} WHERE ${quotedList(`${name}.`, table.key)} NOT IN (SELECT value FROM json_each(?))`, [JSON.stringify([...keep.keys()])]);
      } else {
        await tx.run(`DELETE FROM ${name}`);
      }
    }
    return new Hydration(engine, tx, before, pending, pulled);
  }

  get rows(): number {
    return this.#rows;
  }

  async add(chunk: SnapshotChunk): Promise<void> {
    const table = this.#engine.tables.get(chunk.table);
    if (!table) throw new SynclineError('unknown_table', `the snapshot has rows of ${chunk.table}, which is not shared on this device`, { table: chunk.table });
    const keyAt = table.declaration.key.map((k) => table.declaration.columns.findIndex((c) => c.name === k));
    const pending = this.#pending.get(table.name);
    const own = new Set(chunk.own);
    for (let i = 0; i < chunk.rows.length; i++) {
      const wire = chunk.rows[i]!;
      const row = new Array<SqlValue>(wire.length);
      for (let c = 0; c < wire.length; c++) row[c] = decodeValue(wire[c]);
      const hlc = chunk.hlcs[i]!;
      if (hlc > this.#latestHlc) this.#latestHlc = hlc;
      if (pending && pending.size > 0) {
        const key = keyAt.map((p) => row[p]!);
        const keyText = renderLiteralList(key);
        const local = pending.get(keyText);
        if (local) {
          this.#seen.add(`${table.name}\u0000${keyText}`);
          // A row this device wrote last (its push committed, the pull that would have brought it back did not)
          // is what the pending change was made on, not a remote change; pulls skip the device's own bundles alike.
          if (BigInt(chunk.versions[i]!) > this.#before && !own.has(i)) await this.#engine.rebase(this.#tx, table, key, keyText, local, { row, hlc, version: chunk.versions[i]! });
          continue;
        }
      }
      await table.insert(this.#tx, row);
      this.#rows++;
    }
  }

  /**
   * Rows with pending changes that the snapshot no longer has were deleted on the
   * server after their base: settled like any remote delete. Then capture (and
   * the guards) come back, each table's rows journaled as a remote snapshot when a
   * change-stream consumer keeps a checkpoint; the engine moves the watermark to
   * the snapshot in the same transaction.
   */
  async finish(snapshotSeq: bigint, observe: (hlc: string) => void): Promise<void> {
    for (const [tableName, entries] of this.#pending) {
      const table = this.#engine.tables.get(tableName);
      if (!table || table.declaration.direction === 'up') continue;
      for (const [keyText, local] of entries) {
        if (this.#seen.has(`${tableName}\u0000${keyText}`) || local.base === null || snapshotSeq <= this.#before) continue;
        await this.#engine.rebase(this.#tx, table, parseLiteralList(keyText), keyText, local, { row: null, hlc: '', version: snapshotSeq.toString() });
      }
    }
    if (this.#latestHlc) observe(this.#latestHlc);
    // The remote snapshot costs a third to a half of the hydration's own inserts, and entries no checkpoint holds are
    // pruned at the next pull; so it is written only when a change-stream consumer keeps a checkpoint in the file.
    const consumers = (await this.#tx.get(`SELECT 1 AS held FROM ${JournalTables.checkpoints} LIMIT 1`)) !== undefined;
    for (const table of this.#pulled) {
      await installCapture(this.#tx, await twoWayCapture(this.#tx, table), consumers ? JournalOrigins.remote : undefined);
      if (table.direction === 'down') for (const sql of guardTriggerStatements(table)) await this.#tx.exec(sql);
    }
  }
}
