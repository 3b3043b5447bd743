import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { ingestTotals, type IngestTotals } from './instruments.js';

/** What /metrics serves: one registry, or the sum of a cluster's. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** A worker's question to the primary, and the answer. */
const ASK = 'syncline:metrics';
const ANSWER = 'syncline:metrics-answer';
/** A worker's question for the ingest totals summed over every worker; the primary puts TOTALS to each worker and sums. */
const SUM_ASK = 'syncline:ingest-sum';
const SUM_ANSWER = 'syncline:ingest-sum-answer';
const TOTALS = 'syncline:ingest-totals';
const TOTALS_ANSWER = 'syncline:ingest-totals-answer';
/** prom-client answers the primary's own request within 5 s or fails it; a worker waits a little longer. */
const ANSWER_WAIT_MS = 6_000;

interface Message {
  type: string;
  id: string;
  text?: string;
  totals?: IngestTotals;
  error?: string;
}

function isMessage(message: unknown, type: string): message is Message {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** Either end of a worker's IPC channel: the worker's `process`, or the primary's handle on a worker. */
interface Channel {
  send(message: Message): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** Sends `type` over the channel and resolves with the answer of `answerType` to it (the other end is a process away: a bounded wait). */
function ask(channel: Channel, type: string, answerType: string, who: string): Promise<Message> {
  return new Promise<Message>((resolve, reject) => {
    const id = randomUUID();
    const timer = setTimeout(() => done(new Error(`${who} did not answer within ${ANSWER_WAIT_MS} ms`)), ANSWER_WAIT_MS);
    const onMessage = (message: unknown) => {
      if (!isMessage(message, answerType) || message.id !== id) return;
      done(message.error === undefined ? undefined : new Error(message.error), message);
    };
    const done = (error: Error | undefined, message?: Message) => {
      clearTimeout(timer);
      channel.off('message', onMessage);
      if (error) reject(error);
      else resolve(message!);
    };
    channel.on('message', onMessage);
    channel.send({ type, id });
  });
}

/** This worker's end of the channel to the primary. */
const toPrimary: Channel = {
  send: (message) => process.send!(message),
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener),
};

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
  process.on('message', (message: unknown) => {
    if (!isMessage(message, TOTALS)) return;
    ingestTotals().then((totals) => process.send?.({ type: TOTALS_ANSWER, id: message.id, totals } satisfies Message));
  });
  return { contentType: local.contentType, metrics: async () => (await ask(toPrimary, ASK, ANSWER, "the server's primary process")).text ?? '' };
}

/** In a worker: the ingest counters summed over every worker, for the console's live rates. */
export async function clusterIngestTotals(): Promise<IngestTotals> {
  const { totals } = await ask(toPrimary, SUM_ASK, SUM_ANSWER, "the server's primary process");
  if (!totals) throw new Error('the primary answered without ingest totals');
  return totals;
}

/**
 * In the primary: the sum of every worker's metrics (counters and histograms
 * added, fleet gauges read from the store taken once), for --metrics-port, and
 * the answers to workers asking on behalf of the API port's /metrics.
 */
export function primaryMetricsSource(): MetricsSource {
  const aggregator = new AggregatorRegistry();
  const reply = (worker: Worker, answer: Message) => worker.isConnected() && worker.send(answer);
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (isMessage(message, ASK)) {
      aggregator.clusterMetrics().then(
        (text) => reply(worker, { type: ANSWER, id: message.id, text }),
        (error: unknown) => reply(worker, { type: ANSWER, id: message.id, error: (error as Error).message }),
      );
    } else if (isMessage(message, SUM_ASK)) {
      sumOfWorkers().then(
        (totals) => reply(worker, { type: SUM_ANSWER, id: message.id, totals }),
        (error: unknown) => reply(worker, { type: SUM_ANSWER, id: message.id, error: (error as Error).message }),
      );
    }
  });
  return { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() };
}

/** Asks every connected worker for its ingest totals and adds them up; a worker that does not answer in time fails the sum. */
function sumOfWorkers(): Promise<IngestTotals> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const one = async (worker: Worker): Promise<IngestTotals> => {
    const { totals } = await ask(worker, TOTALS, TOTALS_ANSWER, `server worker ${worker.process.pid}`);
    if (!totals) throw new Error('a worker answered without totals');
    return totals;
  };
  return Promise.all(workers.map(one)).then((all) =>
    all.reduce((sum, t) => ({ batches: sum.batches + t.batches, rows: sum.rows + t.rows, acks: sum.acks + t.acks, ackSeconds: sum.ackSeconds + t.ackSeconds }), { batches: 0, rows: 0, acks: 0, ackSeconds: 0 }),
  );
}
