import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

/**
 * Real Syncline processes for end-to-end tests: the CLI's own entry point, with real
 * sockets between them. It runs from src/ through tsx so a test always runs the code
 * it sits beside, or from dist/ when scripts/run-tests.js found dist/ built from the
 * current src/ (SYNCLINE_TEST_CLI=dist): the same code without tsx's start-up, about a
 * second per process on a loaded machine. The package test runs the installed bin.
 */
const TSX = import.meta.resolve('tsx');
// The V8 flag scripts/run-tests.js gives test processes (PGlite's WASM without TurboFan's recompiling),
// passed on to the CLI processes, whose `syncline server` on PGlite starts on about 2/3 of the CPU.
const V8_FLAGS = process.execArgv.filter((arg) => arg === '--liftoff-only');
const CLI = [...V8_FLAGS, ...(process.env.SYNCLINE_TEST_CLI === 'dist' ? [fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))] : ['--import', TSX, fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))])];

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `syncline ARGS` as a child process; `cwd` is where relative paths in ARGS land (default the test's own). */
export function spawnSyncline(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): ChildProcess {
  return spawn(process.execPath, [...CLI, ...args], {
    env: { ...process.env, SYNCLINE_LOG_LEVEL: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd ? { cwd } : {}),
  });
}

/** Runs a TypeScript script (test/support/*.ts) as its own process (see scriptCommand). */
export function spawnScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const [node, ...rest] = scriptCommand(script, args);
  return spawn(node!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

const COMPILED = fileURLToPath(new URL('../../node_modules/.cache/syncline-test-scripts/', import.meta.url));
const compiled = new Map<string, string | null>();

/**
 * A script that imports only packages (the test app sqlite-app.ts, run 100+ times a test run) runs
 * from its JavaScript, transpiled once per content into node_modules/.cache (where its packages
 * resolve as from test/support): plain node starts it in a fraction of tsx's start-up. A script
 * importing our own modules keeps running through tsx, so it always runs the code beside it.
 */
function scriptCommand(script: string, args: string[]): string[] {
  if (!compiled.has(script)) {
    const built = buildSync({ entryPoints: [script], bundle: true, packages: 'external', format: 'esm', platform: 'node', target: 'node20', write: false, metafile: true, logLevel: 'silent' });
    const standalone = Object.keys(built.metafile.inputs).length === 1;
    const code = built.outputFiles[0]!.contents;
    const path = join(COMPILED, `${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    if (standalone && !existsSync(path)) {
      // Written under a temporary name and renamed: two test files may compile the same script at once.
      mkdirSync(COMPILED, { recursive: true });
      writeFileSync(`${path}.${process.pid}`, code);
      renameSync(`${path}.${process.pid}`, path);
    }
    compiled.set(script, standalone ? path : null);
  }
  const path = compiled.get(script);
  return path ? [process.execPath, path, ...args] : tsxCommand(script, args);
}

export async function finished(child: ChildProcess, timeoutMs = 120_000): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

export async function runSyncline(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs?: number): Promise<RunResult> {
  return finished(spawnSyncline(args, env), timeoutMs);
}

/** The command line that runs a TypeScript file (a script of bench/ or test/support/) through tsx. */
export function tsxCommand(script: string, args: string[]): string[] {
  return [process.execPath, '--import', TSX, script, ...args];
}

/**
 * Runs a command on a terminal: a pseudo-terminal from util-linux `script`, so the
 * process sees isTTY on stdout and stderr (both arrive in `stdout`, as a person
 * would see them). Progress lines are drawn only there.
 */
export async function runOnTerminal(command: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<RunResult> {
  const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
  const child = spawn('script', ['-qec', command.map(quote).join(' '), '/dev/null'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return finished(child, timeoutMs);
}

/** `syncline ARGS` on a terminal (see runOnTerminal). */
export function runSynclineOnTerminal(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<RunResult> {
  return runOnTerminal([process.execPath, ...CLI, ...args], { SYNCLINE_LOG_LEVEL: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'warn', ...env }, timeoutMs);
}

export interface ServerProcess {
  url: string;
  adminToken: string;
  child: ChildProcess;
  /** Everything the server wrote to stderr so far (its JSON log lines). */
  logs(): string;
  /** Everything it printed on stdout so far (the banner). */
  stdout(): string;
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

/** Collects a process's output into `output` and resolves with the URL of its first "listening on URL" line. */
export function listeningUrl(child: ChildProcess, output: { stdout: string; stderr: string }, timeoutMs = 60_000): Promise<string> {
  child.stderr!.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" line in time:\n${output.stdout}\n${output.stderr}`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      output.stdout += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output.stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${output.stdout}\n${output.stderr}`));
    });
  });
}

/**
 * Starts `syncline server` on an ephemeral port and waits for its "listening on"
 * line. `databaseUrl` selects real PostgreSQL, otherwise PGlite in `dataDir`.
 */
export async function startServer(options: { dataDir: string; databaseUrl?: string; adminToken?: string; httpPort?: number; extraArgs?: string[]; env?: NodeJS.ProcessEnv }): Promise<ServerProcess> {
  const adminToken = options.adminToken ?? `sla_test_${Math.random().toString(36).slice(2)}`;
  // MQTT off unless a test asks for it (--mqtt-port in extraArgs): parallel servers would contend for the broker's default port.
  const env: NodeJS.ProcessEnv = { SYNCLINE_ADMIN_TOKEN: adminToken, DATABASE_URL: options.databaseUrl ?? '', SYNCLINE_MQTT_PORT: '0', MQTT_URL: '', ...options.env };
  const fresh = !existsSync(options.dataDir) || readdirSync(options.dataDir).length === 0;
  if (!options.databaseUrl && fresh) await (await import('./pglite-template.js')).seedDataDir(options.dataDir);
  const child = spawnSyncline(['server', '--http-port', String(options.httpPort ?? 0), '--data', options.dataDir, ...(options.extraArgs ?? [])], env);
  const output = { stdout: '', stderr: '' };
  // A start takes seconds; the margin is for a machine shared by many test runs (PGlite's initdb is CPU-bound).
  const url = await listeningUrl(child, output, 120_000);
  return {
    url,
    adminToken,
    child,
    logs: () => output.stderr,
    stdout: () => output.stdout,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode, ...output };
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      child.kill(signal);
      const [code, sig] = await exited;
      return { code, signal: sig, ...output };
    },
  };
}

export async function createDeviceToken(server: ServerProcess, name: string): Promise<{ device_id: string; token: string }> {
  const result = await runSyncline(['admin', 'device', 'create', '--name', name, '--json', '--server', server.url], { SYNCLINE_ADMIN_TOKEN: server.adminToken });
  if (result.code !== 0) throw new Error(`device create failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { device_id: string; token: string };
}

/** The process and its descendants (a `server --workers N` primary and its workers), from /proc's children lists. */
export function processTree(pid: number): number[] {
  const children = (p: number): number[] => {
    try {
      return readdirSync(`/proc/${p}/task`).flatMap((task) =>
        readFileSync(`/proc/${p}/task/${task}/children`, 'utf8')
          .split(' ')
          .filter((id) => id.trim() !== '')
          .map(Number),
      );
    } catch {
      return [];
    }
  };
  return [pid, ...children(pid).flatMap(processTree)];
}

/**
 * How many established TCP connections the process holds on local `port` (its
 * socket fds matched against /proc/net/tcp{,6}): which worker of a cluster took
 * which connections.
 */
export function establishedConnections(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (socket) inodes.add(socket[1]!);
    } catch {
      // An fd closed while listing.
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const ESTABLISHED = '01';
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      if (fields[1]!.endsWith(`:${hexPort}`) && fields[3] === ESTABLISHED && inodes.has(fields[9]!)) count += 1;
    }
  }
  return count;
}
