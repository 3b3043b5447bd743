import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isSynclineError } from '../../protocol/errors.js';

/**
 * Counters and histograms of this process (Prometheus counts per process: two
 * servers in one process, as in tests, add up). Labels are small closed sets —
 * transport, outcome, route template, SQLSTATE class — never a device, lineage or
 * scope id, so the series count stays bounded however large the fleet grows.
 * Gauges read from the store at scrape time live in store-gauges.ts.
 */
export const processRegistry = new Registry();
collectDefaultMetrics({ register: processRegistry });

export type IngestTransport = 'http' | 'mqtt';
/** accepted: materialized or staged; duplicate: a redelivery answered from the ledger; refused: a client error; failed: a server fault. */
export type IngestOutcome = 'accepted' | 'duplicate' | 'refused' | 'failed';

const registers = [processRegistry];
const ingestLabels = ['transport', 'outcome'] as const;
const ingestBatches = new Counter({ name: 'syncline_ingest_batches_total', help: 'Row batches answered, by transport and outcome', labelNames: ingestLabels, registers });
const ingestRows = new Counter({ name: 'syncline_ingest_rows_total', help: 'Journal rows in answered row batches, by transport and outcome', labelNames: ingestLabels, registers });
const ingestBytes = new Counter({ name: 'syncline_ingest_bytes_total', help: 'Decoded bytes of answered row batches (received bytes when undecodable), by transport and outcome', labelNames: ingestLabels, registers });
const ackSeconds = new Histogram({
  name: 'syncline_ingest_ack_seconds',
  help: 'Time from receiving a row batch to its answer (durably materialized or staged, or refused)',
  labelNames: ingestLabels,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers,
});

export interface IngestTimer {
  /** The batch was answered with an ack. */
  acked(status: 'accepted' | 'duplicate', rows: number, bytes: number): void;
  /** The batch was refused or failed; rows and bytes as far as they are known. */
  refused(error: unknown, rows: number, bytes: number): void;
}

/** A class rather than closures: one is made for every batch, and closures cost a few allocations each. */
class BatchTimer implements IngestTimer {
  readonly #transport: IngestTransport;
  readonly #startedAt = performance.now();

  constructor(transport: IngestTransport) {
    this.#transport = transport;
  }

  acked(status: 'accepted' | 'duplicate', rows: number, bytes: number): void {
    this.#record(status, rows, bytes);
  }

  refused(error: unknown, rows: number, bytes: number): void {
    this.#record(isSynclineError(error) && error.status < 500 ? 'refused' : 'failed', rows, bytes);
  }

  #record(outcome: IngestOutcome, rows: number, bytes: number): void {
    const labels = { transport: this.#transport, outcome };
    ingestBatches.inc(labels);
    ingestRows.inc(labels, rows);
    ingestBytes.inc(labels, bytes);
    ackSeconds.observe(labels, (performance.now() - this.#startedAt) / 1000);
  }
}

/** Starts timing one row batch; call one of the two outcomes once it is answered. */
export function ingestTimer(transport: IngestTransport): IngestTimer {
  return new BatchTimer(transport);
}

/** Rows of a batch body as far as it is readable, for counting refused batches too. */
export function rowsOf(body: unknown): number {
  const rows = typeof body === 'object' && body !== null ? (body as { rows?: unknown }).rows : undefined;
  return Array.isArray(rows) ? rows.length : 0;
}

const httpSeconds = new Histogram({
  name: 'syncline_http_request_seconds',
  help: 'HTTP requests by method, route template and status class',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  registers,
});

/** One answered HTTP request; `route` is the template (`/v1/lineages/:id`), or `unmatched`. */
export function observeHttp(method: string, route: string | undefined, status: number, seconds: number): void {
  httpSeconds.observe({ method, route: route ?? 'unmatched', status: `${Math.floor(status / 100)}xx` }, seconds);
}

export type PushOutcome = 'committed' | 'duplicate' | 'conflict';
const pushes = new Counter({ name: 'syncline_twoway_pushes_total', help: 'Two-way push bundles answered, by outcome', labelNames: ['outcome'] as const, registers });
const conflicts = new Counter({ name: 'syncline_twoway_conflicts_total', help: 'Conflicting rows reported to pushing devices', registers });
const pulls = new Counter({ name: 'syncline_twoway_pulls_total', help: 'Two-way pull requests answered', registers });
const pulledBundles = new Counter({ name: 'syncline_twoway_pulled_bundles_total', help: 'Bundles handed out by pulls', registers });
const snapshots = new Counter({ name: 'syncline_twoway_snapshots_total', help: 'Hydration snapshots started', registers });

export type PushAnswerLike = { status: 'open' } | { status: 'committed'; duplicate: boolean } | { status: 'conflict'; conflicts: readonly unknown[] };

/** What a push answer counts as; an `open` chunked session is counted when it commits. */
export function pushOutcome(answer: PushAnswerLike): PushOutcome | undefined {
  if (answer.status === 'conflict') return 'conflict';
  if (answer.status === 'committed') return answer.duplicate ? 'duplicate' : 'committed';
  return undefined;
}

/** One answered push. */
export function countPush(answer: PushAnswerLike): void {
  const outcome = pushOutcome(answer);
  if (outcome) pushes.inc({ outcome });
  if (answer.status === 'conflict') conflicts.inc(answer.conflicts.length);
}

export function countPull(answer: { bundles: readonly unknown[] }): void {
  pulls.inc();
  pulledBundles.inc(answer.bundles.length);
}

export function countSnapshot(): void {
  snapshots.inc();
}

const storeErrors = new Counter({ name: 'syncline_store_errors_total', help: 'Failed store queries and transactions, by SQLSTATE class (`none` when the error carried no SQLSTATE, e.g. a lost connection)', labelNames: ['class'] as const, registers });

export function countStoreError(sqlState: string | undefined): void {
  storeErrors.inc({ class: sqlState ? sqlState.slice(0, 2) : 'none' });
}

export interface IngestTotals {
  batches: number;
  rows: number;
  acks: number;
  ackSeconds: number;
}

/** Totals since start, summed over labels, for the console's live figures. */
export async function ingestTotals(): Promise<IngestTotals> {
  const sum = async (metric: { get(): Promise<{ values: { value: number; metricName?: string }[] }> }, suffix?: string) =>
    (await metric.get()).values.filter((v) => suffix === undefined || v.metricName?.endsWith(suffix)).reduce((total, v) => total + v.value, 0);
  return { batches: await sum(ingestBatches), rows: await sum(ingestRows), acks: await sum(ackSeconds, '_count'), ackSeconds: await sum(ackSeconds, '_sum') };
}
