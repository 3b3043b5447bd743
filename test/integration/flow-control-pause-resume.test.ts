import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Agent } from '../../src/device/agent.js';
import type { ControlMessage } from '../../src/protocol/control.js';
import { deviceRoot, deviceTopic } from '../../src/protocol/topics.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import type { Transport } from '../../src/transport/transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { approve, FakeDevice, openReview, REVIEW, upsert } from '../support/governance-fixtures.js';
import { assertMirrorMatches, eventually, lineages } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Backpressure end to end, over MQTT and over HTTP: a lineage waiting for its
 * schema review stages what the device sends; past the cap the device is told to
 * stop and buffers locally; once the approved backlog is replayed below 80% of
 * the cap the device is resumed from the cloud's watermark, and in the end every
 * change arrived exactly once and in order.
 */

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const CAP = 120;
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });

/** The app: plain better-sqlite3 writing its own table, each call one transaction. */
function appDb(path: string) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.exec('CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO readings (id, v) VALUES (?, ?)');
  const update = db.prepare('UPDATE readings SET v = ? WHERE id = ?');
  const remove = db.prepare('DELETE FROM readings WHERE id = ?');
  return {
    insert: (from: number, to: number) => db.transaction(() => { for (let i = from; i <= to; i++) insert.run(i, `v${i}`); })(),
    update: (ids: number[], value: string) => db.transaction(() => { for (const id of ids) update.run(value, id); })(),
    remove: (ids: number[]) => db.transaction(() => { for (const id of ids) remove.run(id); })(),
    close: () => db.close(),
  };
}

