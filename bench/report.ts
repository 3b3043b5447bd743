import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';

/** One measured figure: a ratio against a baseline measured in the same run, with its raw numbers. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** What the figure is compared with, and the target the issue sets (if any). */
  baseline?: string;
  target?: string;
  met?: boolean;
  details?: Record<string, unknown>;
}

/** The figures of one group as its last run left them, with when and where that run was. */
interface GroupResult {
  generated_at: string;
  duration_s: number;
  machine: Record<string, unknown>;
  figures: Figure[];
}

/** A results file written before results were kept per group: its figures stay as this group until a full run. */
const EARLIER = 'earlier (one run of several groups)';

function machine(): Record<string, unknown> {
  return { node: process.version, cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30) };
}

function readGroups(path: string): Record<string, GroupResult> {
  let old: { groups?: Record<string, GroupResult>; generated_at?: string; duration_s?: number; machine?: Record<string, unknown>; figures?: Figure[] };
  try {
    old = JSON.parse(readFileSync(path, 'utf8')) as typeof old;
  } catch {
    return {};
  }
  if (old.groups) return old.groups;
  if (!old.figures?.length) return {};
  return { [EARLIER]: { generated_at: old.generated_at ?? '', duration_s: old.duration_s ?? 0, machine: old.machine ?? {}, figures: old.figures } };
}

export class BenchReport {
  readonly #groups = new Map<string, GroupResult>();
  #current: { result: GroupResult; started: number } | undefined;

  /** Figures added from now on belong to group `name`; the results file replaces that group alone. */
  startGroup(name: string): void {
    this.#endGroup();
    const result: GroupResult = { generated_at: '', duration_s: 0, machine: machine(), figures: [] };
    this.#groups.set(name, result);
    this.#current = { result, started: Date.now() };
  }

  add(figure: Figure): void {
    if (!this.#current) throw new Error('BenchReport.add before startGroup');
    this.#current.result.figures.push(figure);
    const target = figure.target ? `  target ${figure.target} ${figure.met ? 'MET' : 'MISSED'}` : '';
    process.stdout.write(`  ${figure.name.padEnd(48)} ${format(figure.value)} ${figure.unit}${target}\n`);
  }

  /**
   * Merges this run's groups into the results file at `path`: a group that ran replaces its
   * earlier result, the others keep theirs (each with its own time and machine). `order` lists
   * every group; when all of them ran, nothing of an earlier file is kept.
   */
  write(path: string, order: readonly string[]): void {
    this.#endGroup();
    const ranAll = order.every((name) => this.#groups.has(name));
    const merged = { ...(ranAll ? {} : readGroups(path)), ...Object.fromEntries(this.#groups) };
    const names = [...order.filter((name) => name in merged), ...Object.keys(merged).filter((name) => !order.includes(name))];
    const groups = Object.fromEntries(names.map((name) => [name, merged[name]!]));
    mkdirSync(dirname(path), { recursive: true });
    const body = {
      generated_at: new Date().toISOString(),
      machine: machine(),
      // Every group's figures in group order, for readers that want one list.
      figures: Object.values(groups).flatMap((g) => g.figures),
      groups,
    };
    writeFileSync(path, `${JSON.stringify(body, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path}\n`);
  }

  #endGroup(): void {
    if (!this.#current) return;
    this.#current.result.generated_at = new Date().toISOString();
    this.#current.result.duration_s = (Date.now() - this.#current.started) / 1000;
    this.#current = undefined;
  }
}

function format(value: number): string {
  return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString('en-US') : value.toFixed(value < 10 ? 3 : 1);
}

const benchStarted = Date.now();

/**
 * A step of the bench for a person watching it: on a terminal (stderr), a line
 * with the time since the start. In a pipe nothing, so stdout holds the figures
 * alone and scripts read the results file.
 */
export function progress(message: string): void {
  if (!process.stderr.isTTY) return;
  const seconds = Math.round((Date.now() - benchStarted) / 1000);
  process.stderr.write(`[bench ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}] ${message}\n`);
}

/**
 * Rows per second of `fn` over `rows` rows, best of `repeat` runs. When `fn`
 * returns a bigint it is the measured part in nanoseconds (so set-up is excluded);
 * otherwise the whole call is timed.
 */
export async function rate(rows: number, repeat: number, fn: () => unknown): Promise<number> {
  let best = 0;
  for (let i = 0; i < repeat; i++) {
    const start = process.hrtime.bigint();
    const measured = await fn();
    const nanos = typeof measured === 'bigint' ? measured : process.hrtime.bigint() - start;
    best = Math.max(best, rows / (Number(nanos) / 1e9));
  }
  return best;
}
