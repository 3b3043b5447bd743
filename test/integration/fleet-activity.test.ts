import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { ActivityRecorder } from '../../src/cloud/metrics/activity-recorder.js';
import { CloudServer } from '../../src/cloud/server.js';
import { deviceListSchema, devicePauseAnswerSchema, lineageListSchema, pauseAnswerSchema, resumeAnswerSchema, auditPageSchema } from '../../src/protocol/admin-answers.js';
import { batchAckSchema, parseControlMessage } from '../../src/protocol/control.js';
import { Routes } from '../../src/protocol/constants.js';
import type { Queryable } from '../../src/cloud/store/store.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';

/**
 * The fleet as operators see it: last-seen times and transports written in the
 * background (a Map on the request path, one statement per flush), and an
 * operator's pause and resume of a lineage or a whole device through the admin API.
 */

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });
const NOTES: TableSpec = { table: 'notes', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'body', type: 'TEXT' }] };
const OTHER: TableSpec = { table: 'other', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] };

describeEachStore('fleet activity and operator pause', (ctx) => {
  let server: CloudServer;
  let viewerToken: string;

  const api = async <T>(schema: { parse(value: unknown): T }, path: string, init: { method?: string; body?: unknown; token?: string } = {}): Promise<T> => {
    const response = await request(path, init);
    const text = await response.text();
    assert.equal(response.status, 200, `${init.method ?? 'GET'} ${path}: ${text}`);
    return schema.parse(JSON.parse(text));
  };
  const request = (path: string, init: { method?: string; body?: unknown; token?: string } = {}) =>
    fetch(`${server.url}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${init.token ?? ADMIN_TOKEN}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
    });
  const sendBatch = async (token: string, spec: TableSpec, rows: { seq: number; id: number }[], epoch: string) => {
    const batch = wireBatch(spec, rows.map((r) => ({ seq: r.seq, op: 'insert' as const, pk: [BigInt(r.id)], row: spec === NOTES ? [BigInt(r.id), `n${r.id}`] : [BigInt(r.id)] })), { epoch });
    const response = await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(batch) });
    assert.equal(response.status, 200, await response.clone().text());
    return batchAckSchema.parse(await response.json());
  };
  const pathOf = (route: string, id: string) => route.replace(':id', id);

  before(async () => {
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger, mqtt: { port: 0 }, activityFlushMs: 50, flow: { intervalMs: 50 } });
    const created = await request(Routes.adminTokens, { method: 'POST', body: { name: 'watcher', role: 'viewer' } });
    viewerToken = ((await created.json()) as { token: string }).token;
  });
  after(async () => {
    await server.stop();
  });

  test('last seen and transport come from what the server saw: HTTP batches, MQTT connections; a silent device has neither', async () => {
    const started = Date.now();
    const httpDevice = await newDevice(ctx.store, 'over-http');
    const mqttDevice = await newDevice(ctx.store, 'over-mqtt');
    const silent = await newDevice(ctx.store, 'silent');
    await sendBatch(httpDevice.token, NOTES, [{ seq: 1, id: 1 }], uuidv7());
    const client = await mqtt.connectAsync(server.mqtt!.url, { clientId: mqttDevice.device_id, username: mqttDevice.device_id, password: mqttDevice.token, protocolVersion: 4 });
    try {
      let devices = new Map<string, { last_seen_at: string | null; last_transport: string | null }>();
      await eventually('both devices seen', async () => {
        devices = new Map((await api(deviceListSchema, Routes.devices)).devices.map((d) => [d.device_id, d]));
        return devices.get(httpDevice.device_id)?.last_seen_at != null && devices.get(mqttDevice.device_id)?.last_seen_at != null;
      }, 10_000);
      assert.equal(devices.get(httpDevice.device_id)!.last_transport, 'http');
      assert.equal(devices.get(mqttDevice.device_id)!.last_transport, 'mqtt');
      for (const id of [httpDevice.device_id, mqttDevice.device_id]) {
        const seen = Date.parse(devices.get(id)!.last_seen_at!);
        assert.ok(seen >= started - 1000 && seen <= Date.now(), `last seen ${devices.get(id)!.last_seen_at} is during this test`);
      }
      assert.deepEqual(devices.get(silent.device_id), { ...devices.get(silent.device_id), last_seen_at: null, last_transport: null });
    } finally {
      await client.endAsync();
    }
  });

  test('a thousand sightings between flushes cost one UPDATE, and the newest sighting wins', async () => {
    const device = await newDevice(ctx.store, 'chatty');
    const statements: string[] = [];
    const counting: Queryable = { query: (sql, params) => (statements.push(sql), ctx.store.query(sql, params)), exec: (sql) => ctx.store.exec(sql), copyIn: (target, data) => ctx.store.copyIn(target, data) };
    const recorder = new ActivityRecorder({ db: counting, logger });
    for (let i = 0; i < 1000; i++) recorder.seen(device.device_id, i % 2 === 0 ? 'mqtt' : 'http');
    await recorder.flush();
    assert.equal(statements.length, 1, statements.join('\n'));
    assert.match(statements[0]!, /^UPDATE devices/);
    const { rows } = await ctx.store.query<{ last_transport: string }>('SELECT last_transport FROM devices WHERE id = $1', [device.device_id]);
    assert.equal(rows[0]!.last_transport, 'http', 'the last of the thousand');
    await recorder.flush();
    assert.equal(statements.length, 1, 'nothing recorded, nothing written');
  });

  test('a device heard from again over the same transport is written once per refresh window; a new transport is written at once', async () => {
    const device = await newDevice(ctx.store, 'steady');
    const updates: unknown[][] = [];
    const counting: Queryable = { query: (sql, params) => (sql.startsWith('UPDATE devices') && updates.push(params as unknown[]), ctx.store.query(sql, params)), exec: (sql) => ctx.store.exec(sql), copyIn: (target, data) => ctx.store.copyIn(target, data) };
    const recorder = new ActivityRecorder({ db: counting, logger, refreshMs: 300 });
    const lastSeen = async () => (await ctx.store.query<{ at: Date; transport: string }>('SELECT last_seen_at AS at, last_transport AS transport FROM devices WHERE id = $1', [device.device_id])).rows[0]!;
    recorder.seen(device.device_id, 'mqtt');
    await recorder.flush();
    const first = await lastSeen();
    await new Promise((resolve) => setTimeout(resolve, 20));
    recorder.seen(device.device_id, 'mqtt');
    await recorder.flush();
    assert.equal(updates.length, 1, 'the second sighting is within the window');
    assert.deepEqual(await lastSeen(), first);
    recorder.seen(device.device_id, 'http');
    await recorder.flush();
    assert.equal(updates.length, 2);
    assert.equal((await lastSeen()).transport, 'http');
    await new Promise((resolve) => setTimeout(resolve, 300));
    recorder.seen(device.device_id, 'http');
    await recorder.flush();
    assert.equal(updates.length, 3, 'a new window writes it again');
    assert.ok((await lastSeen()).at.getTime() > first.at.getTime());
  });

  test('pause and resume a lineage: the device is told with a control, flow control leaves the pause alone, both audited', async () => {
    const device = await newDevice(ctx.store, 'paused-by-hand');
    const epoch = uuidv7();
    const ack = await sendBatch(device.token, NOTES, [{ seq: 1, id: 1 }], epoch);
    const lineageId = ack.lineage_id;

    const paused = await api(pauseAnswerSchema, pathOf(Routes.lineagePause, lineageId), { method: 'POST', body: { note: 'maintenance window' } });
    assert.equal(paused.device.device_state, 'paused');
    assert.ok(paused.device.control_id, 'a control was issued');
    const again = await api(pauseAnswerSchema, pathOf(Routes.lineagePause, lineageId), { method: 'POST', body: {} });
    assert.deepEqual(again.device, { device_state: 'paused', control_id: null }, 'pausing twice issues no second control');
    const listed = (await api(lineageListSchema, `${Routes.lineages}?device_id=${device.device_id}`)).lineages[0]!;
    assert.equal(listed.device_state, 'paused');
    assert.equal(listed.device_pause_reason, 'operator_pause');

    // The device learns it from its next ack, in a form the device's own parser takes.
    const next = await sendBatch(device.token, NOTES, [{ seq: 2, id: 2 }], epoch);
    const control = parseControlMessage(next.controls?.at(-1));
    assert.equal(control.control_id, paused.device.control_id);
    assert.deepEqual([control.type, control.reason, control.lineage_id], ['pause_lineage', 'operator_pause', lineageId]);

    // Flow control passes over it: nothing in the counters ends an operator's pause.
    await server.flow.tick();
    assert.equal((await api(lineageListSchema, `${Routes.lineages}?device_id=${device.device_id}`)).lineages[0]!.device_state, 'paused');

    const resumed = await api(resumeAnswerSchema, pathOf(Routes.lineageResume, lineageId), { method: 'POST' });
    assert.equal(resumed.device.device_state, 'sending');
    const { rows } = await ctx.store.query<{ type: string; reason: string }>('SELECT type, reason FROM edge_lineage_controls WHERE lineage_id = $1 ORDER BY id', [lineageId]);
    assert.deepEqual(rows, [{ type: 'pause_lineage', reason: 'operator_pause' }, { type: 'resume_lineage', reason: 'operator_resume' }]);
    const audit = await api(auditPageSchema, `${Routes.audit}?lineage_id=${lineageId}&action=flow.pause`);
    assert.deepEqual(audit.entries.map((e) => (e.detail as { note: string | null }).note), [null, 'maintenance window']);
  });

  test('pause and resume a whole device: every lineage, in one answer', async () => {
    const device = await newDevice(ctx.store, 'whole-device');
    const epoch = uuidv7();
    await sendBatch(device.token, NOTES, [{ seq: 1, id: 1 }], epoch);
    await sendBatch(device.token, OTHER, [{ seq: 2, id: 1 }], epoch);
    const paused = await api(devicePauseAnswerSchema, pathOf(Routes.devicePause, device.device_id), { method: 'POST', body: { note: 'noisy' } });
    assert.deepEqual(paused.lineages.map((l) => [l.source_table, l.device.device_state]).sort(), [['notes', 'paused'], ['other', 'paused']]);
    assert.ok(paused.lineages.every((l) => l.device.control_id !== null));
    const lineages = (await api(lineageListSchema, `${Routes.lineages}?device_id=${device.device_id}`)).lineages;
    assert.deepEqual(lineages.map((l) => l.device_pause_reason), ['operator_pause', 'operator_pause']);
    const resumed = await api(devicePauseAnswerSchema, pathOf(Routes.deviceResume, device.device_id), { method: 'POST' });
    assert.ok(resumed.lineages.every((l) => l.device.device_state === 'sending' && l.device.control_id !== null));
    const after = (await api(lineageListSchema, `${Routes.lineages}?device_id=${device.device_id}`)).lineages;
    assert.deepEqual(after.map((l) => l.device_state), ['sending', 'sending']);
  });

  test('bad pause requests get a clear 4xx and change nothing', async () => {
    const device = await newDevice(ctx.store, 'bad-input');
    const { lineage_id: lineageId } = await sendBatch(device.token, NOTES, [{ seq: 1, id: 1 }], uuidv7());
    const refusal = async (path: string, init: { method?: string; body?: unknown; token?: string }, status: number, code: string, message?: RegExp) => {
      const response = await request(path, { method: 'POST', ...init });
      const body = (await response.json()) as { error: string; message: string };
      assert.equal(response.status, status, `${path}: ${JSON.stringify(body)}`);
      assert.equal(body.error, code);
      if (message) assert.match(body.message, message);
    };
    await refusal(pathOf(Routes.lineagePause, '00000000-0000-4000-8000-000000000000'), { body: {} }, 404, 'not_found', /no such lineage/);
    await refusal(pathOf(Routes.lineagePause, 'not-a-uuid'), { body: {} }, 404, 'not_found');
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: { note: 5 } }, 400, 'invalid_request', /^note: /);
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: { reason: 'because' } }, 400, 'invalid_request', /reason/);
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: { note: 'a\u0000b' } }, 400, 'invalid_request', /NUL/);
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: { note: 'x'.repeat(501) } }, 400, 'invalid_request', /^note: /);
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: '{"note":' }, 400, 'malformed_payload');
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: {}, token: viewerToken }, 403, 'forbidden');
    await refusal(pathOf(Routes.lineagePause, lineageId), { body: {}, token: 'sla_not_a_token_at_all' }, 401, 'unauthorized');
    await refusal(pathOf(Routes.devicePause, '00000000-0000-4000-8000-000000000000'), { body: {} }, 404, 'not_found', /no such device/);
    await refusal(pathOf(Routes.deviceResume, device.device_id), { token: viewerToken }, 403, 'forbidden');
    const lineage = (await api(lineageListSchema, `${Routes.lineages}?device_id=${device.device_id}`)).lineages[0]!;
    assert.equal(lineage.device_state, 'sending');
    const { rows } = await ctx.store.query('SELECT 1 FROM edge_lineage_controls WHERE lineage_id = $1', [lineageId]);
    assert.equal(rows.length, 0);
  });
});
