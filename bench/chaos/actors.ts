import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { spawnScript, spawnSyncline, startServer, type ServerProcess } from '../../test/support/processes.js';
import type { AppResult, WriterPlan } from './plan.js';

const WRITER = fileURLToPath(new URL('./writer.ts', import.meta.url));

/** The server process, restarted on the same ports and data; an exit nobody asked for counts as a crash. */
export class ChaosServer {
  crashes = 0;
  #proc: ServerProcess | undefined;
  #expectingExit = false;
  readonly #options: Parameters<typeof startServer>[0];

  constructor(options: Parameters<typeof startServer>[0]) {
    this.#options = options;
  }

  get url(): string {
    return this.#proc!.url;
  }

  get adminToken(): string {
    return this.#options.adminToken!;
  }

  async start(): Promise<void> {
    this.#expectingExit = false;
    const proc = await startServer(this.#options);
    proc.child.once('exit', () => {
      if (this.#expectingExit || this.#proc !== proc) return;
      this.crashes += 1;
      process.stderr.write(`[chaos] the server crashed:\n${proc.logs().slice(-3000)}\n`);
      void this.start();
    });
    this.#proc = proc;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#expectingExit = true;
    await this.#proc?.stop(signal);
  }
}

/** A `syncline agent` process that can be killed and started again with the same arguments. */
export class ChaosAgent {
  #child: ChildProcess | undefined;
  readonly #args: string[];
  readonly #logFile: string;

  readonly #env: NodeJS.ProcessEnv;

  /** The agent's log lines go to `logFile` (kept with the run's files for a look after a bad run). */
  constructor(args: string[], logFile: string, env: NodeJS.ProcessEnv = {}) {
    this.#args = args;
    this.#logFile = logFile;
    this.#env = env;
  }

  start(): void {
    this.#child = spawnSyncline(['agent', ...this.#args], this.#env);
    this.#child.stdout?.resume();
    this.#child.stderr?.on('data', (chunk: Buffer) => appendFileSync(this.#logFile, chunk));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }
}

/** The apps of every device file, in one process (see writer.ts). */
export class ChaosWriter {
  readonly #plan: WriterPlan;
  readonly #child: ChildProcess;
  readonly #done: Promise<AppResult[]>;

  constructor(plan: WriterPlan) {
    this.#plan = plan;
    this.#child = spawnScript(WRITER, [JSON.stringify(plan)]);
    let out = '';
    let err = '';
    this.#child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    this.#child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    this.#done = once(this.#child, 'exit').then(([code]) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.includes('apps')) throw new Error(`the chaos apps exited ${code}: ${err}`);
      return (JSON.parse(last) as { apps: AppResult[] }).apps;
    });
  }

  /** Fills (or frees) the disk of every edge device. */
  setFull(full: boolean): void {
    for (const app of this.#plan.apps) {
      if (app.kind !== 'edge') continue;
      if (full) writeFileSync(`${app.db}.full`, '');
      else rmSync(`${app.db}.full`, { force: true });
    }
  }

  async finish(): Promise<AppResult[]> {
    writeFileSync(this.#plan.stopFile, '');
    return this.#done;
  }
}

/** Sets a device's clock offset (its app reads `<db>.clock`, its agent too through clock-offset-preload.js); 0 puts it right. */
export function setClockOffset(db: string, offsetMs: number): void {
  if (offsetMs === 0) rmSync(`${db}.clock`, { force: true });
  else writeFileSync(`${db}.clock`, String(offsetMs));
}

/** Terminates every other backend of the database every `everyMs` until stopped; returns how many it killed. */
export function terminateBackends(url: string, everyMs: number): { stop(): Promise<number> } {
  let running = true;
  let killed = 0;
  const done = (async () => {
    while (running) {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => {});
      try {
        await client.connect();
        const { rows } = await client.query<{ t: boolean }>('SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
        killed += rows.filter((r) => r.t).length;
      } catch {
        // Refused for a moment: next round.
      } finally {
        await client.end().catch(() => {});
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return killed;
    },
  };
}