describeEachStore('flow control end to end', (ctx) => {
  let server: CloudServer;
  let dir: ReturnType<typeof tempDir>;
  const http = () => ({ url: server.url, adminToken: ADMIN_TOKEN });
  const staged = async (lineageId: string) => Number((await ctx.store.query<{ n: string }>('SELECT count(*) AS n FROM edge_staged_rows WHERE lineage_id = $1', [lineageId])).rows[0]!.n);
  const controls = async (lineageId: string) =>
    (await ctx.store.query<{ message: ControlMessage; state: string }>('SELECT message, state FROM edge_lineage_controls WHERE lineage_id = $1 ORDER BY id', [lineageId])).rows;

  before(async () => {
    dir = tempDir('syncline-flow-');
    server = await CloudServer.start({
      store: ctx.store,
      httpPort: 0,
      adminToken: ADMIN_TOKEN,
      schemaPolicy: 'review',
      logger,
      mqtt: { port: 0 },
      flow: { maxStagedRows: CAP, intervalMs: 50, resendMs: 300 },
      replay: { pollMs: 100, chunkRows: 50 },
    });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('a control the device does not ack is sent again; once acked it stops', async () => {
    const device = await newDevice(ctx.store, 'flow-redelivery');
    const root = deviceRoot(device.project_id, device.device_id);
    const client = await mqtt.connectAsync(server.mqtt!.url, { clientId: device.device_id, username: device.device_id, password: device.token, clean: false, protocolVersion: 4 });
    const seen: ControlMessage[] = [];
    client.on('message', (_topic, payload) => {
      const message = JSON.parse(payload.toString()) as { type: string };
      if (message.type === 'pause_lineage') seen.push(message as ControlMessage);
    });
    try {
      await client.subscribeAsync(deviceTopic(root, 'control'), { qos: 1 });
      const fake = new FakeDevice(ctx.store, device, REVIEW);
      for (let i = 1; i <= CAP + 1; i++) await fake.send({ table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] }, [upsert(i, [BigInt(i)])]);
      server.flow.wake();
      await eventually('the pause was sent twice', () => seen.length >= 2, 30_000);
      assert.equal(new Set(seen.map((c) => c.control_id)).size, 1, 'the same control, sent again');
      await client.publishAsync(deviceTopic(root, 'controlAck'), JSON.stringify({ control_id: seen[0]!.control_id, status: 'applied' }), { qos: 1 });
      await eventually('the ack was recorded', async () => (await controls(seen[0]!.lineage_id))[0]?.state === 'acked');
    } finally {
      await client.endAsync();
    }
  });

  for (const kind of ['mqtt', 'http'] as const) {
    test(`${kind}: cap exceeded → device stops and buffers → drained below 80% → resumed → every change arrives once, in order`, async () => {
      const device = await newDevice(ctx.store, `flow-${kind}`);
      const path = join(dir.path, `${kind}.db`);
      const app = appDb(path);
      app.insert(1, 60);
      const transport: Transport =
        kind === 'mqtt'
          ? new MqttTransport({ url: server.mqtt!.url, deviceId: device.device_id, token: device.token, ackTimeoutMs: 3000, logger })
          : new HttpTransport({ serverUrl: server.url, token: device.token });
      const agent = new Agent({ dbPath: path, transport, logger, pollIntervalMs: 20, controlPollMs: 100, publisher: { maxBatchRows: 20, flushIntervalMs: 20, retryBaseMs: 20, retryMaxMs: 200 } });
      const running = agent.run();
      try {
        await eventually('the first schema waits for review with rows staged', async () => (await lineages(http(), device.device_id))[0]?.rows_received === 60);
        const [lineage] = await lineages(http(), device.device_id);
        for (let from = 61; from <= 200; from += 10) app.insert(from, from + 9);
        // An HTTP device hears of a pause in the ack of its next batch. When the controller
        // decides after the device's last batch was answered, the app's next write carries it.
        let nudges = 0;
        await eventually('the device was told to pause and acked', async () => {
          const status = await agent.status();
          if (status.paused?.some((p) => p.table === 'readings')) return (await controls(lineage!.id)).some((c) => c.message.type === 'pause_lineage' && c.state === 'acked');
          if (status.pending_total === 0 && status.in_flight === 0) app.update([200], `nudge ${++nudges}`);
          return false;
        });
        const pause = (await controls(lineage!.id)).find((c) => c.message.type === 'pause_lineage')!.message;
        assert.equal(pause.reason, 'volume_backpressure');
        await eventually('nothing in flight', async () => (await agent.status()).in_flight === 0);
        const stagedWhenPaused = await staged(lineage!.id);
        assert.ok(stagedWhenPaused > CAP, `staged ${stagedWhenPaused} is over the cap`);

        // While paused: more inserts, updates and deletes stay in the device's journal.
        for (let from = 201; from <= 300; from += 10) app.insert(from, from + 9);
        app.update([...Array(50).keys()].map((i) => i + 1), 'updated while paused');
        app.update([1, 2, 3], 'updated twice');
        app.remove([4, 5, 6, 7, 8]);
        await eventually('the device captured the changes it may not send', async () => ((await agent.status()).tables.find((t) => t.table === 'readings')?.pending ?? 0) >= 158);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(await staged(lineage!.id), stagedWhenPaused, 'a paused device sends nothing');

        await approve(ctx.store, (await openReview(ctx.store, lineage!.id)).id, { columns: [], default_action: 'mirror' });
        server.flow.wake();
        await eventually('the device was resumed and drained', async () => {
          const [now] = await lineages(http(), device.device_id);
          const drained = now!.status === 'active' && (await agent.status()).pending_total === 0 && (await agent.status()).in_flight === 0 && !(await agent.status()).paused?.length && now!.rows_received === 358 + nudges;
          // Rows that arrive during the replay queue behind it: received is not yet materialized.
          return drained && (await staged(lineage!.id)) === 0;
        }, 120_000);
        const history = await controls(lineage!.id);
        assert.deepEqual(history.map((c) => [c.message.type, c.message.reason, c.state]), [['pause_lineage', 'volume_backpressure', 'acked'], ['resume_lineage', 'backlog_drained', 'acked']]);
        const resume = history[1]!.message;
        assert.ok(resume.server_watermark >= pause.server_watermark, 'the resume carries the watermark the device resends after');
        const [final] = await lineages(http(), device.device_id);
        assert.equal(final!.rows_received, 358 + nudges, 'each of the 300 inserts, 53 updates (and any nudges) and 5 deletes arrived exactly once');
        await assertMirrorMatches(http(), path, final!);
      } finally {
        await agent.stop();
        await running.catch(() => {});
        await transport.close?.();
        app.close();
      }
    });
  }
});
