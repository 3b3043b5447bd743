import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CloudServer } from '../cloud/server.js';
import type { SharedSyncConfig } from '../cloud/shared/declarations.js';
import type { Store } from '../cloud/store/store.js';
import { deviceCreatedSchema, deviceSchema, lineageListSchema } from '../protocol/admin-answers.js';
import { Routes } from '../protocol/constants.js';
import { isSynclineError } from '../protocol/errors.js';
import { AdminClient } from './admin-client.js';
import { createLogger } from './logger.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { formatTable } from './output.js';
import { generateAdminToken } from './server-command.js';
import { mqttBanner, mqttConfig } from './server-mqtt-options.js';
import { shutdownStep, untilShutdown } from './shutdown.js';

export const devOptions = {
  httpPort: { flag: 'http-port', env: 'SYNCLINE_HTTP_PORT', kind: 'integer', default: 8080, description: 'HTTP port (falls back to a free one when taken)' },
  data: { flag: 'data', env: 'SYNCLINE_DATA', kind: 'string', default: './.syncline/dev', description: 'where the PGlite data and the demo SQLite file live' },
  mqttPort: { flag: 'mqtt-port', env: 'SYNCLINE_MQTT_PORT', kind: 'integer', description: 'embedded MQTT broker port; 0 turns it off (default 1883, or 18830 when 1883 is taken)' },
  intervalMs: { flag: 'interval-ms', kind: 'integer', default: 1000, description: 'how often the demo app writes sensor readings' },
  flushIntervalMs: { flag: 'flush-interval-ms', kind: 'integer', default: 2000, description: 'agent flush interval' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

// Built (dist/) the demo app is plain JavaScript; from src/ (tests, tsx) it needs tsx's loader too.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const DEMO_APP = fileURLToPath(new URL(FROM_SOURCE ? './demo-app.ts' : './demo-app.js', import.meta.url));
const DEMO_APP_ARGS = FROM_SOURCE ? ['--import', import.meta.resolve('tsx'), DEMO_APP] : [DEMO_APP];

/** The agent attaches to an app's existing file, so wait for the demo app to create it. */
async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`the demo app did not create ${path} within ${timeoutMs} ms`);
    await delay(100);
  }
}

async function startServer(options: {
  httpPort: number;
  mqttPort: number | undefined;
  store: Store;
  adminToken: string;
  logger: ReturnType<typeof createLogger>;
  shared: SharedSyncConfig;
}): Promise<CloudServer> {
  const mqtt = mqttConfig({ mqttPort: options.mqttPort }, '127.0.0.1');
  const { CloudServer } = await import('../cloud/server.js');
  const start = (httpPort: number) =>
    CloudServer.start({ store: options.store, httpPort, host: '127.0.0.1', adminToken: options.adminToken, schemaPolicy: 'auto', logger: options.logger, shared: options.shared, ...(mqtt ? { mqtt } : {}) });
  try {
    return await start(options.httpPort);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    process.stdout.write(`port ${options.httpPort} is in use; using a free port instead (pass --http-port to choose)\n`);
    return start(0);
  }
}

