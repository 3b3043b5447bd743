import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { SharedSync } from '../../src/device/twoway/shared-sync.js';
import { twowayOverviewSchema, type TwowayOverviewAnswer } from '../../src/protocol/admin-answers.js';
import { Routes } from '../../src/protocol/constants.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';
import { startServer, type ServerProcess } from '../support/processes.js';
import { eventually } from '../support/replication-check.js';
import { JWT_SECRET, userToken } from '../support/shared-fixtures.js';
import { postgresReachable } from '../support/stores.js';
import { tempDir } from '../support/temp.js';

/**
 * Two real `syncline server` processes on one PostgreSQL: a device pushes through
 * one, another pulls through the other. Whichever process the console asks, it
 * shows the same two-way totals, equal to the sum of the two processes' own
 * Prometheus counters, and each device's pull watermark and lag behind the head.
 */

const USER = 'figures';
const TABLES = [{ name: 'notes', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'body', type: 'TEXT' }] }];

/** The sum of a metric's samples whose labels include `labels` (all samples when none are given). */
function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name && (match[2] ?? '').includes(labels)) sum += Number(match[3]);
  }
  return sum;
}

describe('two-way figures across two server processes on one PostgreSQL', { skip: postgresReachable ? false : 'PostgreSQL is not reachable' }, () => {
  let db: ScratchDatabase;
  let dir: ReturnType<typeof tempDir>;
  const servers: ServerProcess[] = [];

  const get = async (server: ServerProcess, path: string) => {
    const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    assert.equal(response.status, 200, path);
    return response.text();
  };
  const overview = async (server: ServerProcess): Promise<TwowayOverviewAnswer> => twowayOverviewSchema.parse(JSON.parse(await get(server, Routes.twowayOverview)));
  const head = async (): Promise<bigint> => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ head_seq: string }>('SELECT head_seq::text AS head_seq FROM sync_scopes WHERE scope = $1', [USER]);
      return BigInt(rows[0]?.head_seq ?? '0');
    } finally {
      await client.end();
    }
  };

  before(async () => {
    dir = tempDir('syncline-twoway-figures-');
    db = await createScratchDatabase();
    const configPath = join(dir.path, 'shared.json');
    writeFileSync(configPath, JSON.stringify({ auth: { hs256_secret: JWT_SECRET }, tables: TABLES }));
    const start = (i: number) => startServer({ dataDir: join(dir.path, `s${i}`), databaseUrl: db.url, extraArgs: ['--shared-config', configPath] });
    // The first migrates and provisions; the second starts against the result.
    servers.push(await start(0));
    servers.push(await start(1));
  });
  after(async () => {
    for (const server of servers) await server.stop();
    await db?.drop();
    dir?.remove();
  });

  test('every process shows the fleet-wide totals and each device’s pull watermark', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const token = await userToken(USER);
    const phone = await SharedSync.open({ path: join(dir.path, 'phone.db'), serverUrl: a.url, token, source: 'phone' });
    const tablet = await SharedSync.open({ path: join(dir.path, 'tablet.db'), serverUrl: b.url, token, source: 'tablet' });
    let tabletPulledTo: bigint;
    try {
      phone.db.exec(`INSERT INTO notes (id, body) VALUES ('a', 'one')`);
      await phone.sync();
      await tablet.sync();
      tabletPulledTo = await head();
      phone.db.exec(`INSERT INTO notes (id, body) VALUES ('b', 'two')`);
      await phone.sync();
    } finally {
      await phone.close();
      await tablet.close();
    }
    const now = await head();
    assert.ok(now > tabletPulledTo && tabletPulledTo > 0n, `the phone pushed after the tablet pulled (${tabletPulledTo} then ${now})`);

    // What each process counted itself: pushes went to A only, the tablet's pulls to B only.
    const [metricsA, metricsB] = [await get(a, Routes.metrics), await get(b, Routes.metrics)];
    const own = (name: string, labels?: string) => [metric(metricsA, name, labels), metric(metricsB, name, labels)] as const;
    const committed = own('syncline_twoway_pushes_total', 'outcome="committed"');
    const pulls = own('syncline_twoway_pulls_total');
    assert.ok(committed[0] >= 2 && committed[1] === 0, `pushes by process: ${committed.join(', ')}`);
    assert.ok(pulls[0] >= 1 && pulls[1] >= 1, `pulls by process: ${pulls.join(', ')}`);
    const expected = { committed: committed[0] + committed[1], pulls: pulls[0] + pulls[1] };
    assert.equal(BigInt(expected.committed), now, 'every bundle of the scope came from a push');

    // Written every few seconds by each process; then both answer the same.
    let seen: TwowayOverviewAnswer[] = [];
    await eventually('both processes to show the fleet-wide totals', async () => {
      seen = [await overview(a), await overview(b)];
      return seen.every((o) => o.counters.committed === expected.committed && o.counters.pulls === expected.pulls && o.watermarks.length === 2);
    }, 20_000).catch((error: Error) => assert.fail(`${error.message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(seen.map((o) => o.counters))}`));
    assert.deepEqual(seen[0]!.counters, seen[1]!.counters);
    for (const text of [await get(a, Routes.metrics), await get(b, Routes.metrics)]) {
      assert.equal(metric(text, 'syncline_twoway_fleet_events', 'event="push_committed"'), expected.committed);
      assert.equal(metric(text, 'syncline_twoway_fleet_events', 'event="pulls"'), expected.pulls);
    }

    const marks = new Map(seen[0]!.watermarks.map((w) => [w.source, w]));
    const tabletMark = marks.get('tablet')!;
    assert.deepEqual(
      { pulled_seq: tabletMark.pulled_seq, head_seq: tabletMark.head_seq, behind: tabletMark.behind },
      { pulled_seq: String(tabletPulledTo), head_seq: String(now), behind: String(now - tabletPulledTo) },
    );
    const phoneMark = marks.get('phone')!;
    assert.equal(BigInt(phoneMark.behind), now - BigInt(phoneMark.pulled_seq));
    assert.equal(seen[0]!.watermarks[0]!.source, 'tablet', 'the device furthest behind comes first');
  });
});
