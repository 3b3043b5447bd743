import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import type { BatchAck } from '../../src/protocol/batch.js';
import { decodeValue } from '../../src/protocol/values.js';
import { wireBatch, type RowSpec, type TableSpec } from '../support/cloud-batches.js';
import { deviceState } from '../support/cloud-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const BODY_LIMIT = 64 * 1024;
const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] };
const item = (seq: number, id: number, name: string): RowSpec => ({ seq, op: 'insert', pk: [BigInt(id)], row: [BigInt(id), name] });
const path = (route: string, id: string) => route.replace(':id', encodeURIComponent(id));

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describeEachStore('HTTP front door', (ctx) => {
  let server: CloudServer;

  async function call(method: 'GET' | 'POST', route: string, options: { token?: string; json?: unknown; raw?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let body: Buffer | string | undefined = options.raw;
    if (options.json !== undefined) body = JSON.stringify(options.json);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(`${server.url}${route}`, { method, headers, body });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  const admin = (method: 'GET' | 'POST', route: string, json?: unknown) => call(method, route, json === undefined ? { token: ADMIN_TOKEN } : { token: ADMIN_TOKEN, json });

  async function newDevice(): Promise<{ device_id: string; token: string }> {
    const created = await admin('POST', Routes.devices, { name: 'http-test' });
    assert.equal(created.status, 201);
    return created.body as { device_id: string; token: string };
  }

  before(async () => {
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'auto', logger: pino({ level: 'silent' }), bodyLimit: BODY_LIMIT });
  });
  after(async () => {
    await server.stop();
  });

  test('healthz needs no credential', async () => {
    assert.deepEqual(await call('GET', Routes.health), { status: 200, body: { status: 'ok' } });
  });

  test('the admin API needs the admin token', async () => {
    for (const token of [undefined, 'wrong-token-but-long-enough', `${ADMIN_TOKEN}x`]) {
      for (const [method, route] of [['GET', Routes.lineages], ['GET', Routes.devices], ['POST', Routes.devices]] as const) {
        const json = method === 'POST' ? { name: 'x' } : undefined;
        const reply = await call(method, route, { ...(token === undefined ? {} : { token }), ...(json ? { json } : {}) });
        assert.equal(reply.status, 401, `${method} ${route}`);
        assert.equal(reply.body.error, 'unauthorized');
      }
    }
    const device = await newDevice();
    const asDevice = await call('GET', Routes.lineages, { token: device.token });
    assert.equal(asDevice.status, 401, 'a device token is not an admin token');
  });

  test('devices: created with a token shown once, listed without it, revoked', async () => {
    const device = await newDevice();
    assert.match(device.token, /^sld_/);
    const list = await admin('GET', Routes.devices);
    const listed = (list.body.devices as Record<string, unknown>[]).find((d) => d.device_id === device.device_id);
    assert.deepEqual(Object.keys(listed!).sort(), ['created_at', 'device_id', 'last_seen_at', 'last_transport', 'name', 'org_id', 'project_id', 'revoked_at']);
    assert.ok(!JSON.stringify(list.body).includes(device.token));
    const revoked = await admin('POST', path(Routes.deviceRevoke, device.device_id));
    assert.equal(revoked.status, 200);
    assert.equal(typeof revoked.body.revoked_at, 'string');
    assert.equal((await admin('POST', path(Routes.deviceRevoke, uuidv7()))).status, 404);
    assert.equal((await admin('POST', Routes.devices, { name: 42 })).body.error, 'invalid_request');
  });

  test('a revoked token is refused from its very next request, though its last one was just accepted', async () => {
    const device = await newDevice();
    const epoch = uuidv7();
    for (const seq of [1, 2]) assert.equal((await call('POST', Routes.rowBatch, { token: device.token, json: wireBatch(ITEMS, [item(seq, seq, 'before')], { epoch }) })).status, 200);
    assert.equal((await admin('POST', path(Routes.deviceRevoke, device.device_id))).status, 200);
    const refused = await call('POST', Routes.rowBatch, { token: device.token, json: wireBatch(ITEMS, [item(3, 3, 'after')], { epoch }) });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'unauthorized');
  });

  test('a batch is accepted; plain or gzip; tenant fields in the payload are ignored and not stored', async () => {
    const device = await newDevice();
    const epoch = uuidv7();
    const plain = await call('POST', Routes.rowBatch, { token: device.token, json: wireBatch(ITEMS, [item(1, 1, 'one')], { epoch }) });
    assert.equal(plain.status, 200);
    assert.equal(plain.body.status, 'accepted');

    const spoofed = { ...wireBatch(ITEMS, [item(2, 2, 'two')], { epoch }), org_id: 'evil-org', project_id: 'evil-project', device_id: uuidv7() };
    const gzipped = await call('POST', Routes.rowBatch, { token: device.token, raw: gzipSync(JSON.stringify(spoofed)), headers: { 'content-encoding': 'gzip' } });
    assert.equal(gzipped.status, 200, JSON.stringify(gzipped.body));
    assert.equal(gzipped.body.rows_applied, 1);

    const lineage = await admin('GET', path(Routes.lineage, String(plain.body.lineage_id)));
    assert.equal(lineage.body.device_id, device.device_id);
    assert.equal(lineage.body.project_id, 'default');
    const leaked = await ctx.store.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM edge_table_lineages WHERE project_id <> 'default' OR device_id = $1::uuid)
            + (SELECT count(*) FROM edge_export_segments WHERE device_id = $1::uuid OR ack::text LIKE '%evil%') AS n`,
      [spoofed.device_id],
    );
    assert.equal(leaked.rows[0]!.n, '0');
    const ledger = await ctx.store.query<{ byte_count: string }>('SELECT byte_count FROM edge_export_segments WHERE batch_id = $1', [spoofed.batch_id]);
    assert.equal(Number(ledger.rows[0]!.byte_count), Buffer.byteLength(JSON.stringify(spoofed)), 'the ledger records the decoded size');
  });

  test('bad requests get a clear status and error, and change nothing already stored', async () => {
    const device = await newDevice();
    const revokedDevice = await newDevice();
    const epoch = uuidv7();
    const stored = await call('POST', Routes.rowBatch, { token: device.token, json: wireBatch(ITEMS, [item(5, 1, 'kept'), item(6, 2, 'kept too')], { epoch }) });
    assert.equal(stored.status, 200);
    await admin('POST', path(Routes.deviceRevoke, revokedDevice.device_id));
    const before = await deviceState(ctx.store, device.device_id);

    const good = () => wireBatch(ITEMS, [item(7, 1, 'CHANGED')], { epoch });
    const { source_table: _dropped, ...missingTable } = good();
    const badRow = good();
    badRow.rows[0]!.row = [1];
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < BODY_LIMIT, 'the bomb itself is small');
    const huge = JSON.stringify({ ...good(), padding: 'x'.repeat(BODY_LIMIT) });

    const cases: { title: string; token?: string; json?: unknown; raw?: Buffer | string; headers?: Record<string, string>; status: number; error: string; field?: string }[] = [
      { title: 'no token', json: good(), status: 401, error: 'unauthorized' },
      { title: 'unknown token', token: 'sld_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', json: good(), status: 401, error: 'unauthorized' },
      { title: 'admin token on the device route', token: ADMIN_TOKEN, json: good(), status: 401, error: 'unauthorized' },
      { title: 'revoked token', token: revokedDevice.token, json: good(), status: 401, error: 'unauthorized' },
      { title: 'malformed JSON', token: device.token, raw: '{"format_version": 1,', status: 400, error: 'malformed_payload' },
      { title: 'empty body', token: device.token, raw: '', status: 400, error: 'malformed_payload' },
      { title: 'not JSON content type', token: device.token, raw: 'hello', headers: { 'content-type': 'text/plain' }, status: 400, error: 'malformed_payload' },
      { title: 'bad gzip', token: device.token, raw: 'not gzip at all', headers: { 'content-encoding': 'gzip' }, status: 400, error: 'malformed_payload' },
      { title: 'unsupported encoding', token: device.token, raw: JSON.stringify(good()), headers: { 'content-encoding': 'br' }, status: 400, error: 'malformed_payload' },
      { title: 'missing field', token: device.token, json: missingTable, status: 400, error: 'invalid_batch', field: 'source_table' },
      { title: 'row of the wrong width', token: device.token, json: badRow, status: 400, error: 'row_shape_mismatch', field: 'rows.0.row' },
      { title: 'wrong format version', token: device.token, json: { ...good(), format_version: 99 }, status: 400, error: 'invalid_format_version', field: 'format_version' },
      { title: 'oversized body', token: device.token, raw: huge, status: 413, error: 'payload_too_large' },
      { title: 'gzip bomb', token: device.token, raw: bomb, headers: { 'content-encoding': 'gzip' }, status: 413, error: 'payload_too_large' },
      { title: 'stale epoch', token: device.token, json: wireBatch(ITEMS, [item(1, 1, 'CHANGED')], { epoch: '01890a5d-ac96-774b-bcce-b302099a8057' }), status: 409, error: 'stale_epoch' },
    ];
    for (const c of cases) {
      const reply = await call('POST', Routes.rowBatch, c);
      assert.equal(reply.status, c.status, `${c.title}: ${JSON.stringify(reply.body)}`);
      assert.equal(reply.body.error, c.error, `${c.title}: ${JSON.stringify(reply.body)}`);
      assert.equal(typeof reply.body.message, 'string', c.title);
      if (c.field) assert.equal((reply.body.context as Record<string, unknown>).field, c.field, c.title);
    }
    assert.deepEqual(await deviceState(ctx.store, device.device_id), before);
    assert.equal((await call('GET', Routes.health)).status, 200, 'the server is still serving');
  });

  test('mirror rows page by key with an opaque cursor', async () => {
    const device = await newDevice();
    const ids = Array.from({ length: 25 }, (_, i) => 1000 - i * 37);
    const sent = await call('POST', Routes.rowBatch, { token: device.token, json: wireBatch(ITEMS, ids.map((id, i) => item(i + 1, id, `name ${id}`)), { epoch: uuidv7() }) });
    const route = path(Routes.mirrorRows, String(sent.body.lineage_id));
    const seen: number[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const query: string = new URLSearchParams({ limit: '10', ...(after ? { after } : {}) }).toString();
      const page = await admin('GET', `${route}?${query}`);
      assert.equal(page.status, 200);
      const rows = page.body.rows as Record<string, unknown>[];
      for (const row of rows) {
        seen.push(Number(decodeValue(row.id ?? null)));
        assert.equal(row.name, `name ${String(row.id)}`);
      }
      after = page.body.next as string | null;
      pages++;
    } while (after !== null);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...ids].sort((a, b) => a - b));

    assert.equal((await admin('GET', `${route}?after=garbage`)).body.error, 'invalid_request');
    assert.equal((await admin('GET', `${route}?limit=0`)).status, 400);
    assert.equal((await admin('GET', path(Routes.mirrorRows, uuidv7()))).status, 404);
    assert.equal((await admin('GET', path(Routes.lineage, 'not-a-uuid'))).status, 404);
  });

  test('a duplicate delivery over HTTP gets the same ack', async () => {
    const device = await newDevice();
    const batch = wireBatch(ITEMS, [item(1, 1, 'one')], { epoch: uuidv7() });
    const first = (await call('POST', Routes.rowBatch, { token: device.token, json: batch })).body as unknown as BatchAck;
    const second = (await call('POST', Routes.rowBatch, { token: device.token, json: batch })).body as unknown as BatchAck;
    assert.deepEqual(second, { ...first, status: 'duplicate' });
    const lineages = await admin('GET', `${Routes.lineages}?device_id=${device.device_id}`);
    assert.deepEqual((lineages.body.lineages as Record<string, unknown>[]).map((l) => [l.source_table, l.status, l.last_seq, l.rows_applied]), [['items', 'active', 1, 1]]);
  });

  test('unknown routes answer 404 in the error format', async () => {
    const reply = await call('GET', '/v1/nope');
    assert.equal(reply.status, 404);
    assert.equal(reply.body.error, 'not_found');
  });
});