export async function runDev(argv: string[]): Promise<number> {
  const { options } = parseCommand(devOptions, argv);
  if (options.help) {
    process.stdout.write(`${helpText('syncline dev [options]', 'Runs a server on PGlite plus a demo device, all on this machine.', devOptions)}\n`);
    return 0;
  }
  const logger = createLogger(process.env.SYNCLINE_LOG_LEVEL ?? 'warn');
  const dataDir = resolve(options.data);
  mkdirSync(dataDir, { recursive: true });
  const dbPath = join(dataDir, 'demo.db');
  // Loaded here, not at the top: `dev --help` answers without loading the server and the device engine.
  const [{ Agent }, { openStore }, { HttpTransport }, { demoSecret, demoSharedConfig, demoToken, DEMO_USER, startSharedDemo }, { devStatePath, readDevState, writeDevState }] =
    await Promise.all([
      import('../device/agent.js'),
      import('../cloud/store/open-store.js'),
      import('../transport/http-transport.js'),
      import('./dev-shared-demo.js'),
      import('./dev-state.js'),
    ]);
  const kept = readDevState(dataDir);
  const adminToken = process.env.SYNCLINE_ADMIN_TOKEN || kept?.admin_token || generateAdminToken();
  const secret = kept?.jwt_secret ?? demoSecret();
  const shutdown = untilShutdown();

  process.stdout.write(`${kept ? 'resuming' : 'starting'} PGlite in ${join(dataDir, 'pglite')} ...\n`);
  const store = await openStore({ dataDir: join(dataDir, 'pglite'), logger });
  const server = await startServer({ httpPort: options.httpPort, mqttPort: options.mqttPort, store, adminToken, logger, shared: demoSharedConfig(secret) });
  const admin = new AdminClient(server.url, adminToken);
  const device = await demoDevice(admin, kept?.device ?? null);
  writeDevState(dataDir, { admin_token: adminToken, jwt_secret: secret, device });

  const app = spawn(process.execPath, [...DEMO_APP_ARGS, dbPath, String(options.intervalMs)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
  await waitForFile(dbPath, 30_000);
  const agent = new Agent({
    dbPath,
    transport: new HttpTransport({ serverUrl: server.url, token: device.token }),
    // A device created afresh (the PGlite data was removed) takes the file over with a fresh snapshot.
    identity: { token: device.token, deviceId: device.device_id },
    rebindDevice: device !== kept?.device,
    logger: logger.child({ component: 'agent' }),
    publisher: { flushIntervalMs: options.flushIntervalMs },
  });
  const agentDone = agent.run(shutdown.signal).catch((error: unknown) => {
    process.stderr.write(`agent stopped: ${isSynclineError(error) ? error.message : String(error)}\n`);
  });
  const shared = await startSharedDemo({ serverUrl: server.url, secret, dataDir, intervalMs: options.intervalMs, logger: logger.child({ component: 'shared-demo' }) });

  process.stdout.write(
    [
      '',
      'Syncline dev is running.',
      `  server       ${server.url}  (store: PGlite)`,
      `  console      ${server.url}${Routes.console}  (sign in with the admin token)`,
      `  mqtt         ${mqttBanner(mqttConfig({ mqttPort: options.mqttPort }, '127.0.0.1'), server.mqtt?.url, server.mqtt?.tlsUrl)}`,
      `  demo app     writes ${dbPath} every ${options.intervalMs} ms (settings, sensor_readings)`,
      `  device       ${device.device_id}`,
      `  two-way      phone.db and laptop.db in ${dataDir} share a todos table (user ${DEMO_USER}); each edits it, both stay equal`,
      `  admin token  ${adminToken}`,
      '',
      'See the mirrored rows:',
      `  SYNCLINE_ADMIN_TOKEN=${adminToken} npx syncline admin lineages --server ${server.url}`,
      `  SYNCLINE_ADMIN_TOKEN=${adminToken} npx syncline admin mirror-rows <lineage-id> --server ${server.url}`,
      `  curl -H "authorization: Bearer ${adminToken}" ${server.url}${Routes.lineages}`,
      'Run a third two-way device against the shared todos (any SQLite file):',
      `  npx syncline agent --shared --db ./tablet.db --server ${server.url} --jwt ${await demoToken(secret, 'tablet')}`,
      '',
      `Ctrl-C stops everything; the next start resumes with the same device, admin token and JWT secret (kept in ${devStatePath(dataDir)}).`,
      '',
    ].join('\n'),
  );

  const report = setInterval(() => {
    admin
      .request('GET', Routes.lineages, lineageListSchema)
      .then(async ({ lineages }) => process.stdout.write(`\n${formatTable(lineages, ['source_table', 'status', 'last_seq', 'rows_applied', 'mirror_table'])}\n${await shared.status()}\n`))
      .catch(() => {});
  }, 10_000);

  const signal = await shutdown.done;
  clearInterval(report);
  process.stdout.write(`\n${signal}: stopping ...\n`);
  const stopped: string[] = [];
  await shutdownStep(logger, 'two-way devices', shared.stop());
  stopped.push(`two-way devices ${shared.devices.map((d) => d.source).join(', ')}`);
  const appExited = app.exitCode === null && app.signalCode === null ? once(app, 'exit') : Promise.resolve();
  app.kill('SIGTERM');
  await shutdownStep<unknown>(logger, 'demo app', appExited);
  stopped.push(`demo app (pid ${app.pid})`);
  await shutdownStep(logger, 'agent', agentDone);
  const status = await agent.status();
  stopped.push(`agent (${status.rows_acked} rows shipped this run, ${status.pending_total} pending)`);
  await shutdownStep(logger, 'server', server.stop());
  stopped.push(`server ${server.url}`);
  await shutdownStep(logger, 'PGlite', store.close());
  stopped.push('PGlite');
  process.stdout.write(`stopped: ${stopped.join('; ')}.\n`);
  return 0;
}

/** The kept demo device when the server still knows it (and it is not revoked), else a new one. */
async function demoDevice(admin: AdminClient, kept: { device_id: string; token: string } | null): Promise<{ device_id: string; token: string }> {
  if (kept) {
    const known = await admin.request('GET', Routes.device.replace(':id', encodeURIComponent(kept.device_id)), deviceSchema).catch(() => undefined);
    if (known && known.revoked_at === null) return kept;
  }
  return admin.request('POST', Routes.devices, deviceCreatedSchema, { name: `demo-${Date.now()}` });
}
