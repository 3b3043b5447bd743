import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { runSyncline, spawnSyncline } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { app, waitFor } from './change-stream-support.js';

interface Watcher {
  child: ChildProcess;
  lines: () => Record<string, unknown>[];
  stop: () => Promise<number | null>;
  exit: () => Promise<{ code: number | null; stderr: string }>;
}

function watch(args: string[]): Watcher {
  const child = spawnSyncline(['watch', ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  return {
    child,
    lines: () =>
      stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(stderr.includes('"level":50'), false, stderr);
      return code;
    },
    async exit() {
      const [code] = await exited;
      return { code, stderr };
    },
  };
}

describe('syncline watch', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-watch-');
  });
  after(() => dir.remove());

  test('--json prints JSON lines with wire-encoded values; --checkpoint resumes after what was printed', async () => {
    const path = join(dir.path, 'watch.db');
    await app(path, 'setup');
    await app(path, 'insert', 3, 1);
    const first = watch(['--db', path, '--table', 'ITEMS', '--snapshot', '--json', '--checkpoint', 'printer']);
    try {
      await waitFor(() => first.lines().length === 3, 'the snapshot lines');
      await app(path, 'insert', 2, 4);
      await waitFor(() => first.lines().length === 5, 'the live lines');
    } finally {
      assert.equal(await first.stop(), 0);
    }
    const lines = first.lines();
    assert.deepEqual(lines.map((l) => [l.op, l.table, l.key]), [
      ['snapshot', 'items', { id: 1 }],
      ['snapshot', 'items', { id: 2 }],
      ['snapshot', 'items', { id: 3 }],
      ['insert', 'items', { id: 4 }],
      ['insert', 'items', { id: 5 }],
    ]);
    const row = lines[4]!.after as Record<string, unknown>;
    assert.deepEqual(row.qty, { $int: '9223372036854775807' }, 'a 64-bit integer stays exact');
    assert.deepEqual(row.data, { $blob: Buffer.from([5, 0, 255, 0]).toString('base64') });
    assert.equal(lines[4]!.origin, 'local');
    assert.match(String(lines[4]!.at), /^\d{4}-\d\d-\d\dT/);

    await app(path, 'update', 1, 5);
    await app(path, 'delete', 1, 4);
    const second = watch(['--db', path, '--table', 'items', '--json', '--checkpoint', 'printer']);
    try {
      await waitFor(() => second.lines().length === 2, 'the changes made while the watcher was stopped');
    } finally {
      assert.equal(await second.stop(), 0);
    }
    assert.deepEqual(second.lines().map((l) => [l.op, l.key]), [
      ['update', { id: 5 }],
      ['delete', { id: 4 }],
    ]);
  });

  test('an unknown --table is refused (unless --wait-for-tables); the help says what watch installs', async () => {
    const path = join(dir.path, 'tables.db');
    await app(path, 'setup');
    const refused = await watch(['--db', path, '--table', 'items,nosuch']).exit();
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^syncline: watch: .*tables\.db has no table "nosuch"; check the name, or pass --wait-for-tables .*\[invalid_config\]/);
    const help = await runSyncline(['watch', '--help']);
    assert.match(help.stdout, /installs .*AFTER triggers/);
    assert.match(help.stdout, /switches the file to WAL/);
    assert.match(help.stdout, /--wait-for-tables/);
  });

  test('a bad option is a usage error', async () => {
    const bad = await watch(['--db', join(dir.path, 'none.db'), '--ops', 'upsert']).exit();
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown op upsert/);
  });
});
