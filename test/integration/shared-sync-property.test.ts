import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { CloudServer } from '../../src/cloud/server.js';
import type { Store } from '../../src/cloud/store/store.js';
import { sameRow } from '../../src/device/twoway/resolve-conflict.js';
import type { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { renderLiteralList } from '../../src/device/journal/sql-literal.js';
import { formatHlc } from '../../src/protocol/hlc.js';
import { decodeValue, encodeValue, type SqlValue } from '../../src/protocol/values.js';
import { ADMIN_TOKEN, openSharedDevice, sharedTestConfig, startSharedServer } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Convergence of two-way sync, as a fast-check model-based test over the real
 * parts: one cloud server, K devices of one user (each a SharedSync on its own
 * file) doing random writes on a small key space, syncs, push-only, pull-only,
 * hydrations, restarts and all devices syncing at once, with operators'
 * server-side writes in between, in random order. Afterwards, once everyone synced to quiescence:
 *
 * (a) every device holds exactly the rows PostgreSQL holds, table by table;
 * (b) no local write is lost silently: each device's last write per key is in the
 *     final state, or was settled visibly in that device's conflict log, or was
 *     committed (by the device, or as the same change by another source that the
 *     device settled against) and only then replaced by another device's later commit;
 * (c) a device never records a conflict against a row it committed itself.
 *
 * Small chunk sizes make pushes go in chunks and pulls end pages inside bundles.
 * Every run uses a new user, so runs never see each other's rows.
 *
 * SYNCLINE_PROPERTY_RUNS sets the number of runs; SYNCLINE_PROPERTY_SEED,
 * SYNCLINE_PROPERTY_PATH and SYNCLINE_PROPERTY_REPLAY (the commands' replayPath)
 * replay a failure, as fast-check prints them;
 * SYNCLINE_PROPERTY_DEBUG=1 prints each run's commands and counts.
 */

const PROPERTY_TABLES = [
  {
    name: 'items',
    direction: 'both',
    key: ['id'],
    conflict: 'last_writer_wins',
    columns: [
      { name: 'id', type: 'INTEGER' },
      { name: 'label', type: 'TEXT' },
      { name: 'n', type: 'INTEGER' },
    ],
  },
  {
    name: 'prefs',
    direction: 'both',
    key: ['name'],
    conflict: 'merge_columns',
    tiebreak: 'last_writer_wins',
    columns: [
      { name: 'name', type: 'TEXT' },
      { name: 'a', type: 'TEXT' },
      { name: 'b', type: 'TEXT' },
    ],
  },
  {
    name: 'pairs',
    direction: 'both',
    key: ['x', 'y'],
    conflict: 'server_wins',
    columns: [
      { name: 'x', type: 'INTEGER' },
      { name: 'y', type: 'TEXT' },
      { name: 'w', type: 'TEXT' },
    ],
  },
];

type TableName = 'items' | 'prefs' | 'pairs';

interface TableSpec {
  columns: string[];
  key: string[];
  /** The small key space: conflicts are frequent. */
  keys: SqlValue[][];
  /** Columns a write sets to a fresh text value. */
  text: string[];
  /** Columns a write sets to a small integer. */
  ints: string[];
}

const SPECS: Record<TableName, TableSpec> = {
  items: { columns: ['id', 'label', 'n'], key: ['id'], keys: [[1n], [2n], [3n]], text: ['label'], ints: ['n'] },
  prefs: { columns: ['name', 'a', 'b'], key: ['name'], keys: [['x'], ['y']], text: ['a', 'b'], ints: [] },
  pairs: { columns: ['x', 'y', 'w'], key: ['x', 'y'], keys: [[1n, 'p'], [2n, 'p']], text: ['w'], ints: [] },
};
const TABLE_NAMES = Object.keys(SPECS) as TableName[];
const MAX_DEVICES = 3;

const q = (name: string) => `"${name}"`;

/** A device's last write of a key, and where its story can be checked from. */
interface Intent {
  device: number;
  table: TableName;
  key: SqlValue[];
  /** The row after the write; null for a delete. */
  row: SqlValue[] | null;
  /** The device's newest conflict record id before the write. */
  conflictMark: number;
  /** The scope's head before the write: a commit of this write comes later. */
  head: bigint;
  step: number;
}

interface Model {
  devices: number;
  step: number;
  intents: Map<string, Intent>;
}

interface Real {
  store: Store;
  server: CloudServer;
  scope: string;
  devices: SharedSync[];
  /** Names of the devices (their source ids), by index. */
  names: string[];
  /** Closes device i and opens its file again (an app restart). */
  reopen(i: number): Promise<void>;
}

function textOf(value: SqlValue): string | null {
  if (value === null) return null;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return String(value);
}

async function scopeHead(real: Real): Promise<bigint> {
  const { rows } = await real.store.query<{ head: string }>('SELECT head_seq::text AS head FROM sync_scopes WHERE scope = $1', [real.scope]);
  return BigInt(rows[0]?.head ?? '0');
}

function readRow(db: SharedSync['db'], table: TableName, key: readonly SqlValue[]): SqlValue[] | null {
  const spec = SPECS[table];
  const row = db
    .prepare(`SELECT ${spec.columns.map(q).join(', ')} FROM ${q(table)} WHERE ${spec.key.map((k) => `${q(k)} = ?`).join(' AND ')}`)
    .raw(true)
    .get(...key) as SqlValue[] | undefined;
  return row ?? null;
}

async function lastConflictId(device: SharedSync): Promise<number> {
  return (await device.conflicts()).at(-1)?.id ?? 0;
}

// ---- commands ----

type WriteKind = 'upsert' | 'update' | 'delete';

class WriteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly device: number,
    readonly table: TableName,
    readonly keyIndex: number,
    readonly kind: WriteKind,
    readonly column: number,
    readonly nullValue: boolean,
    readonly n: number,
  ) {}

  check(model: Readonly<Model>): boolean {
    return this.device < model.devices;
  }

  async run(model: Model, real: Real): Promise<void> {
    const step = ++model.step;
    const device = real.devices[this.device]!;
    const db = device.db;
    const spec = SPECS[this.table];
    const key = spec.keys[this.keyIndex % spec.keys.length]!;
    const fresh = (column: string) => `${real.names[this.device]}:${column}#${step}`;
    const conflictMark = await lastConflictId(device);
    const head = await scopeHead(real);
    const where = spec.key.map((k) => `${q(k)} = ?`).join(' AND ');
    let changes: number;
    if (this.kind === 'upsert') {
      const values = spec.columns.map((c) => (spec.key.includes(c) ? key[spec.key.indexOf(c)]! : spec.ints.includes(c) ? BigInt(this.n) : fresh(c)));
      const nonKey = spec.columns.filter((c) => !spec.key.includes(c));
      changes = db
        .prepare(
          `INSERT INTO ${q(this.table)} (${spec.columns.map(q).join(', ')}) VALUES (${spec.columns.map(() => '?').join(', ')})
           ON CONFLICT (${spec.key.map(q).join(', ')}) DO UPDATE SET ${nonKey.map((c) => `${q(c)} = excluded.${q(c)}`).join(', ')}`,
        )
        .run(...values).changes;
    } else if (this.kind === 'update') {
      const settable = [...spec.text, ...spec.ints];
      const column = settable[this.column % settable.length]!;
      const value = spec.ints.includes(column) ? BigInt(this.n) : this.nullValue ? null : fresh(column);
      changes = db.prepare(`UPDATE ${q(this.table)} SET ${q(column)} = ? WHERE ${where}`).run(value, ...key).changes;
    } else {
      changes = db.prepare(`DELETE FROM ${q(this.table)} WHERE ${where}`).run(...key).changes;
    }
    if (changes === 0) return;
    const id = `${this.device}|${this.table}|${renderLiteralList(key)}`;
    const row = readRow(db, this.table, key);
    if (row === null) {
      // Created and deleted again since the device last handed its changes over: no net change to tell anyone.
      const pending = (await device.pendingChanges()).get(this.table)?.get(renderLiteralList(key));
      assert.ok(pending, 'a delete is captured');
      if (pending.base === null) {
        model.intents.delete(id);
        return;
      }
    }
    model.intents.set(id, { device: this.device, table: this.table, key, row, conflictMark, head, step });
  }

  toString(): string {
    const spec = SPECS[this.table];
    const key = spec.keys[this.keyIndex % spec.keys.length]!.map(String).join(',');
    const detail = this.kind === 'update' ? ` col#${this.column}${this.nullValue ? '=null' : ''}` : '';
    return `d${this.device}.${this.kind}(${this.table}[${key}]${detail} n=${this.n})`;
  }
}

