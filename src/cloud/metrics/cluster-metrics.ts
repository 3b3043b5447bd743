import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** What /metrics serves: one registry, or the sum of a cluster's. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** A worker's question to the primary, and the answer; only these two kinds travel. */
const ASK = 'syncline:metrics';
const ANSWER = 'syncline:metrics-answer';
/** prom-client answers the primary's own request within 5 s or fails it; a worker waits a little longer. */
const ANSWER_WAIT_MS = 6_000;

interface Ask {
  type: typeof ASK;
  id: string;
}
interface Answer {
  type: typeof ANSWER;
  id: string;
  text?: string;
  error?: string;
}

function isAnswer(message: unknown): message is Answer {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === ANSWER;
}

/**
 * In a worker of `syncline server --workers N`: registers this process's
 * registry for the primary's aggregation (prom-client's AggregatorRegistry asks
 * every worker over IPC), and returns what the API port's /metrics serves: the
 * whole server's figures from the primary, not the one worker that took the scrape.
 */
export function workerMetricsSource(local: Registry): MetricsSource {
  // The constructor installs prom-client's worker-side listener; the instance itself is not used.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([local]);
  return {
    contentType: local.contentType,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = randomUUID();
        const timer = setTimeout(() => done(new Error(`the server's primary process did not answer within ${ANSWER_WAIT_MS} ms`)), ANSWER_WAIT_MS);
        const onMessage = (message: unknown) => {
          if (!isAnswer(message) || message.id !== id) return;
          done(message.error === undefined ? undefined : new Error(message.error), message.text);
        };
        const done = (error: Error | undefined, text?: string) => {
          clearTimeout(timer);
          process.off('message', onMessage);
          if (error) reject(error);
          else resolve(text ?? '');
        };
        process.on('message', onMessage);
        process.send!({ type: ASK, id } satisfies Ask);
      }),
  };
}

/**
 * In the primary: the sum of every worker's metrics (counters and histograms
 * added, fleet gauges read from the store taken once), for --metrics-port, and
 * the answers to workers asking on behalf of the API port's /metrics.
 */
export function primaryMetricsSource(): MetricsSource {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== ASK) return;
    const { id } = message as Ask;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: ANSWER, id, text } satisfies Answer),
      (error: unknown) => worker.isConnected() && worker.send({ type: ANSWER, id, error: (error as Error).message } satisfies Answer),
    );
  });
  return { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() };
}
