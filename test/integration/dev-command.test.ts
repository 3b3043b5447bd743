import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Routes } from '../../src/protocol/constants.js';
import { freePort } from '../support/mqtt-fixtures.js';
import { seedDataDir } from '../support/pglite-template.js';
import { finished, spawnSyncline } from '../support/processes.js';
import { eventually, lineages } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

// The banner's own line, not a mention of the token elsewhere (the console line names it too).
const ADMIN_TOKEN_LINE = /^\s+admin token\s+(\S+)\s*$/m;

interface DevRun {
  stdout: () => string;
  server: { url: string; adminToken: string };
  device: string;
  stop(signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

async function startDev(dataDir: string, httpPort = '0'): Promise<DevRun> {
  // A free broker port of its own: the default (1883, else 18830) is shared with mqtt-cli.test.ts and anything else on the host.
  const child = spawnSyncline(['dev', '--http-port', httpPort, '--mqtt-port', String(await freePort()), '--data', dataDir, '--interval-ms', '200', '--flush-interval-ms', '200']);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  await eventually('dev to print its server and admin token', () => ADMIN_TOKEN_LINE.test(stdout) && /server\s+(http:\/\/\S+)/.test(stdout), 90_000).catch((error: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
  });
  return {
    stdout: () => stdout,
    server: { url: /server\s+(http:\/\/\S+)/.exec(stdout)![1]!, adminToken: ADMIN_TOKEN_LINE.exec(stdout)![1]! },
    device: /device\s+(\S+)/.exec(stdout)![1]!,
    async stop(signal) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const [code] = await exited;
      clearTimeout(timer);
      return { code, stdout, stderr };
    },
  };
}

/** A command `syncline dev` printed for a person to paste: its environment assignments and the arguments after `npx syncline`. */
interface PrintedCommand {
  line: string;
  env: Record<string, string>;
  args: string[];
}

function printedCommands(stdout: string): PrintedCommand[] {
  return [...stdout.matchAll(/^ {2}((?:[A-Z_]+=\S+ )*)npx syncline (.+)$/gm)].map(([line, assignments, rest]) => ({
    line: line.trim(),
    env: Object.fromEntries(assignments!.trim().split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)])),
    args: rest!.trim().split(/\s+/),
  }));
}

/** The rows of the shared todos table in a device's file; 0 while the agent has not created it yet. */
function todoCount(path: string): number {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM todos').get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

/**
 * The commands the first run printed, run as printed against a later run: the
 * admin token and JWT secret are kept, so every one still works (the HTTP port is
 * the same here because both runs ask for the one the first got).
 */
async function runPrintedCommands(printed: string, lineageId: string, cwd: string): Promise<void> {
  const commands = printedCommands(printed);
  assert.deepEqual(commands.map((c) => c.args.slice(0, 2).join(' ')), ['admin lineages', 'admin mirror-rows', 'agent --shared'], printed);
  const [lineages, rows, tablet] = commands as [PrintedCommand, PrintedCommand, PrintedCommand];
  const listed = await finished(spawnSyncline(lineages.args, lineages.env, cwd));
  assert.equal(listed.code, 0, `${lineages.line}: ${listed.stderr}`);
  assert.match(listed.stdout, new RegExp(`^${lineageId}  .*sensor_readings`, 'm'));
  const page = await finished(spawnSyncline(rows.args.map((a) => (a === '<lineage-id>' ? lineageId : a)), rows.env, cwd));
  assert.equal(page.code, 0, `${rows.line}: ${page.stderr}`);
  assert.match(page.stdout, /^id\s+sensor\s+ts\s+value/);
  const [, bearer, url] = /^ {2}curl -H "authorization: Bearer (\S+)" (\S+)$/m.exec(printed)!;
  const answer = await fetch(url!, { headers: { authorization: `Bearer ${bearer}` } });
  assert.equal(answer.status, 200);
  assert.ok(((await answer.json()) as { lineages: { id: string }[] }).lineages.some((l) => l.id === lineageId));
  // The third two-way device runs until stopped; it has joined once the shared todos arrived in its file.
  const agent = spawnSyncline(tablet.args, tablet.env, cwd);
  const exited = finished(agent);
  await eventually(`${tablet.line} to hydrate tablet.db`, () => agent.exitCode === null && todoCount(join(cwd, 'tablet.db')) > 0, 60_000).catch(async (error: Error) => {
    agent.kill('SIGKILL');
    throw new Error(`${error.message}: ${(await exited).stderr}`);
  });
  agent.kill('SIGTERM');
  assert.equal((await exited).code, 0);
}

/**
 * `npm start` is `syncline dev`: it must come up on a bare machine, mirror the demo
 * rows, stop cleanly on SIGINT or SIGTERM saying what it stopped, and resume after a
 * restart with the same device, admin token and JWT secret (one mirror; the commands the first run
 * printed, run as printed, still work).
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
    const consoleUrl = /console\s+(http:\/\/\S+)\s+\(sign in with the admin token\)/.exec(first.stdout())?.[1];
    assert.equal(consoleUrl, `${first.server.url}${Routes.console}`, first.stdout());
    assert.equal((await fetch(consoleUrl)).status, 200);
    const before = (await lineages(first.server)).find((l) => l.source_table === 'sensor_readings')!;
    const stopped = await first.stop('SIGTERM');
    assert.equal(stopped.code, 0, `${stopped.stdout}\nstderr: ${stopped.stderr}`);
    assert.match(stopped.stdout, /SIGTERM: stopping \.\.\.\nstopped: two-way devices phone, laptop; demo app \(pid \d+\); agent \(\d+ rows shipped this run, \d+ pending\); server http:\/\/\S+; PGlite\./);

    const second = await startDev(dir.path, new URL(first.server.url).port);
    assert.equal(second.server.adminToken, first.server.adminToken, 'the admin token is kept');
    assert.equal(second.device, first.device, 'the demo device is kept');
    assert.match(second.stdout(), /resuming PGlite/);
    await eventually('the same lineage to go on', async () => {
      const now = (await lineages(second.server)).filter((l) => l.source_table === 'sensor_readings');
      return now.length === 1 && now[0]!.id === before.id && now[0]!.rows_applied > before.rows_applied;
    }, 60_000);
    await runPrintedCommands(first.stdout(), before.id, dir.path);
    const again = await second.stop('SIGINT');
    assert.equal(again.code, 0, `${again.stdout}\nstderr: ${again.stderr}`);
    assert.match(again.stdout, /SIGINT: stopping/);
  } finally {
    dir.remove();
  }
});