type DeviceAction = 'sync' | 'pushPending' | 'pull' | 'hydrate' | 'reopen';

class DeviceCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly device: number,
    readonly action: DeviceAction,
  ) {}

  check(model: Readonly<Model>): boolean {
    return this.device < model.devices;
  }

  async run(model: Model, real: Real): Promise<void> {
    model.step++;
    if (this.action === 'reopen') return real.reopen(this.device);
    await real.devices[this.device]![this.action]();
  }

  toString(): string {
    return `d${this.device}.${this.action}()`;
  }
}

/** Every device syncs at once: their pushes and pulls race at the server. */
class ConcurrentSyncCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }

  async run(model: Model, real: Real): Promise<void> {
    model.step++;
    await Promise.all(real.devices.map((device) => device.sync()));
  }

  toString(): string {
    return 'all.sync() concurrently';
  }
}

/** An operator's server-side write through the admin route: it overrides whatever the row holds. */
class ServerWriteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly table: TableName,
    readonly keyIndex: number,
    readonly kind: 'upsert' | 'delete',
    readonly n: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, real: Real): Promise<void> {
    const step = ++model.step;
    const spec = SPECS[this.table];
    const key = spec.keys[this.keyIndex % spec.keys.length]!;
    const hlc = formatHlc({ ms: Date.now(), counter: 0, source: 'operator' });
    const change: Record<string, unknown> = { table: this.table, op: this.kind, key: key.map(encodeValue), hlc };
    if (this.kind === 'upsert') {
      change.row = spec.columns.map((c) => encodeValue(spec.key.includes(c) ? key[spec.key.indexOf(c)]! : spec.ints.includes(c) ? BigInt(this.n) : `server:${c}#${step}`));
    }
    const response = await fetch(`${real.server.url}/v1/admin/shared/scopes/${encodeURIComponent(real.scope)}/bundles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source_bundle_id: randomUUID(), rows: [change] }),
    });
    const answer = (await response.json()) as { status?: string };
    assert.equal(answer.status, 'committed', `the server-side write was refused: ${JSON.stringify(answer)}`);
  }

  toString(): string {
    const key = SPECS[this.table].keys[this.keyIndex % SPECS[this.table].keys.length]!.map(String).join(',');
    return `server.${this.kind}(${this.table}[${key}] n=${this.n})`;
  }
}

const deviceArb = fc.integer({ min: 0, max: MAX_DEVICES - 1 });
const writeArb = fc
  .record({
    device: deviceArb,
    table: fc.constantFrom(...TABLE_NAMES),
    keyIndex: fc.nat(2),
    kind: fc.constantFrom<WriteKind>('upsert', 'upsert', 'update', 'update', 'delete'),
    column: fc.nat(2),
    nullValue: fc.nat(3).map((x) => x === 0),
    n: fc.integer({ min: 0, max: 3 }),
  })
  .map((w) => new WriteCommand(w.device, w.table, w.keyIndex, w.kind, w.column, w.nullValue, w.n));
const exchangeArb = fc.record({ device: deviceArb, action: fc.constantFrom<DeviceAction>('sync', 'sync', 'pushPending', 'pull') }).map((c) => new DeviceCommand(c.device, c.action));
const rareArb = fc.oneof(
  fc.record({ device: deviceArb, action: fc.constantFrom<DeviceAction>('hydrate', 'reopen') }).map((c) => new DeviceCommand(c.device, c.action)),
  fc
    .record({ table: fc.constantFrom(...TABLE_NAMES), keyIndex: fc.nat(2), kind: fc.constantFrom<'upsert' | 'delete'>('upsert', 'upsert', 'delete'), n: fc.integer({ min: 0, max: 3 }) })
    .map((w) => new ServerWriteCommand(w.table, w.keyIndex, w.kind, w.n)),
  fc.constant(new ConcurrentSyncCommand()),
);
/** fc.commands picks among the arbitraries evenly: writes are half the commands; hydrations, restarts, server-side writes and concurrent syncs one in ten. */
const commandArbs = [writeArb, writeArb, writeArb, writeArb, writeArb, exchangeArb, exchangeArb, exchangeArb, exchangeArb, rareArb];

// ---- final checks ----

type Rows = (string | null)[][];

function deviceRows(device: SharedSync, table: TableName): Rows {
  const spec = SPECS[table];
  const rows = device.db.prepare(`SELECT ${spec.columns.map(q).join(', ')} FROM ${q(table)}`).raw(true).all() as SqlValue[][];
  return sortRows(rows.map((r) => r.map(textOf)));
}

async function postgresRows(real: Real, table: TableName): Promise<Rows> {
  const spec = SPECS[table];
  const { rows } = await real.store.query<Record<string, string | null>>(
    `SELECT ${spec.columns.map((c, i) => `${q(c)}::text AS c${i}`).join(', ')} FROM syncline_shared.${q(table)} WHERE _syncline_scope = $1`,
    [real.scope],
  );
  return sortRows(rows.map((r) => spec.columns.map((_, i) => r[`c${i}`] ?? null)));
}

function sortRows(rows: Rows): Rows {
  return rows.map((r) => ({ r, s: JSON.stringify(r) })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0)).map((x) => x.r);
}

interface BundleRow {
  seq: bigint;
  source: string;
  op: 'U' | 'D';
  row: SqlValue[] | null;
}

/** The scope's committed changes of one key, in commit order. */
async function keyHistory(real: Real, table: TableName, key: readonly SqlValue[]): Promise<BundleRow[]> {
  const { rows } = await real.store.query<{ seq: string; source: string; op: string; row: unknown[] | null }>(
    `SELECT r.bundle_seq::text AS seq, b.source, r.op::text AS op, r.row
       FROM sync_bundle_changes r JOIN sync_bundles b ON b.scope = r.scope AND b.bundle_seq = r.bundle_seq
      WHERE r.scope = $1 AND r.tbl = $2 AND r.key = $3::jsonb ORDER BY r.bundle_seq, r.ordinal`,
    [real.scope, table, JSON.stringify(key.map(encodeValue))],
  );
  return rows.map((r) => ({ seq: BigInt(r.seq), source: r.source, op: r.op as 'U' | 'D', row: r.row ? r.row.map((v) => decodeValue(v)) : null }));
}

const sameKey = (a: readonly SqlValue[], b: readonly SqlValue[]) => sameRow(a, b);
const sameOptionalRow = (a: readonly SqlValue[] | null, b: readonly SqlValue[] | null) => (a === null || b === null ? a === b : sameRow(a, b));

async function checkFinalState(model: Model, real: Real): Promise<void> {
  // Quiescence: every device syncs twice in order; a third round then finds nothing to do.
  for (let round = 0; round < 2; round++) for (const device of real.devices) await device.sync();
  for (const [i, device] of real.devices.entries()) {
    const report = await device.sync();
    assert.equal(report.push.rows, 0, `d${i} still had changes to push after two rounds`);
    assert.equal(report.pull.rows, 0, `d${i} still had bundles to pull after two rounds`);
    assert.equal(await device.pending(), 0, `d${i} has pending changes`);
  }

  // (a) every device holds what PostgreSQL holds.
  for (const table of TABLE_NAMES) {
    const expected = await postgresRows(real, table);
    for (const [i, device] of real.devices.entries()) {
      assert.deepEqual(deviceRows(device, table), expected, `d${i}'s ${table} differs from PostgreSQL`);
    }
  }

  // (b) no last write is lost without a trace.
  for (const intent of model.intents.values()) {
    const device = real.devices[intent.device]!;
    const name = real.names[intent.device]!;
    const label = `d${intent.device}'s write at step ${intent.step} of ${intent.table}[${intent.key.map(String).join(',')}] = ${JSON.stringify(intent.row?.map(textOf) ?? 'deleted')}`;
    if (sameOptionalRow(readRow(device.db, intent.table, intent.key), intent.row)) continue;
    const settled = (await device.conflicts(intent.conflictMark)).some((c) => c.table === intent.table && sameKey(c.key, intent.key) && sameOptionalRow(c.local, intent.row) && c.winner !== 'local');
    if (settled) continue;
    const history = await keyHistory(real, intent.table, intent.key);
    const sameChange = (h: BundleRow) => (intent.row === null ? h.op === 'D' : h.op === 'U' && sameOptionalRow(h.row, intent.row));
    // Another source committed the very same change (both deleted the row, say) and the device settled its own
    // against that commit: the write took effect there, whichever side the policy named, and nothing was left to push.
    const logged = await device.conflicts(intent.conflictMark);
    const metItsTwin = (h: BundleRow) =>
      logged.some((c) => c.table === intent.table && sameKey(c.key, intent.key) && sameOptionalRow(c.local, intent.row) && c.remoteVersion === String(h.seq));
    const committedAt = history.findIndex((h) => h.seq > intent.head && sameChange(h) && (h.source === name || metItsTwin(h)));
    assert.ok(
      committedAt >= 0,
      `${label} is not in the final state, not in its conflict log, and was never committed. History: ${JSON.stringify(history.map((h) => [String(h.seq), h.source, h.op, h.row?.map(textOf)]))}; conflicts: ${JSON.stringify((await device.conflicts(intent.conflictMark)).map((c) => [c.table, c.key.map(textOf), c.winner, c.local?.map(textOf), c.remote?.map(textOf)]))}`,
    );
    const replaced = history.slice(committedAt + 1).some((h) => h.source !== name);
    assert.ok(replaced, `${label} was committed, is not in the final state, and nothing another device committed replaced it. History: ${JSON.stringify(history.map((h) => [String(h.seq), h.source, h.op]))}`);
  }

  // (c) no device records a conflict against a row it committed itself.
  for (const [i, device] of real.devices.entries()) {
    for (const record of (await device.conflicts())) {
      if (record.kind !== 'version' || record.remote === null || record.remoteVersion === null) continue;
      const { rows } = await real.store.query<{ source: string }>('SELECT source FROM sync_bundles WHERE scope = $1 AND bundle_seq = $2::bigint', [real.scope, record.remoteVersion]);
      assert.notEqual(
        rows[0]?.source,
        real.names[i],
        `d${i} recorded a conflict on ${record.table}[${record.key.map(textOf).join(',')}] against its own commit ${record.remoteVersion} ${JSON.stringify(record.remote.map(textOf))} (local ${JSON.stringify(record.local?.map(textOf) ?? null)}, winner ${record.winner}, policy ${record.policy})`,
      );
    }
  }
}

