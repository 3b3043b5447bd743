import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { spawnSyncline } from '../support/processes.js';
import { eventually, lineages } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

/** `npm start` is `syncline dev`: it must come up on a bare machine, mirror the demo rows, and stop cleanly on Ctrl-C. */
test('syncline dev mirrors the demo app and stops cleanly on SIGINT', async () => {
  const dir = tempDir('syncline-dev-');
  const child = spawnSyncline(['dev', '--http-port', '0', '--data', dir.path, '--interval-ms', '200', '--flush-interval-ms', '200']);
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  try {
    await eventually('dev to print its server and admin token', () => /admin token\s+(\S+)/.test(stdout) && /server\s+(http:\/\/\S+)/.test(stdout), 90_000).catch((error: Error) => {
      throw new Error(`${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
    });
    const server = { url: /server\s+(http:\/\/\S+)/.exec(stdout)![1]!, adminToken: /admin token\s+(\S+)/.exec(stdout)![1]! };
    await eventually('both demo tables to be mirrored', async () => {
      const found = await lineages(server);
      const byTable = new Map(found.map((l) => [l.source_table, l]));
      return (byTable.get('settings')?.rows_applied ?? 0) >= 2 && (byTable.get('sensor_readings')?.rows_applied ?? 0) >= 6;
    }, 60_000);
    await eventually('the two-way demo devices to share their todos', () => /phone\s+todos [1-9]/.test(stdout) && /laptop\s+todos [1-9]/.test(stdout), 60_000);
    child.kill('SIGINT');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, stdout);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    dir.remove();
  }
});
