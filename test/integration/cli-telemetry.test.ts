import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createDeviceToken, runSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { tempDir } from '../support/temp.js';

/**
 * `syncline admin telemetry` end to end: a real agent ships a telemetry table to a
 * real server under review, and the operator lists the pending mapping, approves
 * it, queries buckets (gaps explicit) and the latest values through the CLI.
 */

const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('syncline admin telemetry', () => {
  const dir = tempDir('syncline-cli-telemetry-');
  let server: ServerProcess;
  let device: { device_id: string; token: string };
  const admin = (args: string[]) => runSyncline(['admin', 'telemetry', ...args, '--server', server.url], { SYNCLINE_ADMIN_TOKEN: server.adminToken });

  before(async () => {
    server = await startServer({ dataDir: join(dir.path, 'server'), extraArgs: ['--schema-policy', 'review'] });
    device = await createDeviceToken(server, 'cli-telemetry');
    const path = join(dir.path, 'sensor.db');
    const db = new Database(path);
    db.exec('CREATE TABLE readings (ts INTEGER NOT NULL, temp REAL, note TEXT)');
    // Two readings in the first minute, one in the second, none in the third.
    const insert = db.prepare('INSERT INTO readings (ts, temp, note) VALUES (?, ?, ?)');
    for (const [offsetS, temp] of [[10, 20.5], [40, 21.5], [70, 19.25]] as const) insert.run(T0 + offsetS * 1000, temp, `at ${offsetS}`);
    db.close();
    const shipped = await runSyncline(['agent', '--db', path, '--server', server.url, '--token', device.token, '--once', '--telemetry', 'readings=ts']);
    assert.equal(shipped.code, 0, shipped.stderr);
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('mappings, approve, query and latest', async () => {
    const listed = await admin(['mappings', '--status', 'pending', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    // Lists print as { items, next } under --json, like every admin list.
    const mappings = (JSON.parse(listed.stdout) as { items: { id: string; source_table: string; staged_rows: number }[] }).items;
    assert.equal(mappings.length, 1);
    assert.equal(mappings[0]!.source_table, 'readings');
    assert.equal(mappings[0]!.staged_rows, 3);
    assert.match((await admin(['mappings'])).stdout, /readings\s+pending/);

    const approved = await admin(['approve', mappings[0]!.id, '--column', 'temp=point', '--column', 'note=ignore', '--time-unit', 'ms']);
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(approved.stdout.trim(), `mapping ${mappings[0]!.id} approved; 3 staged rows stored`);

    const window = ['--device', device.device_id, '--point', 'readings.temp', '--from', '2026-01-01T00:00:00Z', '--to', '2026-01-01T00:03:00Z', '--bucket', '1m'];
    const avg = await admin(['query', ...window, '--agg', 'avg', '--json']);
    assert.equal(avg.code, 0, avg.stderr);
    const series = JSON.parse(avg.stdout) as { buckets: { start: string; count: number; value: unknown }[] };
    assert.deepEqual(
      series.buckets.map((b) => [b.start, b.count, b.value]),
      [
        ['2026-01-01T00:00:00.000Z', 2, 21],
        ['2026-01-01T00:01:00.000Z', 1, 19.25],
        ['2026-01-01T00:02:00.000Z', 0, null],
      ],
    );
    // The table shows an empty bucket as such; a count of nothing is 0, not a gap.
    const table = await admin(['query', ...window, '--agg', 'avg']);
    assert.match(table.stdout, /2026-01-01T00:02:00\.000Z\s+0\s+\(no data\)/);
    const counted = await admin(['query', ...window, '--agg', 'count', '--json']);
    assert.deepEqual((JSON.parse(counted.stdout) as typeof series).buckets.map((b) => b.value), [2, 1, 0]);

    const latest = await admin(['latest', '--device', device.device_id, '--json']);
    assert.equal(latest.code, 0, latest.stderr);
    const points = (JSON.parse(latest.stdout) as { points: { point: string; ts: string; value: unknown }[] }).points;
    assert.deepEqual(
      points.map((p) => [p.point, p.ts, p.value]),
      [['readings.temp', '2026-01-01T00:01:10.000Z', 19.25]],
    );
  });

  test('bad input: one clear line, exit 2 for the command line and 1 for what the server refuses', async () => {
    const cases: [string[], number, RegExp][] = [
      [['approve'], 2, /MAPPING_ID is required/],
      [['approve', 'some-id', '--column', 'temp=bogus'], 2, /--column takes NAME=point\[:POINT\[:KIND\]\] or NAME=ignore/],
      [['query', '--point', 'readings.temp'], 2, /--device is required/],
      [['query', '--device', '00000000-0000-0000-0000-000000000000', '--point', 'x', '--agg', 'median'], 2, /--agg/],
      [['query', '--device', '00000000-0000-0000-0000-000000000000', '--point', 'x', '--bucket', '5y'], 1, /bucket/],
      [['frobnicate'], 2, /unknown telemetry subcommand "frobnicate"/],
    ];
    for (const [args, code, message] of cases) {
      const result = await admin(args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${result.stderr}`);
    }
  });
});
