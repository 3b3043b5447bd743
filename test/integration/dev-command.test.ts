import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../support/mqtt-fixtures.js';
import { seedDataDir } from '../support/pglite-template.js';
import { spawnSyncline } from '../support/processes.js';
import { eventually, lineages } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

interface DevRun {
  stdout: () => string;
  server: { url: string; adminToken: string };
  device: string;
  stop(signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string }>;
}

async function startDev(dataDir: string): Promise<DevRun> {
  // A free broker port of its own: the default (1883, else 18830) is shared with mqtt-cli.test.ts and anything else on the host.
  const child = spawnSyncline(['dev', '--http-port', '0', '--mqtt-port', String(await freePort()), '--data', dataDir, '--interval-ms', '200', '--flush-interval-ms', '200']);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  await eventually('dev to print its server and admin token', () => /admin token\s+(\S+)/.test(stdout) && /server\s+(http:\/\/\S+)/.test(stdout), 90_000).catch((error: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
  });
  return {
    stdout: () => stdout,
    server: { url: /server\s+(http:\/\/\S+)/.exec(stdout)![1]!, adminToken: /admin token\s+(\S+)/.exec(stdout)![1]! },
    device: /device\s+(\S+)/.exec(stdout)![1]!,
    async stop(signal) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const [code] = await exited;
      clearTimeout(timer);
      return { code, stdout };
    },
  };
}

/**
 * `npm start` is `syncline dev`: it must come up on a bare machine, mirror the demo
 * rows, stop cleanly on SIGINT or SIGTERM saying what it stopped, and resume after a
 * restart with the same device, admin token and JWT secret (one mirror, printed commands still valid).
 */
test('syncline dev mirrors the demo app, stops cleanly on SIGTERM and SIGINT, and resumes exactly after a restart', async () => {
  const dir = tempDir('syncline-dev-');
  try {
    // dev keeps PGlite in <data>/pglite; a migrated copy spares the test initdb (what dev says and does is the same).
    await seedDataDir(join(dir.path, 'pglite'));
    const first = await startDev(dir.path);
    await eventually('both demo tables to be mirrored', async () => {
      const byTable = new Map((await lineages(first.server)).map((l) => [l.source_table, l]));
      return (byTable.get('settings')?.rows_applied ?? 0) >= 2 && (byTable.get('sensor_readings')?.rows_applied ?? 0) >= 6;
    }, 60_000);
    await eventually('the two-way demo devices to share their todos', () => /phone\s+todos [1-9]/.test(first.stdout()) && /laptop\s+todos [1-9]/.test(first.stdout()), 60_000);
    const before = (await lineages(first.server)).find((l) => l.source_table === 'sensor_readings')!;
    const stopped = await first.stop('SIGTERM');
    assert.equal(stopped.code, 0, stopped.stdout);
    assert.match(stopped.stdout, /SIGTERM: stopping \.\.\.\nstopped: two-way devices phone, laptop; demo app \(pid \d+\); agent \(\d+ rows shipped this run, \d+ pending\); server http:\/\/\S+; PGlite\./);

    const second = await startDev(dir.path);
    assert.equal(second.server.adminToken, first.server.adminToken, 'the admin token is kept');
    assert.equal(second.device, first.device, 'the demo device is kept');
    assert.match(second.stdout(), /resuming PGlite/);
    await eventually('the same lineage to go on', async () => {
      const now = (await lineages(second.server)).filter((l) => l.source_table === 'sensor_readings');
      return now.length === 1 && now[0]!.id === before.id && now[0]!.rows_applied > before.rows_applied;
    }, 60_000);
    const again = await second.stop('SIGINT');
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /SIGINT: stopping/);
  } finally {
    dir.remove();
  }
});
