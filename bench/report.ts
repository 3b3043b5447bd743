import { mkdirSync, writeFileSync } from 'node:fs';
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

export class BenchReport {
  readonly #figures: Figure[] = [];
  readonly #started = Date.now();

  add(figure: Figure): void {
    this.#figures.push(figure);
    const target = figure.target ? `  target ${figure.target} ${figure.met ? 'MET' : 'MISSED'}` : '';
    process.stdout.write(`  ${figure.name.padEnd(48)} ${format(figure.value)} ${figure.unit}${target}\n`);
  }

  write(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    const body = {
      generated_at: new Date().toISOString(),
      duration_s: (Date.now() - this.#started) / 1000,
      machine: { node: process.version, cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30) },
      figures: this.#figures,
    };
    writeFileSync(path, `${JSON.stringify(body, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path}\n`);
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
