import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { wireBatch, type RowSpec, type TableSpec } from '../support/cloud-batches.js';
import { describeEachStore } from '../support/stores.js';

const ADMIN_TOKEN = 'governance-admin-token-0123456789';
const ITEMS: TableSpec = { table: 'items', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }, { name: 'secret', type: 'TEXT' }] };
const ALL = [{ name: 'id', action: 'mirror' }, { name: 'name', action: 'mirror_as', target: 'label' }, { name: 'secret', action: 'ignore' }];
const item = (seq: number, id: number, name: string): RowSpec => ({ seq, op: 'insert', pk: [BigInt(id)], row: [BigInt(id), name, `s${id}`] });
const at = (route: string, id: string) => route.replace(':id', encodeURIComponent(id));

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describeEachStore('governance over HTTP', (ctx) => {
  let server: CloudServer;

  async function call(method: 'GET' | 'POST', route: string, token: string | undefined, json?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const response = await fetch(`${server.url}${route}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }
  const admin = (method: 'GET' | 'POST', route: string, json?: unknown, headers?: Record<string, string>) => call(method, route, ADMIN_TOKEN, json, headers);
  const token = async (name: string, role: string) => String((await admin('POST', Routes.adminTokens, { name, role })).body.token);

  async function newDevice(): Promise<{ device_id: string; token: string }> {
    const created = await admin('POST', Routes.devices, { name: 'governance-http' });
    assert.equal(created.status, 201);
    return created.body as { device_id: string; token: string };
  }

  /** Waits for the background worker: polls the replay's state (a condition, not a duration). */
  async function replayFinished(lineageId: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 600; i++) {
      const { body } = await admin('GET', at(Routes.lineageReplay, lineageId));
      const replay = body.replay as Record<string, unknown> | null;
      if (replay && replay.state !== 'pending') return replay;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the replay did not finish');
  }

  async function stagedLineage(rows: number): Promise<{ device: { device_id: string; token: string }; lineageId: string; reviewId: string }> {
    const device = await newDevice();
    const sent = await call('POST', Routes.rowBatch, device.token, wireBatch(ITEMS, Array.from({ length: rows }, (_, i) => item(i + 1, i + 1, `n${i + 1}`)), { epoch: uuidv7() }));
    assert.deepEqual([sent.status, sent.body.status], [200, 'accepted']);
    const lineageId = String(sent.body.lineage_id);
    const listed = await admin('GET', `${Routes.schemaReviews}?status=queued&lineage_id=${lineageId}`);
    return { device, lineageId, reviewId: String((listed.body.reviews as Record<string, unknown>[])[0]!.id) };
  }

  before(async () => {
    server = await CloudServer.start({ store: ctx.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'review', logger: pino({ level: 'silent' }), replay: { pollMs: 60_000 } });
  });
  after(async () => {
    await server.stop();
  });

  test('roles: viewers read (the audit log too), operators decide, admins manage tokens and projects', async () => {
    const viewer = await admin('POST', Routes.adminTokens, { name: 'dashboards', role: 'viewer' });
    assert.equal(viewer.status, 201);
    assert.match(String(viewer.body.token), /^sla_/);
    const v = String(viewer.body.token);
    const o = await token('on-call', 'operator');
    const someReview = at(Routes.schemaReviewClaim, uuidv7());
    const cases: [string, 'GET' | 'POST', string, unknown, number][] = [
      ['viewer lists reviews', 'GET', Routes.schemaReviews, undefined, 200],
      ['viewer reads the audit log', 'GET', Routes.audit, undefined, 200],
      ['viewer lists projects', 'GET', Routes.projects, undefined, 200],
      ['viewer cannot claim', 'POST', someReview, {}, 403],
      ['viewer cannot purge', 'POST', at(Routes.purgeStaged, uuidv7()), {}, 403],
      ['viewer cannot create devices', 'POST', Routes.devices, { name: 'x' }, 403],
      ['operator claims (unknown review)', 'POST', someReview, {}, 404],
      ['operator cannot create devices', 'POST', Routes.devices, { name: 'x' }, 403],
      ['operator cannot create tokens', 'POST', Routes.adminTokens, { name: 'x', role: 'admin' }, 403],
      ['operator cannot list tokens', 'GET', Routes.adminTokens, undefined, 403],
      ['operator cannot change project settings', 'POST', at(Routes.projectSettings, 'default'), { coalescing: 'project' }, 403],
    ];
    for (const [title, method, route, json, status] of cases) {
      const reply = await call(method, route, title.startsWith('viewer') ? v : o, json);
      assert.equal(reply.status, status, `${title}: ${JSON.stringify(reply.body)}`);
      if (status === 403) assert.equal(reply.body.error, 'forbidden');
    }
    const tokens = await admin('GET', Routes.adminTokens);
    const listed = (tokens.body.tokens as Record<string, unknown>[]).find((t) => t.id === viewer.body.id)!;
    assert.deepEqual([listed.name, listed.role, listed.created_by, listed.revoked_at], ['dashboards', 'viewer', 'bootstrap admin token', null]);
    assert.ok(!JSON.stringify(tokens.body).includes(v), 'tokens are never shown again');
    assert.equal((await admin('POST', at(Routes.adminTokenRevoke, String(viewer.body.id)))).status, 200);
    assert.equal((await call('GET', Routes.schemaReviews, v)).status, 401);
    assert.equal((await admin('POST', Routes.adminTokens, { name: 'x', role: 'root' })).body.error, 'invalid_request');
    const audit = (await admin('GET', `${Routes.audit}?action=token.`)).body.entries as Record<string, unknown>[];
    assert.ok(audit.some((e) => e.action === 'token.revoke' && (e.detail as Record<string, unknown>).token_id === viewer.body.id && e.actor === 'bootstrap admin token'));
  });

  test('a device batch waits for review; an operator approves column by column over HTTP and the worker replays it', async () => {
    const operator = await token('alice', 'operator');
    const { device, lineageId, reviewId } = await stagedLineage(2);
    const detail = await call('GET', at(Routes.schemaReview, reviewId), operator);
    assert.deepEqual([(detail.body.staged as Record<string, unknown>).rows, detail.body.classification], [2, 'ambiguous']);
    assert.deepEqual(((detail.body.schema as Record<string, unknown>).columns as Record<string, unknown>[]).map((c) => c.name), ['id', 'name', 'secret']);
    assert.deepEqual((detail.body.diff as Record<string, unknown>).added, ['id', 'name', 'secret']);
    assert.equal(((detail.body.staged as Record<string, unknown>).samples as unknown[]).length, 2);

    const claim = await call('POST', at(Routes.schemaReviewClaim, reviewId), operator, {});
    assert.deepEqual([claim.status, claim.body.status], [200, 'in_review']);
    assert.match(String(claim.body.claimed_by), /^alice \(token [0-9a-f-]{36}\)$/);
    const version = claim.body.action_version;
    const bad = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: [{ name: 'secret', action: 'drop' }] });
    assert.deepEqual([bad.status, bad.body.error], [400, 'invalid_request']);
    const partial = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: ALL.slice(0, 2) });
    assert.deepEqual([partial.status, partial.body.error, (partial.body.context as Record<string, unknown>).missing], [400, 'invalid_request', ['secret']]);
    const stale = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: Number(version) - 1, columns: ALL });
    assert.deepEqual([stale.status, stale.body.error], [409, 'stale_version']);

    const key = { 'idempotency-key': `approve-${reviewId}` };
    const approved = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: ALL }, key);
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.deepEqual(await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: ALL }, key), approved, 'a retried approve gets the same answer');
    const reused = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: [...ALL.slice(0, 2), { name: 'secret', action: 'mirror' }] }, key);
    assert.deepEqual([reused.status, reused.body.error], [422, 'idempotency_key_reused']);
    const again = await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: version, columns: ALL });
    assert.deepEqual([again.status, again.body.error], [409, 'conflict']);

    assert.equal((await replayFinished(lineageId)).state, 'done');
    const lineage = await admin('GET', at(Routes.lineage, lineageId));
    assert.deepEqual([lineage.body.status, lineage.body.pause_cause, lineage.body.rows_applied, lineage.body.staged_rows], ['active', null, 2, 0]);
    assert.deepEqual((lineage.body.replay as Record<string, unknown>).rows_replayed, 2);
    const rows = (await admin('GET', at(Routes.mirrorRows, lineageId))).body.rows as Record<string, unknown>[];
    assert.deepEqual(rows.map((r) => [r.id, r.name, Object.hasOwn(r, 'secret')]), [[1, 'n1', false], [2, 'n2', false]]);
    const live = await call('POST', Routes.rowBatch, device.token, wireBatch(ITEMS, [item(3, 3, 'three')], { epoch: String(rows[0]!._syncline_epoch) }));
    assert.equal(live.body.rows_applied, 1);
    const audit = (await call('GET', `${Routes.audit}?lineage_id=${lineageId}`, operator)).body.entries as Record<string, unknown>[];
    assert.deepEqual(audit.map((e) => e.action).reverse(), ['review.open', 'review.claim', 'review.approve', 'replay.start', 'replay.done']);
    assert.ok(audit.filter((e) => e.action !== 'review.open' && e.action !== 'replay.done').every((e) => /^alice \(token /.test(String(e.actor))), 'the operator is named');
  });

  test('staged rows page in order; reject keeps them; purge-staged discards them, audited; resume refuses a lineage waiting for review', async () => {
    const operator = await token('bob', 'operator');
    const { lineageId, reviewId } = await stagedLineage(7);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = new URLSearchParams({ limit: '3', ...(cursor ? { after: cursor } : {}) }).toString();
      const page = await admin('GET', `${at(Routes.stagedRows, lineageId)}?${query}`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      for (const row of page.body.rows as Record<string, unknown>[]) {
        seen.push(Number(row.seq));
        assert.equal(row.reason, 'schema_review');
      }
      cursor = page.body.next as string | null;
    } while (cursor !== null);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal((await admin('GET', `${at(Routes.stagedRows, lineageId)}?after=x`)).body.error, 'invalid_request');

    const resume = await call('POST', at(Routes.lineageResume, lineageId), operator);
    assert.deepEqual([resume.status, resume.body.error], [409, 'conflict']);
    const early = await call('POST', at(Routes.purgeStaged, lineageId), operator, {});
    assert.deepEqual([early.status, early.body.error], [409, 'conflict'], 'rows waiting for a review cannot be purged');
    const claim = await call('POST', at(Routes.schemaReviewClaim, reviewId), operator, {});
    const stale = await call('POST', at(Routes.schemaReviewReject, reviewId), operator, { action_version: Number(claim.body.action_version) - 1, reason: 'test data' });
    assert.deepEqual([stale.status, stale.body.error], [409, 'stale_version']);
    const rejected = await call('POST', at(Routes.schemaReviewReject, reviewId), operator, { action_version: claim.body.action_version, reason: 'test data' });
    assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
    let lineage = await admin('GET', at(Routes.lineage, lineageId));
    assert.deepEqual([lineage.body.status, lineage.body.pause_cause, lineage.body.staged_rows], ['paused', 'schema_rejected', 7]);
    assert.match(String(lineage.body.status_reason), /rejected by bob \(token /);

    const purged = await call('POST', at(Routes.purgeStaged, lineageId), operator, {}, { 'idempotency-key': `purge-${lineageId}` });
    assert.deepEqual([purged.status, purged.body.purged], [200, 7]);
    assert.deepEqual(await call('POST', at(Routes.purgeStaged, lineageId), operator, {}, { 'idempotency-key': `purge-${lineageId}` }), purged);
    lineage = await admin('GET', at(Routes.lineage, lineageId));
    assert.equal(lineage.body.staged_rows, 0);
    const entry = ((await admin('GET', `${Routes.audit}?lineage_id=${lineageId}&action=staged.purge`)).body.entries as Record<string, unknown>[])[0]!;
    assert.match(String(entry.actor), /^bob \(token /);
    assert.deepEqual((entry.detail as Record<string, unknown>).purged, 7);
  });

  test('retry-rejected tries refused rows again once the cause is gone; bad input and a paused lineage get a clear 4xx', async () => {
    const operator = await token('carol', 'operator');
    const { device, lineageId, reviewId } = await stagedLineage(1);
    const claim = await call('POST', at(Routes.schemaReviewClaim, reviewId), operator, {});
    assert.equal((await call('POST', at(Routes.schemaReviewApprove, reviewId), operator, { action_version: claim.body.action_version, columns: ALL })).status, 200);
    await replayFinished(lineageId);
    const mirror = String((await admin('GET', at(Routes.lineage, lineageId))).body.mirror_table);
    // A DBA adds a rule some device values break (SQLSTATE 23514): those rows are set aside alone.
    await ctx.store.exec(`ALTER TABLE "${mirror}" ADD CONSTRAINT no_bad CHECK (label <> 'bad') NOT VALID`);
    const sent = await call('POST', Routes.rowBatch, device.token, wireBatch(ITEMS, [item(2, 2, 'bad'), item(3, 3, 'fine')], { epoch: String((await admin('GET', at(Routes.lineage, lineageId))).body.journal_epoch) }));
    assert.deepEqual([sent.status, sent.body.status], [200, 'accepted'], JSON.stringify(sent.body));
    const staged = await admin('GET', at(Routes.stagedRows, lineageId));
    assert.deepEqual((staged.body.rows as Record<string, unknown>[]).map((r) => [r.seq, r.reason]), [[2, 'row_rejected']]);

    const refused = await call('POST', at(Routes.lineageRetryRejected, lineageId), operator, { rows: 'all' });
    assert.deepEqual([refused.status, refused.body.error, (refused.body.context as Record<string, unknown>).field], [400, 'invalid_request', '(body)']);
    assert.deepEqual((await call('POST', at(Routes.lineageRetryRejected, lineageId), operator, [1])).status, 400);
    assert.deepEqual((await call('POST', at(Routes.lineageRetryRejected, 'not-a-lineage'), operator, {})).body.error, 'not_found');
    assert.deepEqual((await call('POST', at(Routes.lineageRetryRejected, uuidv7()), operator, {})).status, 404);
    assert.equal((await call('POST', at(Routes.lineageRetryRejected, lineageId), await token('vic', 'viewer'), {})).status, 403, 'an operator action');

    await ctx.store.exec(`ALTER TABLE "${mirror}" DROP CONSTRAINT no_bad`);
    const retried = await call('POST', at(Routes.lineageRetryRejected, lineageId), operator, {});
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal(retried.body.rows_rejected, 1);
    const done = await replayFinished(lineageId);
    assert.deepEqual([done.state, done.rows_replayed, done.rows_kept], ['done', 1, 0]);
    const rows = (await admin('GET', at(Routes.mirrorRows, lineageId))).body.rows as Record<string, unknown>[];
    assert.deepEqual(rows.map((r) => r.name), ['n1', 'bad', 'fine'], JSON.stringify(rows));
    assert.deepEqual((await call('POST', at(Routes.lineageRetryRejected, lineageId), operator, {})).body.rows_rejected, 0, 'nothing left');

    // Paused: resume is the way (its replay takes refused rows too).
    await ctx.store.query(`UPDATE edge_table_lineages SET status = 'paused', pause_cause = 'materialization_failed', status_reason = 'test' WHERE id = $1`, [lineageId]);
    const paused = await call('POST', at(Routes.lineageRetryRejected, lineageId), operator, {});
    assert.deepEqual([paused.status, paused.body.error], [409, 'conflict']);
    assert.match(String(paused.body.message), /paused \(materialization_failed\); resume it/);
  });

  test('project coalescing is set by an admin and audited', async () => {
    const set = await admin('POST', at(Routes.projectSettings, 'default'), { coalescing: 'project' });
    assert.deepEqual([set.status, set.body.coalescing], [200, 'project']);
    const listed = (await admin('GET', Routes.projects)).body.projects as Record<string, unknown>[];
    assert.equal(listed.find((p) => p.id === 'default')?.coalescing, 'project');
    assert.equal((await admin('POST', at(Routes.projectSettings, 'default'), { coalescing: 'sometimes' })).body.error, 'invalid_request');
    assert.equal((await admin('POST', at(Routes.projectSettings, 'nope'), { coalescing: 'none' })).status, 404);
    assert.equal((await admin('POST', at(Routes.projectSettings, 'default'), { coalescing: 'none' })).status, 200);
    const entries = (await admin('GET', `${Routes.audit}?action=project.settings`)).body.entries as Record<string, unknown>[];
    assert.deepEqual(entries.slice(0, 2).map((e) => e.detail), [{ coalescing: { from: 'project', to: 'none' } }, { coalescing: { from: 'none', to: 'project' } }]);
  });
});
