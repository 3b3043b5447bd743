import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import type { DeviceIdentity } from '../../src/cloud/auth/devices.js';
import { CloudServer } from '../../src/cloud/server.js';
import type { Store } from '../../src/cloud/store/store.js';
import { Agent, type AgentOptions } from '../../src/device/agent.js';
import type { WireTelemetryBatch } from '../../src/protocol/telemetry-batch.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { TransportError } from '../../src/transport/transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Telemetry tables from a real SQLite file through the agent and the HTTP front
 * door into the store: no triggers, exact values, and no row lost or stored twice
 * across an agent crash, a server restart, VACUUM, retention and rowid reuse.
 */

const ADMIN = 'telemetry-admin-token-0123456789';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });

function openApp(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.defaultSafeIntegers(true);
  return db;
}

describeEachStore('telemetry tables through the agent', (context) => {
  const dir = tempDir('syncline-telemetry-');
  let server: CloudServer;
  let store: Store;

  before(async () => {
    store = context.store;
    server = await CloudServer.start({ store, httpPort: 0, adminToken: ADMIN, schemaPolicy: 'auto', logger });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  function agent(db: string, device: DeviceIdentity & { token: string }, extra: Partial<AgentOptions> = {}): Agent {
    return new Agent({ dbPath: db, transport: new HttpTransport({ serverUrl: server.url, token: device.token }), logger, once: true, onceDeadlineMs: 20_000, publisher: { maxBatchRows: 50, retryBaseMs: 10, retryMaxMs: 50 }, ...extra });
  }

  async function stored(device: DeviceIdentity, point: string): Promise<string[]> {
    const { rows } = await store.query<{ v: string }>(
      `SELECT coalesce(v.v_num::text, v.v_text, v.v_bool::text) AS v FROM telemetry_values v JOIN telemetry_points p ON p.id = v.point_id WHERE v.device_id = $1 AND p.name = $2 ORDER BY v.ts, v.v_num`,
      [device.device_id, point],
    );
    return rows.map((r) => r.v);
  }

  test('a rowid table and a time table arrive exactly, with no trigger on either', async () => {
    const path = join(dir.path, 'exact.db');
    const app = openApp(path);
    app.exec('CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER, label TEXT); CREATE TABLE readings (ts INTEGER, temp REAL)');
    const insertCount = app.prepare('INSERT INTO counts (n, label) VALUES (?, ?)');
    const big = [9_223_372_036_854_775_807n, -(2n ** 63n), 2n ** 53n + 1n];
    for (let i = 0; i < 120; i++) insertCount.run(big[i % 3]! + BigInt(i % 3 === 0 ? -i : i), `l${i}`);
    const insertReading = app.prepare('INSERT INTO readings (ts, temp) VALUES (?, ?)');
    for (let i = 0; i < 130; i++) insertReading.run(BigInt(Date.UTC(2026, 2, 1) + i * 1000), 20 + i / 3);
    const device = await newDevice(store, 'exact');
    const a = agent(path, device, { telemetry: [{ table: 'counts' }, { table: 'readings', timeColumn: 'ts' }] });
    await a.run();
    const status = await a.status();
    // Batches of 50 are read ahead while the previous one is in flight; none of their rows counts as late.
    assert.deepEqual(status.telemetry?.map((t) => [t.table, t.acked_seq, t.late_rows, t.gap_rows]), [['counts', 120, 0, 0], ['readings', 130, 0, 0]]);
    assert.equal(app.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('counts', 'readings')").pluck().get(), 0n);
    const ns = (app.prepare('SELECT n FROM counts ORDER BY id').pluck().all() as bigint[]).map(String);
    assert.deepEqual((await stored(device, 'counts.n')).sort(), [...ns].sort());
    const temps = (app.prepare('SELECT temp FROM readings ORDER BY ts').pluck().all() as number[]);
    assert.deepEqual((await stored(device, 'readings.temp')).map(Number), temps);
    app.close();
  });

  test('a crash after the cloud stored a batch but before the cursor moved ships nothing twice', async () => {
    const path = join(dir.path, 'crash.db');
    const app = openApp(path);
    app.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, v INTEGER)');
    const insert = app.prepare('INSERT INTO r (v) VALUES (?)');
    for (let i = 1; i <= 100; i++) insert.run(BigInt(i));
    const device = await newDevice(store, 'crash');
    const http = new HttpTransport({ serverUrl: server.url, token: device.token });
    let sent = 0;
    // The cloud answers, then the agent "dies" before it can record the ack.
    const crashing = Object.assign(Object.create(http) as HttpTransport, {
      sendTelemetryBatch: async (batch: WireTelemetryBatch, json: string, signal?: AbortSignal) => {
        const ack = await http.sendTelemetryBatch(batch, json, signal);
        if (++sent === 2) throw new TransportError('agent killed', { retryable: false });
        return ack;
      },
    });
    await assert.rejects(agent(path, device, { transport: crashing, telemetry: [{ table: 'r' }] }).run());
    // The server restarts too; the agent starts again from its durable cursor.
    await server.stop();
    server = await CloudServer.start({ store, httpPort: 0, adminToken: ADMIN, schemaPolicy: 'auto', logger });
    for (let i = 101; i <= 130; i++) insert.run(BigInt(i));
    await agent(path, device, { telemetry: [{ table: 'r' }] }).run();
    const values = (await stored(device, 'r.v')).map(Number).sort((x, y) => x - y);
    assert.deepEqual(values, Array.from({ length: 130 }, (_, i) => i + 1));
    app.close();
  });

  test('with several batches in flight, acks out of order never move the cursor past an unacked batch, and a crash then loses and repeats nothing', async () => {
    const path = join(dir.path, 'pipelined.db');
    const app = openApp(path);
    app.exec('CREATE TABLE p (ts INTEGER, v INTEGER)');
    const insert = app.prepare('INSERT INTO p (ts, v) VALUES (?, ?)');
    const T = Date.UTC(2026, 2, 2);
    for (let i = 1; i <= 250; i++) insert.run(BigInt(T + i * 1000), BigInt(i));
    const device = await newDevice(store, 'pipelined');
    const http = new HttpTransport({ serverUrl: server.url, token: device.token });
    const cursorSeq = () => Number(app.prepare("SELECT seq FROM _syncline_telemetry WHERE tbl = 'p'").pluck().get() as bigint);
    const batches: string[] = [];
    const laterAcks = new Set<string>();
    let heldStored!: () => void;
    const heldIsStored = new Promise<void>((resolve) => (heldStored = resolve));
    let laterAcked!: () => void;
    const laterAreAcked = new Promise<void>((resolve) => (laterAcked = resolve));
    const afterSeqs: (number | undefined)[] = [];
    let cursorWhileHeldUnacked = -1;
    // The first batch goes alone (its ack is where the cloud says it orders batches by after_seq);
    // the second batch's answer is held until the three behind it are acked (they go out once the
    // cloud holds the second; one that overtakes another there is sent again after it); then the
    // agent "dies" before it hears the second's answer.
    const crashing = Object.assign(Object.create(http) as HttpTransport, {
      sendTelemetryBatch: async (batch: WireTelemetryBatch, json: string, signal?: AbortSignal) => {
        if (!batches.includes(batch.batch_id)) {
          batches.push(batch.batch_id);
          afterSeqs.push(batch.after_seq);
        }
        const i = batches.indexOf(batch.batch_id);
        if (i > 1) await heldIsStored;
        const ack = await http.sendTelemetryBatch(batch, json, signal);
        if (i === 0) return ack;
        if (i === 1) {
          heldStored();
          await laterAreAcked;
          // Let the agent record what it can of the three acks.
          await new Promise((resolve) => setTimeout(resolve, 200));
          cursorWhileHeldUnacked = cursorSeq();
          throw new TransportError('agent killed', { retryable: false });
        }
        laterAcks.add(batch.batch_id);
        if (laterAcks.size === 3) setImmediate(laterAcked);
        return ack;
      },
    });
    await assert.rejects(agent(path, device, { transport: crashing, telemetry: [{ table: 'p', timeColumn: 'ts' }] }).run());
    assert.equal(batches.length, 5, 'one batch alone, then four in flight at once');
    assert.deepEqual(afterSeqs, [undefined, undefined, 100, 150, 200]);
    assert.equal(cursorWhileHeldUnacked, 50);
    assert.equal(cursorSeq(), 50);
    const held = await store.query<{ last: string }>('SELECT last_seq::text AS last FROM telemetry_lineages WHERE device_id = $1', [device.device_id]);
    assert.equal(held.rows[0]!.last, '250', 'the cloud holds all five batches');
    // The agent starts again from its durable cursor, with more rows; the cloud skips what it holds.
    for (let i = 251; i <= 310; i++) insert.run(BigInt(T + i * 1000), BigInt(i));
    await agent(path, device, { telemetry: [{ table: 'p', timeColumn: 'ts' }] }).run();
    assert.equal(cursorSeq(), 310);
    assert.deepEqual((await stored(device, 'p.v')).map(Number), Array.from({ length: 310 }, (_, i) => i + 1));
    app.close();
  });

  test('a cloud whose acks do not say in_order (from before pipelining) gets one batch at a time', async () => {
    const path = join(dir.path, 'one-at-a-time.db');
    const app = openApp(path);
    app.exec('CREATE TABLE q (id INTEGER PRIMARY KEY, v INTEGER)');
    const insert = app.prepare('INSERT INTO q (v) VALUES (?)');
    for (let i = 1; i <= 230; i++) insert.run(BigInt(i));
    const device = await newDevice(store, 'one-at-a-time');
    const http = new HttpTransport({ serverUrl: server.url, token: device.token });
    let inFlight = 0;
    let most = 0;
    const afterSeqs: (number | undefined)[] = [];
    // Such a cloud ignores after_seq: given batches out of order it would skip the earlier one's rows as held.
    const older = Object.assign(Object.create(http) as HttpTransport, {
      sendTelemetryBatch: async (batch: WireTelemetryBatch, json: string, signal?: AbortSignal) => {
        most = Math.max(most, ++inFlight);
        afterSeqs.push(batch.after_seq);
        try {
          const { in_order: _said, ...ack } = await http.sendTelemetryBatch(batch, json, signal);
          return ack;
        } finally {
          inFlight -= 1;
        }
      },
    });
    await agent(path, device, { transport: older, telemetry: [{ table: 'q' }] }).run();
    assert.equal(most, 1);
    assert.deepEqual(afterSeqs, [undefined, undefined, undefined, undefined, undefined]);
    assert.deepEqual((await stored(device, 'q.v')).map(Number).sort((x, y) => x - y), Array.from({ length: 230 }, (_, i) => i + 1));
    app.close();
  });

  test('retention deleting shipped rows, VACUUM, and rowids handed out again lose and repeat nothing', async () => {
    const path = join(dir.path, 'retention.db');
    const app = openApp(path);
    app.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, v INTEGER)');
    const insert = app.prepare('INSERT INTO r (v) VALUES (?)');
    let next = 1;
    const add = (n: number) => {
      for (let i = 0; i < n; i++) insert.run(BigInt(next++));
    };
    const device = await newDevice(store, 'retention');
    const run = () => agent(path, device, { telemetry: [{ table: 'r' }] }).run();
    add(40);
    await run();
    app.exec('DELETE FROM r WHERE id <= 30');
    app.exec('VACUUM');
    add(10);
    await run();
    // Every row deleted: SQLite starts rowids at 1 again, and the cursor follows
    // (without AUTOINCREMENT the agent must look between the delete and the next insert: README).
    app.exec('DELETE FROM r');
    await run();
    add(5);
    await run();
    add(60);
    await run();
    const values = (await stored(device, 'r.v')).map(Number).sort((x, y) => x - y);
    assert.deepEqual(values, Array.from({ length: next - 1 }, (_, i) => i + 1));
    app.close();
  });

  test('a time column that goes back is reported, and rows without a time are not shipped', async () => {
    const path = join(dir.path, 'late.db');
    const app = openApp(path);
    app.exec('CREATE TABLE m (at TEXT, v REAL)');
    const insert = app.prepare('INSERT INTO m (at, v) VALUES (?, ?)');
    insert.run('2026-03-01T00:00:01Z', 1.5);
    insert.run('2026-03-01T00:00:02Z', 2.5);
    const device = await newDevice(store, 'late');
    const run = async () => {
      const a = agent(path, device, { telemetry: [{ table: 'm', timeColumn: 'at' }] });
      await a.run();
      return (await a.status()).telemetry![0]!;
    };
    await run();
    insert.run('2026-03-01T00:00:00Z', 0.5);
    insert.run(null, 9.5);
    insert.run('2026-03-01T00:00:03Z', 3.5);
    const status = await run();
    assert.equal(status.late_rows, 2);
    assert.deepEqual((await stored(device, 'm.v')).map(Number), [1.5, 2.5, 3.5]);
    app.close();
  });

  test('a table switched from rows to telemetry loses its triggers; bad declarations are refused', async () => {
    const path = join(dir.path, 'switch.db');
    const app = openApp(path);
    app.exec('CREATE TABLE s (id INTEGER PRIMARY KEY, v INTEGER); CREATE TABLE plain (a INTEGER, b TEXT)');
    app.prepare('INSERT INTO s (v) VALUES (1), (2)').run();
    const device = await newDevice(store, 'switch');
    await agent(path, device).run();
    assert.ok((app.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 's'").pluck().get() as bigint) > 0n);
    app.prepare('UPDATE s SET v = 3 WHERE id = 1').run();
    app.prepare('INSERT INTO s (v) VALUES (4)').run();
    await agent(path, device, { telemetry: [{ table: 's' }] }).run();
    assert.equal(app.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 's'").pluck().get(), 0n);
    // Telemetry starts with every row the table holds.
    assert.deepEqual((await stored(device, 's.v')).map(Number).sort(), [2, 3, 4]);
    const refused = async (options: Partial<AgentOptions>, code: string) => {
      await assert.rejects(agent(path, device, options).run(), (e) => isSynclineError(e) && e.code === code);
    };
    await refused({ telemetry: [{ table: 's', timeColumn: 'missing' }] }, 'telemetry_time_column_missing');
    await refused({ telemetry: [{ table: 'plain' }] }, 'invalid_config');
    await refused({ telemetry: [{ table: 'nope' }] }, 'invalid_config');
    app.close();
  });
});
