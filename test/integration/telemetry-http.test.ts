import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes, TELEMETRY_BATCH_FORMAT_VERSION } from '../../src/protocol/constants.js';
import { affinityOf, schemaFingerprint } from '../../src/protocol/schema.js';
import { newDevice } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';

/** The telemetry routes answer bad input with a clear 4xx (never a 500) and store nothing for it. */

const ADMIN = 'telemetry-http-admin-token-012345';
const logger = pino({ level: 'silent' });

describeEachStore('telemetry HTTP routes', (context) => {
  let server: CloudServer;
  before(async () => {
    server = await CloudServer.start({ store: context.store, httpPort: 0, adminToken: ADMIN, schemaPolicy: 'review', logger });
  });
  after(async () => {
    await server.stop();
  });

  const columns = [
    { name: 'ts', declared_type: 'INTEGER', affinity: affinityOf('INTEGER'), pk: 0, notnull: false, has_default: false },
    { name: 'v', declared_type: 'REAL', affinity: affinityOf('REAL'), pk: 0, notnull: false, has_default: false },
  ];
  const batch = (rows: unknown[], extra: Record<string, unknown> = {}) => ({
    format_version: TELEMETRY_BATCH_FORMAT_VERSION,
    batch_id: uuidv7(),
    journal_epoch: uuidv7(),
    source_table: 'http_t',
    time_column: 'ts',
    schema: { hash: schemaFingerprint(columns), columns },
    first_seq: 1,
    last_seq: rows.length,
    rows,
    ...extra,
  });

  async function post(path: string, token: string, body: string): Promise<{ status: number; json: { error?: string } & Record<string, unknown> }> {
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
    return { status: response.status, json: (await response.json()) as { error?: string } };
  }
  async function get(path: string, token = ADMIN): Promise<{ status: number; json: { error?: string } & Record<string, unknown> }> {
    const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, json: (await response.json()) as { error?: string } };
  }

  test('device batches: bad credential, bad JSON, bad shapes are refused; a good one is staged for review, then approved', async () => {
    const device = await newDevice(context.store, 'http');
    assert.equal((await post(Routes.telemetryBatch, 'nope', JSON.stringify(batch([{ seq: 1, row: [1, 1.5] }])))).status, 401);
    const cases: [string, number, string][] = [
      ['{not json', 400, 'malformed_payload'],
      [JSON.stringify(batch([{ seq: 1, row: [1] }])), 400, 'row_shape_mismatch'],
      [JSON.stringify(batch([{ seq: 1, row: [1, 1.5] }], { format_version: 99 })), 400, 'invalid_format_version'],
      [JSON.stringify(batch([{ seq: 1, row: [1, 1.5] }], { time_column: 'nope' })), 400, 'telemetry_time_column_missing'],
      [JSON.stringify(batch([{ seq: 1, row: [{ $blob: 'AA==' }, 1.5] }])), 400, 'telemetry_bad_time'],
      [JSON.stringify(batch([{ seq: 1, row: [1, { $real: 'NaN' }] }])), 400, 'invalid_number_encoding'],
      [JSON.stringify(batch([{ seq: 1, row: [1, 1.5] }], { source_table: 'bad\u0001name' })), 400, 'hostile_identifier'],
    ];
    for (const [body, status, code] of cases) {
      const answer = await post(Routes.telemetryBatch, device.token, body);
      assert.deepEqual([answer.status, answer.json.error], [status, code], body.slice(0, 120));
    }
    const { rows } = await context.store.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry_segments WHERE device_id = $1', [device.device_id]);
    assert.equal(rows[0]!.n, 0);
    const ok = await post(Routes.telemetryBatch, device.token, JSON.stringify(batch([{ seq: 1, row: [Date.UTC(2026, 0, 1), 1.5] }, { seq: 2, row: [Date.UTC(2026, 0, 1, 0, 1), 2.5] }])));
    assert.equal(ok.status, 200);
    assert.equal(ok.json.rows_applied, 2);
    const pending = await get(`${Routes.telemetryMappings}?status=pending`);
    const mapping = (pending.json.mappings as { id: string; source_table: string; staged_rows: number }[]).find((m) => m.source_table === 'http_t')!;
    assert.equal(mapping.staged_rows, 2);
    const approve = (id: string, body: unknown) => post(Routes.telemetryMappingApprove.replace(':id', id), ADMIN, JSON.stringify(body));
    assert.equal((await approve('not-an-id', { columns: [] })).status, 404);
    assert.equal((await approve(mapping.id, { columns: 'x' })).json.error, 'invalid_request');
    assert.equal((await approve(mapping.id, { columns: [{ name: 'v', action: 'point', kind: 'float' }] })).json.error, 'telemetry_bad_mapping');
    const approved = await approve(mapping.id, { columns: [{ name: 'v', action: 'point' }], time_unit: 'ms' });
    assert.equal(approved.status, 200);
    assert.equal(approved.json.replayed_rows, 2);
    const series = await get(`${Routes.telemetryQuery}?device=${device.device_id}&point=http_t.v&from=2026-01-01T00:00:00Z&to=2026-01-01T00:03:00Z&bucket=1m&agg=max`);
    assert.deepEqual((series.json.buckets as { value: unknown }[]).map((b) => b.value), [1.5, 2.5, null]);
  });

  test('queries: bad parameters are 400 with the field named, unknown points 404, no token 401', async () => {
    const device = await newDevice(context.store, 'query');
    const base = `${Routes.telemetryQuery}?device=${device.device_id}&point=x&from=2026-01-01&to=2026-01-02`;
    for (const [query, field] of [[`${base}&bucket=5y`, 'bucket'], [`${base}&agg=median`, 'agg'], [`${Routes.telemetryQuery}?device=abc&point=x&from=2026-01-01&to=2026-01-02`, 'device'], [`${base}&bucket=1s`, 'bucket']] as const) {
      const answer = await get(query);
      assert.equal(answer.status, 400, query);
      assert.equal((answer.json.context as { field?: string }).field, field);
    }
    assert.equal((await get(base)).status, 404);
    assert.equal((await get(base, 'wrong-token')).status, 401);
    assert.equal((await get(`${Routes.telemetryLatest}`)).status, 400);
    assert.deepEqual((await get(`${Routes.telemetryLatest}?device=${device.device_id}`)).json.points, []);
  });
});
