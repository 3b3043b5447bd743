import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { uuidv7 } from 'uuidv7';
import { CloudServer } from '../../src/cloud/server.js';
import { Routes } from '../../src/protocol/constants.js';
import { TELEMETRY_BATCH_FORMAT_VERSION } from '../../src/protocol/constants.js';
import { schemaFingerprint } from '../../src/protocol/schema.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { columns } from '../support/batches.js';
import { postgresReachable, openTestStore, type TestStore } from '../support/stores.js';
import { tempDir } from '../support/temp.js';
import { sharedTestConfig, userToken } from '../support/shared-fixtures.js';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN_TOKEN = 'console-admin-token-0123456789';
const RESULTS = join(process.cwd(), 'test-results');
const BIG = 4611686018427387905n; // 2^62 + 1: a double would round it
const SENSORS: TableSpec = {
  table: 'sensors',
  columns: [
    { name: 'id', type: 'INTEGER', pk: 1 },
    { name: 'big', type: 'INTEGER' },
    { name: 'payload', type: 'BLOB' },
    { name: 'note', type: 'TEXT' },
    { name: 'secret', type: 'TEXT' },
  ],
};

describe('web console in Chromium', { skip: existsSync(CHROMIUM) ? false : 'no /usr/bin/chromium' }, () => {
  let handle: TestStore;
  let server: CloudServer;
  let context: BrowserContext;
  let deviceToken: string;
  let profile: { path: string; remove(): void } | undefined;

  const api = async (method: string, route: string, body?: unknown, token = ADMIN_TOKEN) => {
    const response = await fetch(`${server.url}${route}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const json = (await response.json()) as Record<string, any>;
    assert.ok(response.ok, `${method} ${route}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const ship = async (spec: TableSpec, rows: { seq: number; op: 'insert'; pk: (bigint | string)[]; row: (bigint | string | Uint8Array | null)[] }[]) => {
    const response = await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify(wireBatch(spec, rows, { epoch: uuidv7() })) });
    assert.equal(response.status, 200, await response.text());
  };
  async function signIn(token: string, width: number): Promise<Page> {
    const page = await context.newPage();
    await page.setViewportSize({ width, height: 900 });
    await page.goto(`${server.url}${Routes.console}`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Sections' }).waitFor();
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: join(RESULTS, `console-${name}.png`), fullPage: true });

  before(async () => {
    const built = spawnSync(process.execPath, ['scripts/build-console.js'], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    mkdirSync(RESULTS, { recursive: true });
    handle = await openTestStore(postgresReachable ? 'postgres' : 'pglite');
    server = await CloudServer.start({ store: handle.store, httpPort: 0, adminToken: ADMIN_TOKEN, schemaPolicy: 'review', logger: pino({ level: 'silent' }), replay: { pollMs: 50 }, activityFlushMs: 100, shared: sharedTestConfig() });
    deviceToken = (await api('POST', Routes.devices, { name: 'kiosk-7' })).token as string;
    profile = tempDir('console-chromium-');
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await context?.close();
    profile?.remove();
    await server?.stop();
    await handle?.close();
  });

  test('sign in, review a new table, map one column as another, ignore one, approve after a stale conflict; a viewer sees no buttons', async () => {
    const page = await signIn(ADMIN_TOKEN, 1280);
    await shot(page, 'signed-in-1280');
    const blob = Uint8Array.from([0, 1, 2, 250, 255]);
    await ship(SENSORS, [
      { seq: 1, op: 'insert', pk: [1n], row: [1n, BIG, blob, 'first', 'hush'] },
      { seq: 2, op: 'insert', pk: [2n], row: [2n, -7n, null, null, 'hush'] },
    ]);

    // The review appears in the queue (the list loads on navigation).
    await page.goto(`${server.url}${Routes.console}#/reviews`);
    await page.reload();
    await page.getByRole('link', { name: 'sensors' }).click();
    await page.getByRole('heading', { name: 'Review of sensors' }).waitFor();
    const samples = page.getByRole('table', { name: 'Sample staged rows' });
    await samples.getByText(BIG.toString()).waitFor();
    await samples.getByText("x'000102faff'").waitFor();
    assert.ok((await samples.getByText('NULL').count()) >= 2, 'NULLs are shown as NULL');
    await page.getByRole('button', { name: 'Claim this review' }).click();

    const decide = async () => {
      await page.getByLabel('big', { exact: true }).selectOption('mirror_as');
      await page.getByLabel('Mirror column name for big').fill('big_exact');
      await page.getByLabel('Mirror type for big').selectOption('numeric');
      await page.getByLabel('secret', { exact: true }).selectOption('ignore');
    };
    await decide();
    await shot(page, 'review-1280');

    // Someone else's change bumps the action version behind the page's back: release and claim again.
    const review = (await api('GET', `${Routes.schemaReviews}?status=in_review`)).reviews.find((r: any) => r.source_table === 'sensors');
    await api('POST', Routes.schemaReviewRelease.replace(':id', review.id), { action_version: review.action_version });
    await api('POST', Routes.schemaReviewClaim.replace(':id', review.id), {});
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('status').filter({ hasText: 'Conflict' }).waitFor();
    await page.getByText(`Column actions (version ${review.action_version + 2})`).waitFor();

    await decide();
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('status').filter({ hasText: 'Approved: mirrored into' }).waitFor();

    // Replay of the two staged rows finishes; the mirror rows show the exact values, without the ignored column.
    const lineageId = review.lineage_id as string;
    for (let i = 0; i < 200 && (await api('GET', Routes.lineageReplay.replace(':id', lineageId))).replay?.state !== 'done'; i++) await new Promise((r) => setTimeout(r, 50));
    await page.goto(`${server.url}${Routes.console}#/lineages/${lineageId}`);
    const mirror = page.getByRole('table', { name: /Rows of/ });
    await mirror.getByText(BIG.toString()).waitFor();
    await mirror.getByText("x'000102faff'").waitFor();
    await mirror.getByText('-7', { exact: true }).waitFor();
    assert.equal(await mirror.getByRole('columnheader', { name: 'secret' }).count(), 0, 'the ignored column is not mirrored');
    assert.equal(await mirror.getByText('hush').count(), 0);
    await shot(page, 'lineage-1280');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'lineage-390');

    // Telemetry: a device's points, and the last hour of one as a chart.
    const climate = columns([['ts', 'INTEGER'], ['temp', 'REAL']]);
    const now = Date.now();
    const points = [30, 20, 10].map((minutes, i) => ({ seq: i + 1, row: [now - minutes * 60_000, 20.5 + i] }));
    const telemetry = { format_version: TELEMETRY_BATCH_FORMAT_VERSION, batch_id: uuidv7(), journal_epoch: uuidv7(), source_table: 'climate', time_column: 'ts', schema: { hash: schemaFingerprint(climate), columns: climate }, first_seq: 1, last_seq: 3, rows: points };
    const sent = await fetch(`${server.url}${Routes.telemetryBatch}`, { method: 'POST', headers: { authorization: `Bearer ${deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify(telemetry) });
    assert.equal(sent.status, 200, await sent.text());
    const pending = (await api('GET', `${Routes.telemetryMappings}?status=pending`)).mappings[0];
    await api('POST', Routes.telemetryMappingApprove.replace(':id', pending.id), { columns: [{ name: 'temp', action: 'point' }] });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}${Routes.console}#/telemetry`);
    await page.getByLabel('Device').selectOption({ label: 'kiosk-7' });
    await page.getByRole('button', { name: 'Last hour' }).first().click();
    await page.getByRole('img', { name: /from 20.5 to 22.5 over the last hour/ }).waitFor();
    assert.equal(await page.locator('svg.chart circle').count(), 3, 'one dot per minute with values');
    await shot(page, 'telemetry-1280');

    // A viewer: sees the same data, and no action button anywhere.
    await ship({ ...SENSORS, table: 'doors' }, [{ seq: 1, op: 'insert', pk: [1n], row: [1n, 1n, null, 'open', 'x'] }]);
    const viewerToken = (await api('POST', Routes.adminTokens, { name: 'console-viewer', role: 'viewer' })).token as string;
    const viewer = await signIn(viewerToken, 390);
    await viewer.goto(`${server.url}${Routes.console}#/reviews`);
    await viewer.getByRole('link', { name: 'doors' }).click();
    await viewer.getByRole('heading', { name: 'Review of doors' }).waitFor();
    await shot(viewer, 'review-viewer-390');
    const actions = /Claim|Take over|Approve|Reject|Pause|Resume|Reset|Purge|Revoke/;
    assert.equal(await viewer.getByRole('button', { name: actions }).count(), 0);
    await viewer.goto(`${server.url}${Routes.console}#/lineages/${lineageId}`);
    await viewer.getByRole('table', { name: /Rows of/ }).getByText(BIG.toString()).waitFor();
    assert.equal(await viewer.getByRole('button', { name: actions }).count(), 0);
    await viewer.goto(`${server.url}${Routes.console}#/fleet`);
    await viewer.getByText('kiosk-7').waitFor();
    assert.equal(await viewer.getByRole('button', { name: actions }).count(), 0);
    await viewer.setViewportSize({ width: 1280, height: 900 });
    await shot(viewer, 'fleet-viewer-1280');
    // ... and the API refuses a viewer's change anyway.
    const refused = await fetch(`${server.url}${Routes.deviceRevoke.replace(':id', uuidv7())}`, { method: 'POST', headers: { authorization: `Bearer ${viewerToken}` } });
    assert.equal(refused.status, 403);
  });

  test('an operator pauses a lineage and a whole device from the console; the fleet shows last seen and transport', async () => {
    const page = await signIn(ADMIN_TOKEN, 1280);
    const lineages = (await api('GET', Routes.lineages)).lineages as { id: string; source_table: string; device_state: string }[];
    const sensors = lineages.find((l) => l.source_table === 'sensors')!;

    // One lineage, from its page: the device is told to stop sending it.
    await page.goto(`${server.url}${Routes.console}#/lineages/${sensors.id}`);
    await page.getByRole('button', { name: 'Pause device sending' }).click();
    await page.getByRole('status').filter({ hasText: 'Pause: done.' }).waitFor();
    await page.getByText('paused (operator_pause)').waitFor();
    // The page reloads the lineage (its buttons) and its flow (the text above) separately: the text can come first.
    await page.getByRole('button', { name: 'Pause device sending' }).waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('button', { name: 'Pause device sending' }).count(), 0, 'no pause button while paused');
    const flow = await api('GET', Routes.lineageFlow.replace(':id', sensors.id));
    assert.deepEqual([flow.flow.device_state, flow.flow.pause_reason], ['paused', 'operator_pause']);
    // Another lineage's page (a hash change, no reload) starts without the notice of the action taken on this one.
    const other = lineages.find((l) => l.source_table !== sensors.source_table)!;
    await page.goto(`${server.url}${Routes.console}#/lineages/${other.id}`);
    await page.getByRole('heading', { name: new RegExp(`^${other.source_table}`) }).waitFor();
    assert.equal(await page.getByRole('status').filter({ hasText: 'Pause: done.' }).count(), 0, "the other lineage's page shows no notice of this one's pause");

    // The fleet: when each device was last heard from and how, and what is stopped.
    await page.goto(`${server.url}${Routes.console}#/fleet`);
    const row = page.locator('tr', { hasText: 'kiosk-7' });
    await row.getByRole('cell', { name: 'HTTP', exact: true }).waitFor();
    await row.getByText('1 stopped on device').waitFor();
    const device = (await api('GET', Routes.devices)).devices.find((d: { name: string }) => d.name === 'kiosk-7');
    assert.equal(device.last_transport, 'http');
    assert.ok(Date.now() - Date.parse(device.last_seen_at) < 120_000, `last seen ${device.last_seen_at}`);
    await shot(page, 'fleet-1280');

    // The whole device: every lineage stops, then resumes.
    await row.getByRole('button', { name: 'Pause kiosk-7' }).click();
    await page.getByRole('status').filter({ hasText: 'Pause kiosk-7: done.' }).waitFor();
    const count = (await api('GET', `${Routes.lineages}?device_id=${device.device_id}`)).lineages.length as number;
    await row.getByText(`${count} stopped on device`).waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'fleet-paused-390');
    await page.setViewportSize({ width: 1280, height: 900 });
    await row.getByRole('button', { name: 'Resume kiosk-7' }).click();
    await page.getByRole('status').filter({ hasText: 'Resume kiosk-7: done.' }).waitFor();
    await row.getByRole('button', { name: 'Pause kiosk-7' }).waitFor();
    assert.equal(await row.getByText(/stopped on device/).count(), 0);
    const after = (await api('GET', `${Routes.lineages}?device_id=${device.device_id}`)).lineages as { device_state: string }[];
    assert.ok(after.every((l) => l.device_state === 'sending'));
  });

  test('an approval deferring a column links to the follow-up review, which marks the column and asks for it alone', async () => {
    const valves: TableSpec = { table: 'valves', columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'state', type: 'TEXT' }, { name: 'torque', type: 'INTEGER' }, { name: 'secret', type: 'TEXT' }] };
    await ship(valves, [{ seq: 1, op: 'insert', pk: [1n], row: [1n, 'open', 7n, 'x'] }]);
    const first = (await api('GET', `${Routes.schemaReviews}?status=queued`)).reviews.find((r: any) => r.source_table === 'valves');

    // The first approval, from the console, defers torque: the notice says what waits and links to where it is decided.
    const page = await signIn(ADMIN_TOKEN, 1280);
    await page.goto(`${server.url}${Routes.console}#/reviews/${first.id}`);
    await page.getByRole('button', { name: 'Claim this review' }).click();
    await page.getByLabel('torque', { exact: true }).selectOption('defer');
    await page.getByLabel('secret', { exact: true }).selectOption('ignore');
    await page.getByRole('button', { name: 'Approve' }).click();
    const notice = page.getByRole('status').filter({ hasText: 'Approved: mirrored into' });
    await notice.getByText('Deferred torque: the lineage stays paused (new rows are staged, none is lost) until the follow-up review decides only these columns.').waitFor();
    const followUp = (await api('GET', `${Routes.schemaReviews}?status=queued`)).reviews.find((r: any) => r.source_table === 'valves' && r.id !== first.id)?.id as string;
    assert.ok(followUp, 'deferring a column opens a follow-up review');
    const link = notice.getByRole('link', { name: 'the follow-up review' });
    assert.equal(await link.getAttribute('href'), `#/reviews/${followUp}`);
    await shot(page, 'review-deferred-1280');
    await link.click();
    await page.waitForURL(`**#/reviews/${followUp}`);
    await page.getByRole('heading', { name: 'Review of valves' }).waitFor();
    await page.getByRole('button', { name: 'Claim this review' }).waitFor();
    assert.equal(await page.getByRole('status').count(), 0, 'the first review\'s notice stays with it');
    // Marked for anyone reading the review, viewers included.
    await page.getByText('A follow-up of deferred columns: only these need a decision: torque.').waitFor();
    const compare = page.getByRole('table', { name: 'Incoming schema beside the previous one' });
    await compare.getByRole('rowheader', { name: 'torque (to decide)' }).waitFor();
    assert.equal(await compare.getByText('(to decide)').count(), 1, 'only the deferred column is marked');

    await page.getByRole('button', { name: 'Claim this review' }).click();
    await page.getByLabel('torque', { exact: true }).selectOption('mirror');
    for (const decided of ['id', 'state', 'secret']) assert.equal(await page.getByLabel(decided, { exact: true }).count(), 0, `no action asked for ${decided}`);
    await page.getByText('Decided before, kept as they are: id, state, secret').waitFor();
    await shot(page, 'review-follow-up-1280');
    const sent = page.waitForRequest((request) => request.method() === 'POST' && request.url().endsWith('/approve'));
    await page.getByRole('button', { name: 'Approve' }).click();
    assert.deepEqual(((await sent).postDataJSON() as { columns: unknown }).columns, [{ name: 'torque', action: 'mirror' }], 'the approval names the deferred column alone');
    await page.getByRole('status').filter({ hasText: 'Approved: mirrored into' }).waitFor();
    await page.locator('[data-status="approved"]').waitFor();
  });

  test('two-way: each device shows the bundle it pulled up to and how far behind the head it is', async () => {
    const dir = tempDir('console-twoway-');
    const token = await userToken('console-user');
    const phone = await SharedSync.open({ path: join(dir.path, 'phone.db'), serverUrl: server.url, token, source: 'phone' });
    const tablet = await SharedSync.open({ path: join(dir.path, 'tablet.db'), serverUrl: server.url, token, source: 'tablet' });
    try {
      phone.db.exec(`INSERT INTO folders (id, name) VALUES ('f1', 'one')`);
      await phone.sync();
      await tablet.sync();
      phone.db.exec(`INSERT INTO folders (id, name) VALUES ('f2', 'two')`);
      await phone.sync();
    } finally {
      await phone.close();
      await tablet.close();
      dir.remove();
    }
    const page = await signIn(ADMIN_TOKEN, 1280);
    await page.goto(`${server.url}${Routes.console}#/twoway`);
    const marks = page.getByRole('table', { name: 'Pull watermarks' });
    // Written within the flush interval; the page loads on navigation.
    for (let i = 0; i < 50 && (await marks.getByRole('row').count()) < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await page.reload();
    }
    const overview = await api('GET', Routes.twowayOverview);
    const tablet2 = overview.watermarks.find((w: { source: string }) => w.source === 'tablet');
    assert.equal(tablet2.behind, '1', JSON.stringify(overview.watermarks));
    await marks.locator('tr', { hasText: 'tablet' }).getByText('1 behind').waitFor();
    await page.getByText(/All servers on this database: 2 pushes committed/).waitFor();
    await shot(page, 'twoway-1280');
  });
});
