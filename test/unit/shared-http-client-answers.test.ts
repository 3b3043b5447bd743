import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SharedRoutes } from '../../src/protocol/shared-sync.js';
import { SharedHttpClient } from '../../src/transport/shared-http-client.js';
import { transportRejection } from '../support/transport-errors.js';

/**
 * The two-way client reads every answer with its schema (sync-answers.ts): a
 * real local HTTP server answers as each test scripts it, and an answer that is
 * not the route's is a retryable TransportError naming the field, while a valid
 * one arrives whole (no field the device needs is dropped by the parse).
 */

interface Scripted {
  status: number;
  /** Sent as is; an object is sent as JSON. */
  body: string | object;
}

const HLC = '000000000000001-000000-dev1';


describe('SharedHttpClient reads answers with their schemas', () => {
  let server: Server;
  let client: SharedHttpClient;
  let answer: Scripted = { status: 500, body: 'no script' };
  const paths: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        paths.push(`${req.method} ${req.url}`);
        const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
        res.writeHead(answer.status, { 'content-type': typeof answer.body === 'string' ? 'text/html' : 'application/json' }).end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new SharedHttpClient({ serverUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'jwt', source: 'dev1', requestTimeoutMs: 10_000 });
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('a refused push arrives with every field of its conflicts', async () => {
    const conflicts = [
      { table: 'notes', key: [1], kind: 'version', server_row: [1, 'theirs', { $int: '9007199254740993' }], server_version: '7', server_hlc: HLC, message: 'changed on the server' },
      { table: 'notes', key: ['k'], kind: 'foreign_key', server_version: '0', constraint: 'notes_folder_fkey', message: 'no such folder' },
    ];
    answer = { status: 409, body: { status: 'conflict', conflicts } };
    assert.deepEqual(await client.commitPush('s1'), { status: 'conflict', conflicts });
  });

  test('pages, snapshots and config are taken when they are the route\'s answer', async () => {
    const page = { bundles: [{ bundle_seq: '3', source: 'dev2', rows: [{ table: 'notes', op: 'upsert', key: [1], row: [1, { $blob: 'AQI=' }, null, 1.5], hlc: HLC, version: '3' }], complete: true }], target: '3', next: null };
    answer = { status: 200, body: page };
    assert.deepEqual(await client.pull({ after: 0n }), page);
    answer = { status: 200, body: { end: true, chunk_count: 2, row_count: 10 } };
    assert.deepEqual(await client.snapshotChunk('snap', 2), { end: true, chunk_count: 2, row_count: 10 });
    answer = { status: 204, body: '' };
    await client.dropSnapshot('snap');
    assert.equal(paths.at(-1), `DELETE ${SharedRoutes.snapshot.replace(':id', 'snap')}`);
  });

  test('an answer that is not the route\'s is a retryable TransportError naming what is wrong', async () => {
    const cases: { name: string; call: () => Promise<unknown>; answer: Scripted; message: RegExp }[] = [
      { name: 'a portal page for a pull', call: () => client.pull({ after: 0n }), answer: { status: 200, body: '<html>login</html>' }, message: /GET .*\/v1\/shared\/pull\?after=0 answered 200 without its answer: the body is not JSON/ },
      { name: 'a pulled value that is no wire value', call: () => client.pull({ after: 0n }), answer: { status: 200, body: { bundles: [{ bundle_seq: '3', source: 'dev2', rows: [{ table: 'notes', op: 'upsert', key: [{ $int: 5 }], hlc: HLC, version: '3' }], complete: true }], target: '3', next: null } }, message: /: bundles\.0\.rows\.0\.key\.0: / },
      { name: 'a conflict without its kind', call: () => client.beginPush({ format_version: 1, source_bundle_id: 'b', base_seq: '0', row_count: 1 }), answer: { status: 409, body: { status: 'conflict', conflicts: [{ table: 'notes', key: [1], server_version: '1', message: 'm' }] } }, message: /answered 409 without its answer: conflicts\.0\.kind: / },
      { name: 'an unknown push status', call: () => client.uploadChunk('s', 0, []), answer: { status: 200, body: { status: 'stored' } }, message: /: status: / },
      { name: 'a config without source_id', call: () => client.config(), answer: { status: 200, body: { format_version: 1, scope: 'u1', tables: [] } }, message: /: source_id: / },
      { name: 'a snapshot chunk with numeric versions', call: () => client.snapshotChunk('snap', 0), answer: { status: 200, body: { table: 'notes', columns: ['id'], rows: [[1]], versions: [1], hlcs: [HLC], own: [] } }, message: /without its answer: / },
      { name: 'a snapshot without its id', call: () => client.createSnapshot(), answer: { status: 200, body: { snapshot_seq: '4' } }, message: /: snapshot_id: / },
    ];
    for (const c of cases) {
      answer = c.answer;
      const error = await transportRejection(c.call());
      assert.equal(error.retryable, true, c.name);
      assert.equal(error.status, c.answer.status, c.name);
      assert.match(error.message, c.message, `${c.name}: ${error.message}`);
    }
  });

  test('the event stream: announcements are read with their schema; one that is not (a number, not JSON, no digits) is skipped', async () => {
    const events = ['{"head_seq":"5"}', '{"head_seq":7}', 'not json', '{"head_seq":"x1"}', '{}', '{"head_seq":"9"}'];
    answer = { status: 200, body: events.map((data) => `event: bundle\ndata: ${data}\n\n`).join(': keep-alive\n\n') };
    const heads: string[] = [];
    await client.events((head) => heads.push(head), AbortSignal.timeout(10_000));
    assert.deepEqual(heads, ['5', '9']);
    assert.equal(paths.at(-1), `GET ${SharedRoutes.events}`);
  });

  test('refusals: our error body gives code and message; one without `error` gives its text and no code', async () => {
    answer = { status: 410, body: { error: 'history_pruned', message: 'hydrate from a snapshot', context: {} } };
    const pruned = await transportRejection(client.pull({ after: 0n }));
    assert.equal(pruned.code, 'history_pruned');
    assert.equal(pruned.retryable, false);
    assert.match(pruned.message, /GET .*: server answered 410 history_pruned: hydrate from a snapshot$/);
    answer = { status: 503, body: { message: 'starting', context: {} } };
    const starting = await transportRejection(client.config());
    assert.equal(starting.code, undefined);
    assert.equal(starting.retryable, true);
    assert.match(starting.message, /server answered 503: \{"message":"starting"/);
  });
});
