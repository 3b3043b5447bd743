import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { newMqttStats, type MqttStats } from '../mqtt/mqtt-stats.js';
import { ingestTotals, type IngestTotals } from './instruments.js';

/** What /metrics serves: one registry, or the sum of a cluster's. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** A worker's question to the primary, and the answer. */
const ASK = 'syncline:metrics';
const ANSWER = 'syncline:metrics-answer';
/** A worker's question for counters summed over every worker; the primary puts COUNTS to each worker and sums. */
const SUM_ASK = 'syncline:counter-sum';
const SUM_ANSWER = 'syncline:counter-sum-answer';
const COUNTS = 'syncline:counters';
const COUNTS_ANSWER = 'syncline:counters-answer';
/** prom-client answers the primary's own request within 5 s or fails it; a worker waits a little longer. */
const ANSWER_WAIT_MS = 6_000;

/** Counters a worker keeps in memory that the whole server's answer must add up: ingest totals (the console's live rates), the MQTT front door's. */
type CounterSet = 'ingest' | 'mqtt';
type Counts = Record<string, number>;

interface Message {
  type: string;
  id: string;
  text?: string;
  set?: CounterSet;
  /** A worker's counters of `set`, or null when it keeps none (no MQTT front door). */
  counts?: Counts | null;
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
function ask(channel: Channel, question: { type: string; set?: CounterSet }, answerType: string, who: string): Promise<Message> {
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
    channel.send({ ...question, id });
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
 * every worker over IPC), answers the primary's questions for its in-memory
 * counters, and returns what the API port's /metrics serves: the whole server's
 * figures from the primary, not the one worker that took the scrape.
 */
export function workerMetricsSource(local: Registry, mqttStats: () => MqttStats | undefined): MetricsSource {
  // The constructor installs prom-client's worker-side listener; the instance itself is not used.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([local]);
  const countsOf = async (set: CounterSet | undefined): Promise<Counts | null> => {
    if (set !== 'mqtt') return { ...(await ingestTotals()) };
    const stats = mqttStats();
    return stats ? { ...stats } : null;
  };
  process.on('message', (message: unknown) => {
    if (!isMessage(message, COUNTS)) return;
    countsOf(message.set).then((counts) => process.send?.({ type: COUNTS_ANSWER, id: message.id, counts } satisfies Message));
  });
  return { contentType: local.contentType, metrics: async () => (await ask(toPrimary, { type: ASK }, ANSWER, "the server's primary process")).text ?? '' };
}

/** In a worker: `set`'s counters summed over every worker that keeps them (null when none does). */
async function clusterSum(set: CounterSet): Promise<Counts | null> {
  const { counts } = await ask(toPrimary, { type: SUM_ASK, set }, SUM_ANSWER, "the server's primary process");
  if (counts === undefined) throw new Error(`the primary answered without the ${set} counters`);
  return counts;
}

/** In a worker: the ingest counters summed over every worker, for the console's live rates. */
export async function clusterIngestTotals(): Promise<IngestTotals> {
  const sum = (await clusterSum('ingest')) ?? {};
  return { batches: sum.batches ?? 0, rows: sum.rows ?? 0, acks: sum.acks ?? 0, ackSeconds: sum.ackSeconds ?? 0 };
}

/** In a worker: the MQTT front door's counters summed over every worker's broker (GET /v1/admin/mqtt/stats), undefined without MQTT. */
export async function clusterMqttStats(): Promise<MqttStats | undefined> {
  const sum = await clusterSum('mqtt');
  if (!sum) return undefined;
  const stats = newMqttStats();
  for (const key of Object.keys(stats) as (keyof MqttStats)[]) stats[key] = sum[key] ?? 0;
  return stats;
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
      sumOfWorkers(message.set ?? 'ingest').then(
        (counts) => reply(worker, { type: SUM_ANSWER, id: message.id, counts }),
        (error: unknown) => reply(worker, { type: SUM_ANSWER, id: message.id, error: (error as Error).message }),
      );
    }
  });
  return { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() };
}

/** Asks every connected worker for its `set` counters and adds them up key by key; a worker that does not answer in time fails the sum. */
async function sumOfWorkers(set: CounterSet): Promise<Counts | null> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const answers = await Promise.all(workers.map(async (worker) => (await ask(worker, { type: COUNTS, set }, COUNTS_ANSWER, `server worker ${worker.process.pid}`)).counts ?? null));
  let sum: Counts | null = null;
  for (const counts of answers) {
    if (!counts) continue;
    sum ??= {};
    for (const [key, value] of Object.entries(counts)) sum[key] = (sum[key] ?? 0) + value;
  }
  return sum;
}
