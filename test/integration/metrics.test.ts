import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { countStoreErrors } from '../../src/cloud/metrics/counted-store.js';
import { BOOTSTRAP_ACTOR, createAdminToken } from '../../src/cloud/governance/admin-tokens.js';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { parsePrometheus, sample } from '../support/prometheus.js';
import { describeEachStore } from '../support/stores.js';

const ADMIN_TOKEN = 'metrics-admin-token-0123456789';
const TABLE: TableSpec = { table: 'readings', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'note', type: 'TEXT' }] };
const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ seq: from + i, op: 'insert' as const, pk: [BigInt(from + i)], row: [BigInt(from + i), `note ${from + i}`] }));

describeEachStore('Prometheus metrics', (ctx) => {
  let server: CloudServer;

  before(async () => {
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'review', logger: pino({ level: 'silent' }), mqtt: { port: 0 }, metricsPort: 0 });
  });
  after(async () => {
    await server.stop();
  });

  async function scrape(token = ADMIN_TOKEN): Promise<Map<string, number>> {
    const response = await fetch(`${server.url}${Routes.metrics}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await response.text());
  }

  const post = (token: string, body: string) =>
    fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });

  test('ingest counters, the ack histogram and the fleet gauges move by what a real ingest did', async () => {
    const before = await scrape();
    const device = await newDevice(ctx.store, 'metrics-device');
    const epoch = uuidv7();
    const accepted = JSON.stringify(wireBatch(TABLE, rows(1, 3), { epoch }));
    assert.equal((await post(device.token, accepted)).status, 200);
    assert.equal((await post(device.token, accepted)).status, 200); // a redelivery: duplicate
    const refused = JSON.stringify({ ...wireBatch(TABLE, rows(4, 2), { epoch }), format_version: 99 });
    assert.equal((await post(device.token, refused)).status, 400);

    // Over MQTT: one more batch of 4 rows from the same device.
    const transport = new MqttTransport({ url: server.mqtt!.url, deviceId: device.device_id, token: device.token });
    try {
      const ack = await transport.sendRowBatch(await transport.encodeRowBatch(wireBatch(TABLE, rows(4, 4), { epoch })));
      assert.equal(ack.status, 'accepted');
      const during = await scrape();
      assert.equal(sample(during, 'syncline_mqtt_connections') - sample(before, 'syncline_mqtt_connections'), 1);
    } finally {
      await transport.close();
    }
    const now = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(now, name, labels) - sample(before, name, labels);

    assert.equal(delta('syncline_ingest_batches_total', { transport: 'http', outcome: 'accepted' }), 1);
    assert.equal(delta('syncline_ingest_rows_total', { transport: 'http', outcome: 'accepted' }), 3);
    assert.equal(delta('syncline_ingest_bytes_total', { transport: 'http', outcome: 'accepted' }), Buffer.byteLength(accepted));
    assert.equal(delta('syncline_ingest_batches_total', { transport: 'http', outcome: 'duplicate' }), 1);
    assert.equal(delta('syncline_ingest_rows_total', { transport: 'http', outcome: 'duplicate' }), 3);
    assert.equal(delta('syncline_ingest_batches_total', { transport: 'http', outcome: 'refused' }), 1);
    assert.equal(delta('syncline_ingest_rows_total', { transport: 'http', outcome: 'refused' }), 2);
    assert.equal(delta('syncline_ingest_bytes_total', { transport: 'http', outcome: 'refused' }), Buffer.byteLength(refused));
    assert.equal(delta('syncline_ingest_batches_total', { transport: 'mqtt', outcome: 'accepted' }), 1);
    assert.equal(delta('syncline_ingest_rows_total', { transport: 'mqtt', outcome: 'accepted' }), 4);
    assert.equal(delta('syncline_ingest_ack_seconds_count', { transport: 'http', outcome: 'accepted' }), 1);
    assert.equal(delta('syncline_ingest_ack_seconds_count', { transport: 'http', outcome: 'refused' }), 1);
    assert.equal(delta('syncline_ingest_ack_seconds_count', { transport: 'mqtt', outcome: 'accepted' }), 1);
    assert.equal(delta('syncline_ingest_ack_seconds_bucket', { transport: 'mqtt', outcome: 'accepted', le: '+Inf' }), 1);
    assert.ok(delta('syncline_ingest_ack_seconds_sum', { transport: 'http', outcome: 'accepted' }) > 0);
    assert.equal(delta('syncline_http_request_seconds_count', { method: 'POST', route: Routes.rowBatch, status: '4xx' }), 1);

    // Under review policy a new table waits: its 7 rows are staged, its lineage paused, a review queued.
    assert.equal(delta('syncline_staged_rows', { reason: 'schema_review' }), 7);
    assert.equal(delta('syncline_paused_lineages', { cause: 'schema_review' }), 1);
    assert.equal(delta('syncline_lineages', { status: 'paused' }), 1);
    assert.equal(delta('syncline_schema_reviews_open', { status: 'queued' }), 1);
    assert.equal(delta('syncline_devices', { state: 'active' }), 1);
    assert.equal(sample(now, 'syncline_mqtt_inflight_messages'), 0);
    assert.ok(sample(now, 'process_resident_memory_bytes') > 0, 'process metrics are exported');
    if (ctx.kind === 'postgres') assert.ok(sample(now, 'syncline_store_pool_connections', { state: 'total' }) >= 1);
  });

  test('a failed statement is counted by its SQLSTATE class', async () => {
    const before = sample(await scrape(), 'syncline_store_errors_total', { class: '22' });
    await assert.rejects(countStoreErrors(ctx.store).query('SELECT 1 / 0'));
    await assert.rejects(countStoreErrors(ctx.store).transaction((tx) => tx.query("SELECT 'x'::int")));
    assert.equal(sample(await scrape(), 'syncline_store_errors_total', { class: '22' }) - before, 2);
  });

  test('/metrics needs an admin token (a viewer is enough); --metrics-port serves it without one', async () => {
    assert.equal((await fetch(`${server.url}${Routes.metrics}`)).status, 401);
    const viewer = await createAdminToken(ctx.store, { name: 'metrics-viewer', role: 'viewer', createdBy: BOOTSTRAP_ACTOR });
    assert.ok((await scrape(viewer.token)).size > 0);
    const open = await fetch(server.metricsUrl!);
    assert.equal(open.status, 200);
    assert.match(await open.text(), /# TYPE syncline_ingest_batches_total counter/);
    assert.equal((await fetch(server.metricsUrl!.replace('/metrics', '/other'))).status, 404);
  });
});
