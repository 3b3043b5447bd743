import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createDeviceToken, runSyncline, runSynclineOnTerminal, spawnSyncline, startServer } from '../support/processes.js';
import { eventually } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

/**
 * What a running agent tells an operator: a line when it recovers after failed
 * attempts, a periodic one-line status at info level, and drain progress on a
 * terminal only (real processes; the terminal is util-linux `script`).
 */
// Two server starts and three agent runs: 64-92 s in full runs on a machine at load 25-35, over a third of the default 180 s.
test('the agent says when the server answers again, logs a periodic status, and shows progress on a terminal only', { timeout: 300_000 }, async () => {
  const dir = tempDir('syncline-agent-progress-');
  const path = join(dir.path, 'app.db');
  const app = new Database(path);
  app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)');
  const insert = app.prepare('INSERT INTO items (name) VALUES (?)');
  for (let i = 0; i < 300; i++) insert.run(`n${i}`);
  let server = await startServer({ dataDir: join(dir.path, 'server'), extraArgs: ['--schema-policy', 'auto'] });
  const port = new URL(server.url).port;
  const device = await createDeviceToken(server, 'progress');
  try {
    // In a pipe: no progress, just the final status line.
    const piped = await runSyncline(['agent', '--db', path, '--server', server.url, '--token', device.token, '--once']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stderr, /draining/);
    // On a terminal: the drain line, rewritten in place.
    for (let i = 0; i < 3000; i++) insert.run(`m${i}`);
    const tty = await runSynclineOnTerminal(['agent', '--db', path, '--server', server.url, '--token', device.token, '--once', '--max-batch-rows', '50']);
    assert.equal(tty.code, 0, tty.stdout + tty.stderr);
    assert.match(tty.stdout, /\r\u001b\[Kdraining .*app\.db: \d+ rows shipped, \d+ left in the journal, \d+ rows\/s/);

    await server.stop();
    // --flush-interval-ms: the one row is sent (and fails) at once, not after the default 5 s wait for a fuller batch.
    const agent = spawnSyncline(['agent', '--db', path, '--server', server.url, '--token', device.token, '--status-interval-ms', '300', '--retry-max-ms', '1000', '--flush-interval-ms', '50'], { SYNCLINE_LOG_LEVEL: 'info' });
    let logs = '';
    agent.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    insert.run('while the server is down');
    await eventually('a failed send', () => /send failed; retrying/.test(logs), 30_000);
    server = await startServer({ dataDir: join(dir.path, 'server'), httpPort: Number(port), adminToken: server.adminToken, extraArgs: ['--schema-policy', 'auto'] });
    await eventually('the recovery line', () => /the server answers again after \d+ failed attempts?; shipping resumed/.test(logs), 60_000);
    await eventually('a status line', () => /"msg":"status: \d+ rows shipped in \d+ batches, 0 pending, \d+ retries, 0 quarantined"/.test(logs), 30_000);
    const exited = once(agent, 'exit');
    agent.kill('SIGTERM');
    await exited;
  } finally {
    app.close();
    await server.stop();
    dir.remove();
  }
});
