import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import type { ControlMessage } from '../../src/protocol/control.js';
import { Routes } from '../../src/protocol/constants.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { approve, AUTO, FakeDevice, openReview, REVIEW, upsert } from '../support/governance-fixtures.js';
import { eventually } from '../support/replication-check.js';
import { describeEachStore } from '../support/stores.js';

/**
 * Flow control decisions against a real store: a schema-review pause alone tells
 * the device nothing, the circuit breaker trips after five failing batches and
 * is reset by an operator, an operator resume overrides the cap, and controls
 * reach HTTP devices on their acks and by asking.
 */

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const CAP = 30;
const KEYED: TableSpec = { table: 'notes', columns: [{ name: 'k', type: 'TEXT', pk: 1 }, { name: 'body', type: 'TEXT' }] };
const path = (route: string, id: string) => route.replace(':id', id);

interface Flow {
  device_state: string;
  pause_reason: string | null;
  staged_rows: number;
  consecutive_failures: number;
  operator_override: boolean;
}

describeEachStore('flow control decisions', (ctx) => {
  let server: CloudServer;

  async function call(method: 'GET' | 'POST', route: string, token = ADMIN_TOKEN, json?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${server.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  const flowOf = async (lineageId: string) => (await call('GET', path(Routes.lineageFlow, lineageId))).body.flow as Flow;
  const controls = async (lineageId: string) =>
    (await ctx.store.query<{ message: ControlMessage; state: string }>('SELECT message, state FROM edge_lineage_controls WHERE lineage_id = $1 ORDER BY id', [lineageId])).rows;

  before(async () => {
    server = await CloudServer.start({
      store: ctx.store,
      httpPort: 0,
      adminToken: ADMIN_TOKEN,
      schemaPolicy: 'auto',
      logger: pino({ level: 'silent' }),
      flow: { maxStagedRows: CAP, intervalMs: 50 },
      replay: { pollMs: 100 },
    });
  });
  after(async () => {
    await server.stop();
  });

  test('a schema-review pause under the cap sends the device nothing: it keeps sending and the cloud stages', async () => {
    const fake = new FakeDevice(ctx.store, await newDevice(ctx.store, 'review-only'), REVIEW);
    let ack;
    for (let i = 1; i <= CAP; i++) ack = await fake.send(KEYED, [upsert(i, [`k${i}`, 'x'])]);
    await server.flow.tick();
    assert.equal((await flowOf(ack!.lineage_id)).staged_rows, CAP);
    assert.equal((await flowOf(ack!.lineage_id)).device_state, 'sending');
    assert.deepEqual(await controls(ack!.lineage_id), []);
  });

  test('five batches in a row kept out by a failing mirror open the breaker; reset-materialization closes it', async () => {
    const device = await newDevice(ctx.store, 'breaker');
    const fake = new FakeDevice(ctx.store, device, AUTO);
    const good = await fake.send(KEYED, [upsert(1, ['fine', 'ok'])]);
    const lineageId = good.lineage_id;
    // A DBA renames a mirror column: PostgreSQL refuses every batch (42703), whatever its rows.
    const mirror = (await ctx.store.query<{ mirror_table: string }>('SELECT mirror_table FROM edge_table_lineages WHERE id = $1', [lineageId])).rows[0]!.mirror_table;
    await ctx.store.exec(`ALTER TABLE "${mirror}" RENAME COLUMN body TO body_gone`);
    for (let seq = 2; seq <= 5; seq++) await fake.send(KEYED, [upsert(seq, [`k${seq}`, 'refused'])]);
    await server.flow.tick();
    assert.deepEqual([(await flowOf(lineageId)).consecutive_failures, (await flowOf(lineageId)).device_state], [4, 'sending']);
    await fake.send(KEYED, [upsert(6, ['k6', 'refused'])]);
    await eventually('the breaker opened', async () => (await flowOf(lineageId)).device_state === 'paused');
    assert.equal((await flowOf(lineageId)).pause_reason, 'circuit_breaker');
    assert.deepEqual((await controls(lineageId)).map((c) => [c.message.type, c.message.reason, c.state]), [['pause_lineage', 'circuit_breaker', 'pending']]);

    await ctx.store.exec(`ALTER TABLE "${mirror}" RENAME COLUMN body_gone TO body`);
    const reset = await call('POST', path(Routes.lineageResetMaterialization, lineageId));
    assert.equal(reset.status, 200, JSON.stringify(reset.body));
    assert.equal((reset.body.device as { device_state: string }).device_state, 'sending');
    assert.notEqual(reset.body.governance, null, 'the lineage paused by the failure is resumed (its staged rows replayed)');
    const history = await controls(lineageId);
    assert.deepEqual(history.map((c) => [c.message.type, c.message.reason, c.state]), [['pause_lineage', 'circuit_breaker', 'superseded'], ['resume_lineage', 'materialization_reset', 'pending']]);

    // An HTTP device learns of it on its next ack, or by asking; only it can ack it.
    const resumeId = history[1]!.message.control_id;
    const other = await newDevice(ctx.store, 'breaker-bystander');
    const batch = wireBatch({ table: 'other', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n] }], { epoch: fake.epoch });
    const ack = await call('POST', Routes.rowBatch, device.token, batch);
    assert.equal(ack.status, 200);
    assert.deepEqual((ack.body.controls as ControlMessage[]).map((c) => c.control_id), [resumeId]);
    assert.deepEqual(((await call('GET', Routes.syncControls, device.token)).body.controls as ControlMessage[]).map((c) => c.control_id), [resumeId]);
    assert.deepEqual((await call('GET', Routes.syncControls, other.token)).body.controls, []);
    assert.equal((await call('POST', Routes.syncControlsAck, other.token, { control_id: resumeId, status: 'applied' })).body.recorded, false);
    assert.equal((await call('POST', Routes.syncControlsAck, device.token, { control_id: resumeId, status: 'applied' })).body.recorded, true);
    assert.deepEqual((await call('GET', Routes.syncControls, device.token)).body.controls, []);
  });

  test('an operator resume lets a device paused over the cap send again; the cap applies again once the backlog drained', async () => {
    const fake = new FakeDevice(ctx.store, await newDevice(ctx.store, 'override'), REVIEW);
    let ack;
    for (let i = 1; i <= CAP + 5; i++) ack = await fake.send(KEYED, [upsert(i, [`k${i}`, 'x'])]);
    const lineageId = ack!.lineage_id;
    await eventually('paused for volume', async () => (await flowOf(lineageId)).device_state === 'paused');
    const resumed = await call('POST', path(Routes.lineageResume, lineageId));
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal((resumed.body.device as { device_state: string }).device_state, 'sending');
    await server.flow.tick();
    assert.deepEqual([(await flowOf(lineageId)).device_state, (await flowOf(lineageId)).operator_override], ['sending', true], 'over the cap, but the operator said so');
    assert.deepEqual((await controls(lineageId)).map((c) => [c.message.type, c.message.reason]), [['pause_lineage', 'volume_backpressure'], ['resume_lineage', 'operator_resume']]);
    const again = await call('POST', path(Routes.lineageResume, lineageId));
    assert.equal(again.status, 409, 'nothing left to resume: the review decides the lineage');

    await approve(ctx.store, (await openReview(ctx.store, lineageId)).id, { columns: [], default_action: 'mirror' });
    server.flow.wake();
    await eventually('the backlog drained and the override ended', async () => {
      const flow = await flowOf(lineageId);
      return flow.staged_rows === 0 && !flow.operator_override;
    });
  });
});
