import type { Agent } from '../device/agent.js';
import { PublisherDefaults } from '../protocol/constants.js';
import { isSynclineError, SynclineError } from '../protocol/errors.js';
import { agentHeap } from './agent-heap.js';
import { agentTransport, agentTransportOptions } from './agent-transport-options.js';
import { createLogger } from './logger.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { perSecond, progressLine } from './progress.js';
import { untilShutdown } from './shutdown.js';

export const agentOptions = {
  db: { flag: 'db', env: 'SYNCLINE_DB', kind: 'string', required: true, description: 'the SQLite file an app writes' },
  server: { flag: 'server', env: 'SYNCLINE_SERVER', kind: 'string', description: 'base URL of the syncline server, e.g. http://127.0.0.1:8080 (required over HTTP)' },
  token: { flag: 'token', env: 'SYNCLINE_DEVICE_TOKEN', kind: 'string', secret: true, description: 'device token from `syncline admin device create` (over MQTT: the password, unless --mqtt-cert)' },
  once: { flag: 'once', kind: 'boolean', default: false, description: 'drain the journal (with --shared: sync until nothing is pending), then exit; non-zero with the reason if it cannot' },
  onceTimeoutMs: { flag: 'once-timeout-ms', env: 'SYNCLINE_ONCE_TIMEOUT_MS', kind: 'integer', default: 60_000, description: 'with --once: give up after this long when the server cannot be reached (retrying meanwhile)' },
  statusIntervalMs: { flag: 'status-interval-ms', env: 'SYNCLINE_STATUS_INTERVAL_MS', kind: 'integer', default: 60_000, description: 'log a one-line status (rows shipped, pending, retries) at info level this often; 0 turns it off' },
  rebindDevice: { flag: 'rebind-device', kind: 'boolean', default: false, description: 'let this device take over a file another device shipped before: every table is snapshotted again, so its mirror is complete' },
  flushIntervalMs: { flag: 'flush-interval-ms', env: 'SYNCLINE_FLUSH_INTERVAL_MS', kind: 'integer', default: PublisherDefaults.flushIntervalMs, description: 'send a partial batch after this long' },
  maxBatchRows: { flag: 'max-batch-rows', env: 'SYNCLINE_MAX_BATCH_ROWS', kind: 'integer', default: PublisherDefaults.maxBatchRows, description: 'rows per batch at most' },
  retryMaxMs: { flag: 'retry-max-ms', env: 'SYNCLINE_RETRY_MAX_MS', kind: 'integer', default: PublisherDefaults.retryMaxMs, description: 'the longest wait between attempts while the server cannot be reached (exponential backoff with jitter up to this; with --shared --once at most 5 s)' },
  maxBatchBytes: { flag: 'max-batch-bytes', env: 'SYNCLINE_MAX_BATCH_BYTES', kind: 'integer', default: PublisherDefaults.maxBatchBytes, description: 'encoded bytes per batch at most' },
  telemetry: { flag: 'telemetry', env: 'SYNCLINE_TELEMETRY', kind: 'list', description: 'ship TABLE as an append-only telemetry table, read by a cursor without triggers: TABLE (rowid order; needs an INTEGER PRIMARY KEY) or TABLE=TIME_COLUMN; updates and deletes are not shipped' },
  ...agentTransportOptions,
  shared: { flag: 'shared', kind: 'boolean', default: false, description: "two-way sync of the server's shared tables (push, pull, conflicts) instead of edge replication; needs --server and --jwt" },
  jwt: { flag: 'jwt', env: 'SYNCLINE_JWT', kind: 'string', secret: true, description: 'with --shared: the JWT naming the user (sub) and the device (sid claim, when it has one); checked here for its form, by the server for the rest' },
  source: { flag: 'source', env: 'SYNCLINE_SOURCE', kind: 'string', description: "with --shared: this device's source id when the JWT has no sid claim (must equal it when it has one; default: one generated and kept in the file)" },
  pollMs: { flag: 'poll-ms', env: 'SYNCLINE_POLL_MS', kind: 'integer', default: 30_000, description: 'with --shared: sync at least this often, besides the server\'s wake-ups and local writes' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

/**
 * `--once` on a terminal: one line rewritten in place (rows shipped, journal
 * left, rate) on stderr. In a pipe it prints nothing: scripts read the final status.
 */
function drainProgress(agent: Agent): { stop(): void } | undefined {
  const line = progressLine();
  if (!line) return undefined;
  const started = Date.now();
  let stopped = false;
  const draw = async () => {
    const s = await agent.status();
    if (s.running && !stopped) line.show(`draining ${s.db}: ${s.rows_acked} rows shipped, ${s.pending_total} left in the journal, ${perSecond(s.rows_acked, started)} rows/s`);
  };
  // A status read that fails (the agent closing the file) only skips one redraw.
  const timer = setInterval(() => void draw().catch(() => undefined), 1000);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      line.end();
    },
  };
}

export async function runAgent(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(`${helpText('syncline agent --db FILE (--server URL | --transport mqtt --mqtt-url URL --device-id ID) --token TOKEN [--once]\n       syncline agent --db FILE --server URL --shared --jwt JWT [--source ID] [--once]', 'Captures every change of a SQLite file with triggers and ships it to the cloud.', agentOptions)}\n`);
    return 0;
  }
  const { options } = parseCommand(agentOptions, argv);
  // Below the first backoff step an unreachable server would be retried in a tight loop.
  if (options.retryMaxMs < PublisherDefaults.retryBaseMs) throw new SynclineError('invalid_config', `--retry-max-ms must be at least ${PublisherDefaults.retryBaseMs}`, { field: 'retryMaxMs' });
  const heap = agentHeap();
  const logger = createLogger();
  // The device engine loads here, not at the top: `agent --help` answers without it.
  if (options.shared) return (await import('./shared-agent.js')).runSharedAgent({ ...options, onceTimeoutMs: options.onceTimeoutMs }, logger);
  const { transport, identity, where } = await agentTransport(options, logger);
  const [{ Agent }, { parseTelemetrySpec }] = await Promise.all([import('../device/agent.js'), import('../device/telemetry/telemetry-table.js')]);
  const shutdown = untilShutdown();
  const agent = new Agent({
    dbPath: options.db,
    transport,
    logger,
    onDrained: heap.burstEnded,
    once: options.once,
    ...(options.telemetry ? { telemetry: options.telemetry.map(parseTelemetrySpec) } : {}),
    identity,
    rebindDevice: options.rebindDevice,
    statusIntervalMs: options.statusIntervalMs,
    // --once retries until its deadline, not for a number of attempts: the time is what a person waits.
    ...(options.once ? { onceDeadlineMs: options.onceTimeoutMs } : {}),
    publisher: {
      flushIntervalMs: options.flushIntervalMs,
      maxBatchRows: options.maxBatchRows,
      maxBatchBytes: options.maxBatchBytes,
      retryMaxMs: options.retryMaxMs,
      ...(options.once ? { maxAttempts: Number.POSITIVE_INFINITY } : {}),
    },
  });
  const progress = options.once ? drainProgress(agent) : undefined;
  try {
    await agent.run(shutdown.signal);
  } catch (error) {
    throw isSynclineError(error) && error.code === 'transport_failed' ? new SynclineError('transport_failed', `${error.message} (tried ${where})`, error.context, { cause: error }) : error;
  } finally {
    progress?.stop();
    await transport.close?.();
  }
  if (options.once) process.stdout.write(`${JSON.stringify(await agent.status())}\n`);
  return 0;
}
