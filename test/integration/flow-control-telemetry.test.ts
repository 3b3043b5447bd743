import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { pendingControls } from '../../src/cloud/flow-control/controls.js';
import { FlowController } from '../../src/cloud/flow-control/flow-controller.js';
import { flowLimits } from '../../src/cloud/flow-control/flow-decision.js';
import { readFlow } from '../../src/cloud/flow-control/flow-state.js';
import { governancePolicy } from '../../src/cloud/governance/policy.js';
import { listMappings } from '../../src/cloud/telemetry/telemetry-mappings.js';
import { approveTelemetryMapping } from '../../src/cloud/telemetry/telemetry-review.js';
import { TelemetryPartitions } from '../../src/cloud/telemetry/telemetry-partitions.js';
import { TelemetryService } from '../../src/cloud/telemetry/telemetry-service.js';
import { Agent } from '../../src/device/agent.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { describeEachStore, openTestStore } from '../support/stores.js';
import { readingBatch } from '../support/telemetry-batches.js';
import { tempDir } from '../support/temp.js';

/** Flow control acts on telemetry lineages as on row lineages: a backlog staged for review pauses the device; approval drains it and resumes it. */

const logger = pino({ level: 'silent' });
describeEachStore('flow control of telemetry lineages', (ctx) => {
  test('a staged backlog over the cap pauses the device; approving the mapping drains it and resumes', async () => {
    const service = new TelemetryService({ store: ctx.store, policy: governancePolicy('review'), logger });
    const flow = new FlowController({ store: ctx.store, logger, limits: flowLimits({ maxStagedRows: 10 }) });
    const device = await newDevice(ctx.store);
    const table = `flow_${uuidv7().slice(-8)}`;
    const epoch = uuidv7();
    const first = await service.ingest(device, readingBatch(table, 1, 8, epoch), 100);
    await flow.tick();
    assert.deepEqual(await pendingControls(ctx.store, device.device_id), [], 'under the cap: nothing to say');
    assert.equal((await readFlow(ctx.store, first.lineage_id)).staged_rows, 8, 'the staged telemetry rows are counted');

    await service.ingest(device, readingBatch(table, 9, 5, epoch), 100);
    await flow.tick();
    const [pause, ...more] = await pendingControls(ctx.store, device.device_id);
    assert.equal(more.length, 0);
    assert.deepEqual([pause!.type, pause!.reason, pause!.lineage_id, pause!.source_table, pause!.journal_epoch, pause!.server_watermark], ['pause_lineage', 'volume_backpressure', first.lineage_id, table, null, 13]);
    assert.deepEqual((await readFlow(ctx.store, first.lineage_id)).device_state, 'paused');

    const mapping = (await listMappings(ctx.store, 'pending')).find((m) => m.source_table === table)!;
    const approved = await approveTelemetryMapping(ctx.store, service.partitions, mapping.id, { columns: [{ name: 'temp', action: 'point' }], time_column: 'ts' }, 'op');
    assert.equal(approved.replayed_rows, 13);
    assert.equal((await readFlow(ctx.store, first.lineage_id)).staged_rows, 0, 'the replay took the backlog out of the count');
    await flow.tick();
    const resume = (await pendingControls(ctx.store, device.device_id)).at(-1)!;
    assert.deepEqual([resume.type, resume.reason, resume.lineage_id], ['resume_lineage', 'backlog_drained', first.lineage_id]);
    assert.equal((await readFlow(ctx.store, first.lineage_id)).device_state, 'sending');
  });
});

test('an agent shipping a telemetry table stops while the cloud pauses it and ships the rest after the resume', { timeout: 60_000 }, async () => {
  const handle = await openTestStore('pglite');
  const dir = tempDir('syncline-telemetry-flow-');
  const server = await CloudServer.start({ store: handle.store, httpPort: 0, adminToken: 'telemetry-flow-admin-0123456789', schemaPolicy: 'review', logger, flow: { maxStagedRows: 20, intervalMs: 50 } });
  const stop = new AbortController();
  try {
    const device = await newDevice(handle.store, 'flow');
    const path = join(dir.path, 'app.db');
    const app = new Database(path);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE readings (ts INTEGER, temp REAL)');
    const insert = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) app.prepare('INSERT INTO readings (ts, temp) VALUES (?, ?)').run(1_772_000_000_000 + i * 1000, 20 + i / 4);
    };
    insert(0, 30);
    const agent = new Agent({
      dbPath: path,
      transport: new HttpTransport({ serverUrl: server.url, token: device.token }),
      logger,
      telemetry: [{ table: 'readings', timeColumn: 'ts' }],
      pollIntervalMs: 20,
      controlPollMs: 50,
      publisher: { maxBatchRows: 10, flushIntervalMs: 10, retryBaseMs: 10, retryMaxMs: 50 },
    });
    const running = agent.run(stop.signal);
    // An HTTP device hears of a pause on its next ack: the app keeps writing until it has.
    let inserted = 30;
    const writer = setInterval(() => insert(inserted++, 1), 20);
    const received = async () => Number((await handle.store.query<{ n: string }>('SELECT rows_received::text AS n FROM telemetry_lineages WHERE device_id = $1', [device.device_id])).rows[0]?.n ?? 0);
    try {
      await eventually('the device is paused', async () => ((await agent.status()).paused ?? []).some((p) => p.table === 'readings'), 30_000);
    } finally {
      clearInterval(writer);
    }
    // The pause can reach the agent (control poll) while a batch it sent just before is still being
    // stored: counted once its ack is in, that batch is not one sent while paused.
    // The window can hold several batches sent before the pause was heard: every one of them answered, none sent since.
    await eventually('the batches in flight at the pause are answered', async () => {
      const status = await agent.status();
      return status.telemetry_in_flight === 0 && status.telemetry_rows_acked === (await received());
    }, 30_000);
    const atPause = await received();
    insert(inserted, 30);
    inserted += 30;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await received(), atPause, 'nothing is sent while paused');
    assert.ok(atPause > 20, `the cap was passed before the pause: ${atPause}`);

    const mapping = (await listMappings(handle.store, 'pending')).find((m) => m.source_table === 'readings')!;
    await approveTelemetryMapping(handle.store, new TelemetryPartitions(handle.store), mapping.id, { columns: [{ name: 'temp', action: 'point' }], time_column: 'ts' }, 'op');
    server.flow.wake();
    await eventually('every row arrives after the resume', async () => (await received()) === inserted, 30_000);
    assert.deepEqual((await agent.status()).paused ?? [], []);
    stop.abort();
    await running;
    app.close();
  } finally {
    stop.abort();
    await server.stop();
    await handle.close();
    dir.remove();
  }
});