// ---- the property ----

const NUM_RUNS = Number(process.env.SYNCLINE_PROPERTY_RUNS ?? 20);
const SEED = process.env.SYNCLINE_PROPERTY_SEED === undefined ? undefined : Number(process.env.SYNCLINE_PROPERTY_SEED);
const PATH = process.env.SYNCLINE_PROPERTY_PATH;
const REPLAY = process.env.SYNCLINE_PROPERTY_REPLAY;

describeEachStore('shared sync convergence (property)', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  before(async () => {
    dir = tempDir('syncline-shared-prop-');
    server = await startSharedServer(ctx.store, sharedTestConfig({ tables: PROPERTY_TABLES }));
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('devices of one user converge to PostgreSQL and lose no write silently', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: MAX_DEVICES }),
        fc.constantFrom(2, 3, 7),
        fc.commands(commandArbs, { maxCommands: 40, size: 'max', ...(REPLAY === undefined ? {} : { replayPath: REPLAY }) }),
        async (deviceCount, chunkRows, commands) => {
          const user = `prop-${ctx.kind}-${++run}-${randomUUID().slice(0, 8)}`;
          const names = Array.from({ length: deviceCount }, (_, i) => `dev${i}`);
          const devices: SharedSync[] = [];
          try {
            for (const name of names) devices.push(await openSharedDevice(server, dir.path, user, name, { chunkRows }));
            const model: Model = { devices: deviceCount, step: 0, intents: new Map() };
            const real: Real = {
              store: ctx.store,
              server,
              scope: user,
              devices,
              names,
              async reopen(i) {
                await devices[i]!.close();
                devices[i] = await openSharedDevice(server, dir.path, user, names[i]!, { chunkRows });
              },
            };
            await fc.asyncModelRun(() => ({ model, real }), commands);
            await checkFinalState(model, real);
            if (process.env.SYNCLINE_PROPERTY_DEBUG) console.log(String(commands));
            if (process.env.SYNCLINE_PROPERTY_DEBUG) console.log(`run ${run}: ${deviceCount} devices, ${model.step} steps, ${model.intents.size} intents, conflicts ${(await Promise.all(devices.map(async (d) => (await d.conflicts()).length))).join('/')}, head ${await scopeHead(real)}`);
          } finally {
            for (const device of devices) await device.close();
          }
        },
      ),
      { numRuns: NUM_RUNS, includeErrorInReport: true, ...(SEED === undefined ? {} : { seed: SEED }), ...(PATH === undefined ? {} : { path: PATH }) },
    );
  });
});
