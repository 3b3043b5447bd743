import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { uuidv7 } from 'uuidv7';
import { Routes } from '../../src/protocol/constants.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { createDeviceToken, runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { eventually } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }, { name: 'pin', type: 'TEXT' }, { name: 'qty', type: 'INTEGER' }] };

describe('syncline admin reviews / audit / token / project (real server process, PGlite)', () => {
  const dir = tempDir('syncline-governance-cli-');
  let server: ServerProcess;
  const cli = (args: string[], token = server.adminToken) => runSyncline(['admin', ...args, '--server', server.url], { SYNCLINE_ADMIN_TOKEN: token });
  const json = async <T>(args: string[], token?: string): Promise<T> => {
    const result = await cli([...args, '--json'], token);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  };
  const send = async (deviceToken: string, rows: number) => {
    const batch = wireBatch(ITEMS, Array.from({ length: rows }, (_, i) => ({ seq: i + 1, op: 'insert' as const, pk: [BigInt(i + 1)], row: [BigInt(i + 1), `n${i + 1}`, '1234', BigInt(i)] })), { epoch: uuidv7() });
    const sent = await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify(batch) });
    return (await sent.json()) as { lineage_id: string; status: string };
  };

  before(async () => {
    server = await startServer({ dataDir: dir.path });
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('the server reviews by default; an operator reads the review and approves with --all-mirror and exceptions', async () => {
    const device = await createDeviceToken(server, 'cli-device');
    const ack = await send(device.token, 3);
    assert.equal(ack.status, 'accepted');
    const operator = await json<{ token: string; role: string }>(['token', 'create', '--role', 'operator', '--name', 'on-call']);
    assert.equal(operator.role, 'operator');

    const list = await cli(['reviews', 'list', '--status', 'queued'], operator.token);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^id\s+status\s+classification\s+source_table/m);
    const { items: reviews } = await json<{ items: { id: string; status: string; source_table: string }[] }>(['reviews', 'list', '--status', 'queued'], operator.token);
    const review = reviews.find((r) => r.source_table === 'items')!;
    assert.ok(review, 'the first schema waits for a review');

    const shown = await cli(['reviews', 'show', review.id], operator.token);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /pin\s+TEXT\s+TEXT\s+0\s+false\s+new\s+pin text\s+text\|jsonb/);
    assert.match(shown.stdout, /against bound schema: \(none: first schema\)\n {2}added: {3}id, name, pin, qty/);
    assert.match(shown.stdout, /staged rows: 3 \(3 schema_review\)/);

    const missing = await cli(['reviews', 'approve', review.id, '--mirror', 'id'], operator.token);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /missing "name", "pin", "qty" \[invalid_request\]/);
    const approved = await cli(['reviews', 'approve', review.id, '--all-mirror', '--ignore', 'pin', '--mirror-as', 'name=label,qty=:numeric', '--idempotency-key', 'approve-items-1'], operator.token);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /approved; mirror edge_mirror_\w+\nreplaying 3 staged rows/);
    const rerun = await cli(['reviews', 'approve', review.id, '--all-mirror', '--ignore', 'pin', '--mirror-as', 'name=label,qty=:numeric', '--idempotency-key', 'approve-items-1'], operator.token);
    assert.equal(rerun.code, 0, `the same key answers again: ${rerun.stderr}`);
    assert.equal(rerun.stdout, approved.stdout);

    await eventually('the replay finished', async () => (await json<{ state: string } | null>(['reviews', 'replay', ack.lineage_id], operator.token))?.state === 'done');
    const page = await json<{ items: Record<string, unknown>[] }>(['mirror-rows', ack.lineage_id], operator.token);
    assert.deepEqual(page.items.map((r) => [r.id, r.name, r.qty, Object.hasOwn(r, 'pin')]), [[1, 'n1', 0, false], [2, 'n2', 1, false], [3, 'n3', 2, false]]);
    // Wide enough for every column whole; narrower terminals cut cells with "…" (cli-output.test.ts).
    const audit = await runSyncline(['admin', 'audit', '--lineage', ack.lineage_id, '--server', server.url], { SYNCLINE_ADMIN_TOKEN: operator.token, COLUMNS: '400' });
    assert.equal(audit.code, 0, audit.stderr);
    for (const action of ['review.open', 'review.claim', 'review.approve', 'replay.start', 'replay.done']) assert.match(audit.stdout, new RegExp(`\\b${action.replace('.', '\\.')}\\b`));
    assert.match(audit.stdout, /on-call \(token [0-9a-f-]{36}\)\s+review\.approve/);
  });

  test('reject keeps the rows staged; purge discards them', async () => {
    const device = await createDeviceToken(server, 'cli-reject');
    const ack = await send(device.token, 2);
    const { items: reviews } = await json<{ items: { id: string }[] }>(['reviews', 'list', '--lineage', ack.lineage_id]);
    const rejected = await cli(['reviews', 'reject', reviews[0]!.id, '--reason', 'not ours']);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.match(rejected.stdout, /rejected; its rows stay staged/);
    const retry = await cli(['reviews', 'retry-rejected', ack.lineage_id]);
    assert.notEqual(retry.code, 0, 'a paused lineage is resumed, not retried');
    assert.match(retry.stderr, /paused \(schema_rejected\); resume it/);
    const staged = await cli(['reviews', 'staged', ack.lineage_id]);
    assert.match(staged.stdout, /schema_review/);
    assert.equal((await json<{ items: unknown[] }>(['reviews', 'staged', ack.lineage_id])).items.length, 2);
    const purged = await cli(['reviews', 'purge', ack.lineage_id]);
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /^2 staged rows purged/);
    assert.equal((await json<{ items: unknown[] }>(['reviews', 'staged', ack.lineage_id])).items.length, 0);
  });

  test('a viewer token cannot decide; projects are listed and coalescing set by an admin; bad usage exits 2', async () => {
    const viewer = await json<{ token: string }>(['token', 'create', '--role', 'viewer', '--name', 'wallboard']);
    const refused = await cli(['reviews', 'claim', uuidv7()], viewer.token);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /needs the operator role.*\[forbidden\]/);
    assert.equal((await cli(['audit'], viewer.token)).code, 0, 'a viewer reads the audit log');
    const set = await cli(['project', 'set-coalescing', 'default', 'project']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /project default: coalescing project/);
    const projects = await cli(['project', 'list'], viewer.token);
    assert.match(projects.stdout, /default\s+default\s+default\s+project/);
    assert.equal((await cli(['project', 'set-coalescing', 'default', 'none'])).code, 0);
    const usage = await cli(['reviews', 'frobnicate']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown admin subcommand "reviews frobnicate"/);
    const help = await runSyncline(['server', '--help']);
    assert.match(help.stdout, /--schema-policy <review\|auto>.*default review/);
  });
});
