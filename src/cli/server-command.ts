import { randomBytes } from 'node:crypto';
import { parseCorsOrigins } from '../cloud/http/cors.js';
import { governancePolicy, REPLAY_CHUNK_ROWS, type AdditivePolicy, type SchemaPolicy } from '../cloud/governance/policy.js';
import { Routes, SERVER_BODY_LIMIT_BYTES } from '../protocol/constants.js';
import { isSynclineError, SynclineError } from '../protocol/errors.js';
import { createLogger } from './logger.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { httpLimitsConfig, serverHttpOptions } from './server-http-options.js';
import { flowConfig, mqttBanner, mqttConfig, serverMqttOptions } from './server-mqtt-options.js';
import { loadSharedConfig, sharedConfigOptions } from './shared-config-file.js';
import { checkWorkers, MAX_WORKERS, primaryStop, reportListening, runCluster, workerSlot } from './server-workers.js';
import { untilShutdown } from './shutdown.js';

export const serverOptions = {
  httpPort: { flag: 'http-port', env: 'SYNCLINE_HTTP_PORT', kind: 'integer', default: 8080, description: 'HTTP port for the sync and admin API' },
  host: { flag: 'host', env: 'SYNCLINE_HOST', kind: 'string', default: '127.0.0.1', description: 'address to listen on (0.0.0.0 for all interfaces)' },
  data: { flag: 'data', env: 'SYNCLINE_DATA', kind: 'string', default: './.syncline', description: 'PGlite data directory, used when no database URL is given' },
  databaseUrl: { flag: 'database-url', env: 'DATABASE_URL', kind: 'string', description: 'PostgreSQL connection string (instead of PGlite)', secret: true },
  schemaPolicy: {
    flag: 'schema-policy',
    env: 'SYNCLINE_SCHEMA_POLICY',
    kind: 'string',
    default: 'review',
    choices: ['review', 'auto'],
    description: 'review: every new table schema waits for an operator (syncline admin reviews); auto: first schemas are mirrored as they come',
  },
  additivePolicy: {
    flag: 'additive-policy',
    env: 'SYNCLINE_ADDITIVE_POLICY',
    kind: 'string',
    choices: ['review', 'allow'],
    description: 'whether added nullable columns are mirrored without a review (default: review under --schema-policy review, allow under auto)',
  },
  adminToken: { flag: 'admin-token', env: 'SYNCLINE_ADMIN_TOKEN', kind: 'string', description: 'bearer token of the admin API (generated and printed when unset)', secret: true },
  bodyLimit: { flag: 'body-limit', env: 'SYNCLINE_BODY_LIMIT', kind: 'integer', default: SERVER_BODY_LIMIT_BYTES, description: 'largest accepted request body in bytes, after decompression' },
  replayChunkRows: { flag: 'replay-chunk-rows', env: 'SYNCLINE_REPLAY_CHUNK_ROWS', kind: 'integer', default: REPLAY_CHUNK_ROWS, description: 'staged rows replayed per transaction after an approval (progress commits with each chunk)' },
  telemetryRetentionDays: { flag: 'telemetry-retention-days', env: 'SYNCLINE_TELEMETRY_RETENTION_DAYS', kind: 'integer', default: 0, description: 'days of telemetry values kept; older daily partitions are dropped hourly (0 keeps everything)' },
  corsOrigin: {
    flag: 'cors-origin',
    env: 'SYNCLINE_CORS_ORIGIN',
    kind: 'list',
    description: 'let browser apps served from this origin (scheme://host[:port]) call the API; repeatable or a comma list, * for any origin (off by default: browsers keep other origins out)',
  },
  workers: {
    flag: 'workers',
    env: 'SYNCLINE_WORKERS',
    kind: 'integer',
    default: 1,
    description: `server processes sharing the HTTP port, for a fleet beyond one process's main thread (1 to ${MAX_WORKERS}; above 1 needs --database-url, and the embedded MQTT broker runs in the first)`,
  },
  metricsPort: { flag: 'metrics-port', env: 'SYNCLINE_METRICS_PORT', kind: 'integer', description: 'also serve Prometheus /metrics on this port of --host, without a token (off when unset; /metrics on the HTTP port always needs an admin token)' },
  ...serverHttpOptions,
  ...serverMqttOptions,
  ...sharedConfigOptions,
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

type ServerOptions = ReturnType<typeof parseCommand<typeof serverOptions>>['options'];

export function generateAdminToken(): string {
  return `sla_${randomBytes(24).toString('base64url')}`;
}

/** The database URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable DATABASE_URL)';
  }
}

function storeError(error: unknown, options: { databaseUrl: string; data: string }): SynclineError {
  if (isSynclineError(error)) return error;
  const why = error instanceof Error ? error.message : String(error);
  const where = options.databaseUrl ? `PostgreSQL at ${redactUrl(options.databaseUrl)}` : `PGlite in ${options.data}`;
  const todo = options.databaseUrl ? 'check DATABASE_URL (--database-url): the server must be running and the database must exist' : 'check --data (SYNCLINE_DATA): the directory must be writable and hold a PGlite database';
  return new SynclineError('invalid_config', `cannot open the store (${where}): ${why}; ${todo}`, { field: options.databaseUrl ? 'database-url' : 'data' }, { cause: error });
}

export async function runServer(argv: string[]): Promise<number> {
  const { options } = parseCommand(serverOptions, argv);
  if (options.help) {
    process.stdout.write(`${helpText('syncline server [options]', 'Runs the cloud side: device ingest, admin API, mirrors.', serverOptions)}\n`);
    return 0;
  }
  checkWorkers(options.workers, options.databaseUrl ?? '');
  const slot = workerSlot();
  if (slot === undefined) return serve(options, undefined);
  try {
    return await serve(options, slot);
  } finally {
    // A worker's IPC channel to the primary would keep it alive after it stopped, or after it failed to start.
    if (process.connected) process.disconnect();
  }
}

/** One server process: a plain server, a worker in `slot`, or (with --workers above 1 and no slot) the primary. */
async function serve(options: ServerOptions, slot: number | undefined): Promise<number> {
  const logger = createLogger();
  // Printed only once the server listens: a run that fails to start must not hand out a token that never worked.
  const adminToken = options.adminToken || generateAdminToken();
  const configuredMqtt = mqttConfig(options, options.host);
  // A list flag given nowhere is absent (undefined), whatever its type says.
  const corsOrigins = parseCorsOrigins(options.corsOrigin ?? []);
  const shared = await loadSharedConfig(options);
  // Loaded here, not at the top: `server --help` answers without loading the server.
  const [{ CloudServer }, { openStore }] = await Promise.all([import('../cloud/server.js'), import('../cloud/store/open-store.js')]);
  const store = await openStore({ databaseUrl: options.databaseUrl, dataDir: options.data, logger }).catch((error: unknown) => {
    throw storeError(error, options);
  });
  const policy = governancePolicy(options.schemaPolicy as SchemaPolicy, options.additivePolicy as AdditivePolicy | undefined);
  const banner = (url: string, mqttUrl: string | undefined, mqttTlsUrl: string | undefined, metricsUrl: string | undefined) => {
    if (!options.adminToken) {
      process.stdout.write(`No SYNCLINE_ADMIN_TOKEN set; this run's admin token is:\n  ${adminToken}\nSet SYNCLINE_ADMIN_TOKEN to keep one across restarts.\n`);
    }
    const workers = options.workers > 1 ? `; ${options.workers} worker processes` : '';
    process.stdout.write(`syncline server listening on ${url} (store: ${options.databaseUrl ? 'PostgreSQL' : `PGlite in ${options.data}`}; schema policy: ${policy.schema}, additive: ${policy.additive}${workers})\n`);
    process.stdout.write(`web console: ${url}${Routes.console} (sign in with ${options.adminToken ? 'the admin token of SYNCLINE_ADMIN_TOKEN / --admin-token' : "this run's admin token above"}, or a role token from \`syncline admin token create\`)\n`);
    if (metricsUrl) process.stdout.write(`metrics (no token): ${metricsUrl}\n`);
    process.stdout.write(`${mqttBanner(configuredMqtt, mqttUrl, mqttTlsUrl)}\n`);
    if (shared) process.stdout.write(`two-way sync: ${shared.tables.map((t) => `${t.name} (${t.direction}, ${t.conflict})`).join(', ')}\n`);
  };
  if (options.workers > 1 && slot === undefined) {
    // The primary: the store was opened (and migrated) once above, so a bad URL fails here with one line and the workers start on an up-to-date schema.
    await store.close();
    return runCluster({
      workers: options.workers,
      adminToken,
      host: options.host,
      ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
      logger,
      onListening: (first, metricsUrl) => banner(first.url, first.mqttUrl, first.mqttTlsUrl, metricsUrl),
    });
  }
  const shutdown = untilShutdown();
  // Listened for from the start: a stop the primary sends while this worker is still starting must not be lost.
  const stopped = slot === undefined ? shutdown.done : Promise.race([shutdown.done, primaryStop()]);
  const server = await CloudServer.start({
    store,
    httpPort: options.httpPort,
    host: options.host,
    adminToken,
    schemaPolicy: options.schemaPolicy as SchemaPolicy,
    ...(options.additivePolicy ? { additivePolicy: options.additivePolicy as AdditivePolicy } : {}),
    telemetryRetentionDays: options.telemetryRetentionDays,
    bodyLimit: options.bodyLimit,
    http: httpLimitsConfig(options),
    replay: { chunkRows: options.replayChunkRows },
    logger,
    ...(configuredMqtt ? { mqtt: configuredMqtt } : {}),
    flow: flowConfig(options),
    ...(shared ? { shared } : {}),
    ...(options.metricsPort !== undefined && slot === undefined ? { metricsPort: options.metricsPort } : {}),
    ...(corsOrigins.length > 0 ? { corsOrigins } : {}),
    ...(slot !== undefined ? { clusterWorker: true } : {}),
  }).catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  if (slot === undefined) banner(server.url, server.mqtt?.url, server.mqtt?.tlsUrl, server.metricsUrl);
  else reportListening({ url: server.url, ...(server.mqtt?.url ? { mqttUrl: server.mqtt.url } : {}), ...(server.mqtt?.tlsUrl ? { mqttTlsUrl: server.mqtt.tlsUrl } : {}) });
  const why = await stopped;
  logger.info({ signal: why }, 'shutting down');
  await server.stop();
  await store.close();
  return 0;
}
