import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import pino from 'pino';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { SharedRoutes } from '../../src/protocol/shared-sync.js';
import { wireBatch } from '../support/cloud-batches.js';
import { ADMIN_TOKEN, sharedTestConfig, startSharedServer, userToken } from '../support/shared-fixtures.js';
import { describeEachStore } from '../support/stores.js';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

const HLC = '000000000000001-000000-dev1';
const HUGE = ['1e20', '1e300', '-1e19', '9223372036854775807'];

/** Raw HTTP over a socket, for requests fetch refuses to send (bad URLs, huge headers, garbage). */
function rawRequest(port: number, text: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1] ?? 0);
      const body = rest.join('\r\n\r\n');
      resolve({ status, body: body ? (JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)) as Record<string, unknown>) : {} });
    });
  });
}

describeEachStore('no 500 for client input', (ctx) => {
  let server: CloudServer;
  let port: number;
  let user: string;

  async function call(method: string, path: string, options: { token?: string; body?: string } = {}): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${server.url}${path}`, { method, headers, signal: AbortSignal.timeout(30_000), ...(options.body !== undefined ? { body: options.body } : {}) }).catch((error: unknown) => {
      throw new Error(`${method} ${path} ${options.body ?? ''}: ${String(error)}`);
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }
  const admin = (method: string, path: string, body?: string) => call(method, path, { token: ADMIN_TOKEN, ...(body !== undefined ? { body } : {}) });
  const refused = (reply: Reply, status: number, error: string, field?: string) => {
    assert.equal(reply.status, status, JSON.stringify(reply.body));
    assert.equal(reply.body.error, error, JSON.stringify(reply.body));
    assert.equal(typeof reply.body.message, 'string');
    assert.equal(typeof reply.body.context, 'object');
    if (field !== undefined) assert.equal((reply.body.context as Record<string, unknown>).field, field);
  };

  before(async () => {
    server = await startSharedServer(ctx.store);
    port = Number(new URL(server.url).port);
    user = await userToken(`u-${uuidv7()}`, { sid: 'dev1' });
  });
  after(async () => {
    await server.stop();
  });

  test('plain JSON integers beyond 2^53 are refused as invalid_number_encoding on every path, and nothing is kept', async () => {
    const readings = (value: string) => `{"table":"readings","op":"upsert","key":[${value}],"row":[${value},1.5],"hlc":"${HLC}"}`;
    const push = (rows: string, count = 1) => `{"format_version":1,"source_bundle_id":"${uuidv7()}","base_seq":"0","row_count":${count},"rows":[${rows}]}`;
    for (const value of HUGE) {
      refused(await call('POST', SharedRoutes.push, { token: user, body: push(readings(value)) }), 400, 'invalid_number_encoding', 'rows[0].key[0]');
      refused(await admin('POST', SharedRoutes.adminBundles.replace(':scope', 'scope-a'), `{"source_bundle_id":"${uuidv7()}","rows":[${readings(value)}]}`), 400, 'invalid_number_encoding', 'rows[0].key[0]');
    }
    const begun = await call('POST', SharedRoutes.push, { token: user, body: `{"format_version":1,"source_bundle_id":"${uuidv7()}","base_seq":"0","row_count":2}` });
    assert.equal(begun.status, 200, JSON.stringify(begun.body));
    const session = begun.body.session_id as string;
    const chunk = SharedRoutes.pushChunk.replace(':id', session).replace(':index', '0');
    refused(await call('PUT', chunk, { token: user, body: `{"rows":[${readings('1')},${readings('1e20')}]}` }), 400, 'invalid_number_encoding', 'rows[1].key[0]');
    const kept = await ctx.store.query<{ n: string }>('SELECT count(*) AS n FROM sync_push_chunks WHERE session_id = $1', [session]);
    assert.equal(kept.rows[0]!.n, '0', 'the refused chunk was not kept');
    refused(await call('POST', SharedRoutes.push, { token: user, body: push(readings('1')).replace('"base_seq":"0"', '"base_seq":"9999999999999999999"') }), 400, 'invalid_batch');

    const device = await admin('POST', Routes.devices, '{"name":"numbers"}');
    const batch = JSON.stringify(wireBatch({ table: 'nums', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'n', type: 'INTEGER' }] }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n, 5n] }], { epoch: uuidv7() })).replace('[1,5]', '[1,1e20]');
    refused(await call('POST', Routes.rowBatch, { token: device.body.token as string, body: batch }), 400, 'invalid_number_encoding', 'rows.0.row.1');
    const lineages = await admin('GET', `${Routes.lineages}?device_id=${device.body.device_id as string}`);
    assert.deepEqual(lineages.body.lineages, [], 'nothing stored for the refused batch');
  });

  test('the 500s found by hand answer 400 or 404; lineages honour limit, the audit log refuses unknown parameters', async () => {
    refused(await admin('GET', `${Routes.lineages}?device_id=abc`), 400, 'invalid_request', 'device_id');
    refused(await admin('POST', SharedRoutes.adminBundles.replace(':scope', 'a%00b'), `{"source_bundle_id":"x","rows":[{"table":"readings","op":"delete","key":[1],"hlc":"${HLC}"}]}`), 400, 'invalid_request', 'scope');
    refused(await admin('GET', Routes.lineageReplay.replace(':id', uuidv7())), 404, 'not_found');
    refused(await admin('GET', `${Routes.audit}?after=junk`), 400, 'invalid_request', 'after');
    refused(await admin('GET', `${Routes.audit}?actor=a%00b`), 400, 'invalid_request', 'actor');
    refused(await admin('GET', `${Routes.lineages}?limit=0`), 400, 'invalid_request', 'limit');

    const device = await admin('POST', Routes.devices, '{"name":"pages"}');
    for (const table of ['t1', 't2', 't3']) {
      const batch = wireBatch({ table, columns: [{ name: 'id', type: 'INTEGER', pk: 1 }] }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n] }], { epoch: uuidv7() });
      assert.equal((await call('POST', Routes.rowBatch, { token: device.body.token as string, body: JSON.stringify(batch) })).status, 200);
    }
    const first = await admin('GET', `${Routes.lineages}?device_id=${device.body.device_id as string}&limit=2`);
    assert.deepEqual((first.body.lineages as { source_table: string }[]).map((l) => l.source_table), ['t1', 't2']);
    const second = await admin('GET', `${Routes.lineages}?device_id=${device.body.device_id as string}&limit=2&after=${first.body.next as string}`);
    assert.deepEqual([(second.body.lineages as { source_table: string }[]).map((l) => l.source_table), second.body.next], [['t3'], null]);
  });

  test('two-way: a pushed or declared table name with control characters is refused as hostile_identifier', async () => {
    const hostile = 'a\u0001\u001b[31mred\n';
    const body = JSON.stringify({ format_version: 1, source_bundle_id: uuidv7(), base_seq: '0', row_count: 1, rows: [{ table: hostile, op: 'delete', key: [1], hlc: HLC }] });
    const reply = await call('POST', SharedRoutes.push, { token: user, body });
    refused(reply, 400, 'hostile_identifier');
    assert.doesNotMatch(String(reply.body.message), /[\u0000-\u001f]/);
    assert.throws(
      () => sharedTestConfig({ tables: [{ name: hostile, direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'INTEGER' }] }] }),
      (e: unknown) => e instanceof SynclineError && /contains a control character/.test(e.message),
    );
  });

  test("Fastify's and Node's own refusals answer in Syncline's body", async () => {
    refused(await rawRequest(port, 'GET /v1/lineages/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 400, 'invalid_request');
    refused(await admin('GET', Routes.lineage.replace(':id', 'x'.repeat(500))), 414, 'uri_too_long');
    refused(await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'headers_too_large');
    refused(await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n'), 400, 'malformed_payload');
    // Headers that never finish: Node's request timeout answers 408, in the same body.
    const slow = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'review', logger: pino({ level: 'silent' }), http: { requestTimeoutMs: 600, headersTimeoutMs: 300 } });
    try {
      refused(await rawRequest(Number(new URL(slow.url).port), 'GET /healthz HTTP/1.1\r\nHost: x\r\n'), 408, 'request_timeout');
    } finally {
      await slow.stop();
    }
  });

  test('a brief fuzz of the admin and sync routes with junk ids, parameters and bodies finds no 500', async () => {
    const ids = ['abc', 'a%00b', '%C0%AF', '1e309', uuidv7(), "'; DROP TABLE x; --"];
    const queries = ['', '?limit=abc', '?limit=-1', '?limit=1e9', '?after=%00', '?after=abc', '?status=%00', '?schema_hash=%00', '?device_id=%00', '?limit=1&limit=2', '?action=%00', '?before=abc'];
    const bodies = [undefined, '', '{}', '[]', 'null', '"x"', '{"columns":"x"}', '{"action_version":"x"}', '{"action_version":1e400}', '{"name":"a\\u0000b"}', '{"reason":"\\ud800"}', '{"role":"admin","name":"x"}'];
    // Event streams stay open by design; their refusals are covered where they live.
    const routes = Object.values(Routes).filter((r) => r.startsWith('/v1/') && r !== Routes.live);
    let requests = 0;
    for (const route of routes) {
      for (const [i, id] of ids.entries()) {
        const path = route.replace(':id', id) + queries[i % queries.length]!;
        for (const method of ['GET', 'POST']) {
          const body = method === 'POST' ? bodies[(i + requests) % bodies.length] : undefined;
          const reply = await admin(method, path, body).catch((error: unknown) => {
            throw new Error(`${method} ${path} ${body ?? ''}: ${String(error)}`);
          });
          requests++;
          assert.ok(reply.status < 500, `${method} ${path} ${body ?? ''} answered ${reply.status} ${JSON.stringify(reply.body)}`);
        }
      }
    }
    assert.ok(requests > 300);
  });
});
