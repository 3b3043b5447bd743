import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { API_ROUTES } from '../../src/cloud/http/api-catalogue.js';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { sharedTestConfig } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';

const ADMIN_TOKEN = 'openapi-admin-token-0123456789';

describeEachStore('OpenAPI document', (ctx) => {
  let server: CloudServer;

  before(async () => {
    const shared = sharedTestConfig({ tables: [{ name: 'api_notes', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'body', type: 'TEXT' }] }] });
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'review', logger: pino({ level: 'silent' }), shared });
  });
  after(async () => {
    await server.stop();
  });

  test('every registered route is in the document, and every documented route is registered', async () => {
    const response = await fetch(`${server.url}${Routes.openapi}`);
    assert.equal(response.status, 200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.equal(document.openapi, '3.1.0');
    const documented = new Set(Object.entries(document.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    const registered = new Set(server.routes.map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`));
    assert.ok(registered.size > 40, `only ${registered.size} routes registered`);
    assert.deepEqual([...registered].filter((r) => !documented.has(r)), [], 'registered routes missing from /openapi.json');
    assert.deepEqual([...documented].filter((r) => !registered.has(r)), [], 'documented routes the server does not have');
  });

  test('request and answer schemas come out as JSON Schema 2020-12', async () => {
    const document = (await (await fetch(`${server.url}${Routes.openapi}`)).json()) as { paths: Record<string, Record<string, any>> };
    const approve = document.paths['/v1/schema-reviews/{id}/approve']!.post;
    const body = approve.requestBody.content['application/json'].schema;
    assert.deepEqual(body.required, ['action_version', 'columns']);
    assert.equal(body.additionalProperties, false);
    const actions = body.properties.columns.items.oneOf ?? body.properties.columns.items.anyOf;
    assert.deepEqual(actions.map((a: any) => a.properties.action.const).sort(), ['defer', 'ignore', 'mirror', 'mirror_as']);
    assert.ok(approve.responses['200'].content['application/json'].schema.properties.review);
    assert.deepEqual(approve.security, [{ adminToken: [] }]);
    assert.ok(document.paths['/v1/sync/rows/batch']!.post.requestBody);
    assert.equal(API_ROUTES.length, new Set(API_ROUTES.map((r) => `${r.method} ${r.url}`)).size, 'one declaration per route');
  });

  test('the control ack body is documented as the route checks it', async () => {
    const document = (await (await fetch(`${server.url}${Routes.openapi}`)).json()) as { paths: Record<string, Record<string, any>> };
    const body = document.paths[Routes.syncControlsAck]!.post.requestBody.content['application/json'].schema;
    assert.deepEqual(body, {
      type: 'object',
      properties: { control_id: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }, status: { type: 'string', enum: ['applied', 'stale'] } },
      required: ['control_id', 'status'],
      additionalProperties: false,
    });
    // What the document refuses, the route refuses; what it allows, the route takes.
    const created = await fetch(`${server.url}${Routes.devices}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'openapi-ack' }) });
    const { token } = (await created.json()) as { token: string };
    const ack = (sent: unknown) => fetch(`${server.url}${Routes.syncControlsAck}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(sent) });
    const controlId = randomUUID();
    for (const refused of [{ control_id: 'not-a-uuid', status: 'applied' }, { control_id: controlId, status: 'applied', extra: true }, { control_id: controlId, status: 'done' }]) {
      const answer = await ack(refused);
      assert.equal(answer.status, 400, JSON.stringify(refused));
      assert.equal(((await answer.json()) as { error: string }).error, 'invalid_request');
    }
    const taken = await ack({ control_id: controlId, status: 'stale' });
    assert.equal(taken.status, 200);
    assert.deepEqual(await taken.json(), { control_id: controlId, recorded: false });
  });

  test('in tests every JSON answer is checked against its declared schema', async () => {
    // The admin API's answers pass (they are checked on the way out) ...
    const devices = await fetch(`${server.url}${Routes.devices}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(devices.status, 200);
    const whoami = await fetch(`${server.url}${Routes.whoami}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.deepEqual(await whoami.json(), { label: 'bootstrap admin token', role: 'admin' });
  });
});
