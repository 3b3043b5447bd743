import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Routes } from '../../src/protocol/constants.js';
import { createScratchDatabase, realPostgresReachable, type ScratchDatabase } from './postgres.js';
import { createDeviceToken, finished, runSyncline, spawnScript, startServer, type ServerProcess } from './processes.js';
import { assertMirrorMatches, eventually, lineages, type Lineage } from './replication-check.js';
import { tempDir } from './temp.js';

/**
 * Schema governance with real processes: an app writes a SQLite file, `syncline
 * agent --once` ships it, `syncline server` (default policy: review) stages it, and
 * operators decide with `syncline admin reviews`. One suite, defined once per store by
 * test/integration/e2e-governance-{pglite,postgres}.test.ts so the two run in parallel.
 */
const APP = fileURLToPath(new URL('./sqlite-app.ts', import.meta.url));
const TABLES = ['items', 'order_lines', 'kv', 'log_lines', 'ünïcødé "tåble", 1'];
const CHUNK_ROWS = 100;
const BACKLOG = 6_000;

type GovernedLineage = Lineage & { pause_cause: string | null };
type Json = Record<string, unknown>;

async function app(db: string, ...args: (string | number)[]): Promise<void> {
  const result = await finished(spawnScript(APP, [db, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${args.join(' ')} failed: ${result.stderr}`);
}

export async function defineGovernanceEndToEnd(kind: 'pglite' | 'postgres'): Promise<void> {
  const backend: { name: string; scratch?: () => Promise<ScratchDatabase> } = kind === 'pglite' ? { name: 'pglite' } : { name: 'postgres', scratch: createScratchDatabase };
  const skip = kind === 'postgres' && !(await realPostgresReachable()) ? 'PostgreSQL is not reachable' : false;
  describe(`schema governance end to end on ${backend.name}`, { skip }, () => {
    const dir = tempDir('syncline-e2e-governance-');
    let scratch: ScratchDatabase | undefined;
    let server: ServerProcess;
    let alice: string;
    let bob: string;

    const start = (previous?: ServerProcess) =>
      startServer({
        dataDir: join(dir.path, 'cloud'),
        databaseUrl: scratch?.url,
        extraArgs: ['--replay-chunk-rows', String(CHUNK_ROWS)],
        ...(previous ? { adminToken: previous.adminToken, httpPort: Number(new URL(previous.url).port) } : {}),
      });
    const cli = (args: string[], token: string) => runSyncline(['admin', ...args, '--server', server.url], { SYNCLINE_ADMIN_TOKEN: token });
    async function cliJson<T>(args: string[], token: string): Promise<T> {
      const result = await cli([...args, '--json'], token);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return JSON.parse(result.stdout) as T;
    }
    async function get<T>(path: string): Promise<T> {
      const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
      assert.equal(response.status, 200, path);
      return (await response.json()) as T;
    }
    async function post<T>(path: string, token: string, body: unknown): Promise<T> {
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const parsed = (await response.json()) as T;
      assert.equal(response.status, 200, `${path}: ${JSON.stringify(parsed)}`);
      return parsed;
    }
    const agentOnce = async (db: string, token: string) => {
      const result = await runSyncline(['agent', '--db', db, '--server', server.url, '--token', token, '--once']);
      assert.equal(result.code, 0, `agent --once failed: ${result.stderr}`);
    };
    const byTable = async (deviceId: string) => new Map((await lineages(server, deviceId)).map((l) => [l.source_table, l as GovernedLineage]));
    const openReviewOf = async (lineageId: string) => (await get<{ reviews: Json[] }>(`${Routes.schemaReviews}?status=queued,in_review&lineage_id=${lineageId}`)).reviews[0]!;
    const replayOf = async (lineageId: string) => (await get<{ replay: Json | null }>(Routes.lineageReplay.replace(':id', lineageId))).replay;
    const stagedOf = async (lineageId: string) => (await get<{ staged_rows: number }>(Routes.lineage.replace(':id', lineageId))).staged_rows;
    const replaysDone = async (deviceId: string) => {
      for (const lineage of (await byTable(deviceId)).values()) {
        const replay = await replayOf(lineage.id);
        if (lineage.status !== 'active' || (replay && replay.state !== 'done')) return false;
      }
      return true;
    };

    before(async () => {
      scratch = await backend.scratch?.();
      server = await start();
      alice = (await cliJson<{ token: string }>(['token', 'create', '--role', 'operator', '--name', 'alice'], server.adminToken)).token;
      bob = (await cliJson<{ token: string }>(['token', 'create', '--role', 'operator', '--name', 'bob'], server.adminToken)).token;
    });
    after(async () => {
      await server?.stop();
      await scratch?.drop();
      dir.remove();
    });

    test('staged until reviewed; racing claims; approve with mirror, mirror_as and ignore; replay; live rows; a type change stages while other tables flow; reject then purge', async () => {
      const db = join(dir.path, 'device.db');
      const device = await createDeviceToken(server, 'governed');
      await app(db, 'setup');
      await app(db, 'insert', 30, 1);
      await agentOnce(db, device.token);

      let tables = await byTable(device.device_id);
      assert.deepEqual([...tables.keys()].sort(), [...TABLES].sort());
      for (const lineage of tables.values()) {
        assert.deepEqual([lineage.status, lineage.pause_cause, lineage.mirror_table], ['paused', 'schema_review', null], lineage.source_table);
        const staged = await get<{ rows: Json[] }>(`${Routes.stagedRows.replace(':id', lineage.id)}?limit=500`);
        assert.equal(staged.rows.length, 30);
        assert.ok(staged.rows.every((r) => r.reason === 'schema_review'));
      }

      // Two operators race for the items review: exactly one gets it.
      const items = tables.get('items')!;
      const itemsReview = await openReviewOf(items.id);
      const claims = await Promise.all([cli(['reviews', 'claim', String(itemsReview.id)], alice), cli(['reviews', 'claim', String(itemsReview.id)], bob)]);
      assert.deepEqual(claims.map((c) => c.code).sort(), [0, 1], claims.map((c) => c.stderr).join('\n'));
      const loser = claims.find((c) => c.code === 1)!;
      assert.match(loser.stderr, /is claimed by (alice|bob) \(token .*\[conflict\]/);
      const winner = claims[0]!.code === 0 ? alice : bob;

      const approved = await cli(['reviews', 'approve', String(itemsReview.id), '--mirror', 'id,qty', '--mirror-as', 'name=label,price=:jsonb', '--ignore', 'data'], winner);
      assert.equal(approved.code, 0, approved.stderr);
      for (const [table, lineage] of tables) {
        if (table === 'items') continue;
        const approvedAll = await cli(['reviews', 'approve', String((await openReviewOf(lineage.id)).id), '--all-mirror'], alice);
        assert.equal(approvedAll.code, 0, `${table}: ${approvedAll.stderr}`);
      }
      await eventually('every staged row replayed', () => replaysDone(device.device_id), 120_000);
      const itemsDetail = await get<{ bindings: { source_column: string; target_column: string; pg_type: string }[] }>(Routes.lineage.replace(':id', items.id));
      assert.deepEqual(itemsDetail.bindings.map((b) => `${b.source_column}>${b.target_column}:${b.pg_type}`), ['id>id:bigint', 'name>label:text', 'price>price:jsonb', 'qty>qty:bigint']);
      for (const lineage of (await byTable(device.device_id)).values()) await assertMirrorMatches(server, db, lineage, lineage.source_table === 'items' ? { ignored: ['data'] } : {});

      // Live rows flow straight in once the backlog is replayed.
      await app(db, 'update', 10, 1);
      await app(db, 'insert', 20, 31);
      await agentOnce(db, device.token);
      for (const lineage of (await byTable(device.device_id)).values()) {
        assert.equal(lineage.status, 'active');
        assert.equal(await stagedOf(lineage.id), 0, `${lineage.source_table} materialized live`);
        await assertMirrorMatches(server, db, lineage, lineage.source_table === 'items' ? { ignored: ['data'] } : {});
      }

      // A type change on the device is breaking: that table pauses and stages; the others keep flowing.
      await app(db, 'retype-qty');
      await app(db, 'insert', 10, 51);
      await agentOnce(db, device.token);
      tables = await byTable(device.device_id);
      const lines = tables.get('order_lines')!;
      assert.deepEqual([lines.status, lines.pause_cause], ['paused', 'schema_review']);
      const breaking = await cliJson<{ id: string; classification: string; diff: { retyped: Json[] } }>(['reviews', 'show', String((await openReviewOf(lines.id)).id)], alice);
      assert.equal(breaking.classification, 'breaking');
      assert.deepEqual(breaking.diff.retyped, [{ name: 'qty', from: 'INTEGER', to: 'TEXT' }]);
      const stagedLines = await stagedOf(lines.id);
      assert.ok(stagedLines > 10, `the rebuilt table's rows are staged (${stagedLines})`);
      for (const [table, lineage] of tables) {
        if (table === 'order_lines') continue;
        assert.equal(lineage.status, 'active', table);
        await assertMirrorMatches(server, db, lineage, table === 'items' ? { ignored: ['data'] } : {});
      }

      const rejected = await cli(['reviews', 'reject', breaking.id, '--reason', 'qty must stay a number'], bob);
      assert.equal(rejected.code, 0, rejected.stderr);
      assert.equal(await stagedOf(lines.id), stagedLines, 'reject keeps the rows');
      assert.equal((await byTable(device.device_id)).get('order_lines')!.pause_cause, 'schema_rejected');
      const purged = await cliJson<{ purged: number }>(['reviews', 'purge', lines.id], bob);
      assert.equal(purged.purged, stagedLines);
      assert.equal(await stagedOf(lines.id), 0);
      const audit = await get<{ entries: Json[] }>(`${Routes.audit}?lineage_id=${lines.id}`);
      assert.deepEqual(audit.entries.slice(0, 3).map((e) => [e.action, String(e.actor).split(' ')[0]]), [['staged.purge', 'bob'], ['review.reject', 'bob'], ['review.claim', 'bob']]);
    });

    test('a server SIGKILLed while it replays a large backlog resumes after a restart: no row lost, none applied twice', async () => {
      const db = join(dir.path, 'backlog.db');
      const device = await createDeviceToken(server, 'backlog');
      await app(db, 'setup');
      await app(db, 'bulk', BACKLOG, 1);
      await agentOnce(db, device.token);
      const items = (await byTable(device.device_id)).get('items')!;
      assert.equal(await stagedOf(items.id), BACKLOG);

      // Approved over HTTP from this process, so the polling below starts the moment the replay does.
      const reviewId = String((await openReviewOf(items.id)).id);
      const claimed = await post<{ action_version: number }>(Routes.schemaReviewClaim.replace(':id', reviewId), alice, {});
      const columns = ['id', 'name', 'price', 'qty', 'data'].map((name) => ({ name, action: 'mirror' }));
      const approved = await post<{ replay: { rows_total: number } }>(Routes.schemaReviewApprove.replace(':id', reviewId), alice, { action_version: claimed.action_version, columns });
      assert.equal(approved.replay.rows_total, BACKLOG);
      // Bounded polling for a state, not a duration: the replay has committed some chunks, not all.
      let seen: Json | null = null;
      for (let i = 0; i < 6000 && !(seen && seen.state === 'pending' && Number(seen.rows_replayed) > 0); i++) {
        seen = await replayOf(items.id);
        if (seen?.state === 'done') break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(seen && seen.state === 'pending' && Number(seen.rows_replayed) > 0 && Number(seen.rows_replayed) < BACKLOG, `caught mid-replay: ${JSON.stringify(seen)}`);
      const killed = await server.stop('SIGKILL');
      assert.equal(killed.signal, 'SIGKILL');

      server = await start(server);
      await eventually('the replay resumed and finished', async () => (await replayOf(items.id))?.state === 'done', 180_000);
      const replay = (await replayOf(items.id))!;
      assert.deepEqual([replay.rows_total, replay.rows_replayed, replay.rows_kept], [BACKLOG, BACKLOG, 0], 'every row replayed exactly once');
      const lineage = (await byTable(device.device_id)).get('items')!;
      assert.deepEqual([lineage.status, lineage.rows_received, lineage.rows_applied, await stagedOf(items.id)], ['active', BACKLOG, BACKLOG, 0]);
      assert.equal(await assertMirrorMatches(server, db, lineage), BACKLOG);
      const audit = await get<{ entries: Json[] }>(`${Routes.audit}?lineage_id=${items.id}&action=replay.`);
      assert.deepEqual(audit.entries.map((e) => e.action), ['replay.done', 'replay.start'], 'one replay, resumed, not restarted');
    });
  });
}
