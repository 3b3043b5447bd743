import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Routes } from '../../protocol/constants.js';
import { DEFAULT_FLOW_LIMITS } from '../flow-control/flow-decision.js';
import { deviceControlRoutes, flowAdminRoutes, type FlowRoutesOptions } from '../flow-control/flow-routes.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import type { MetricsSource } from '../metrics/cluster-metrics.js';
import type { IngestTotals } from '../metrics/instruments.js';
import { metricsRoutes, observeRequests } from '../metrics/metrics-routes.js';
import { DEFAULT_POLICY, type GovernancePolicy } from '../governance/policy.js';
import type { SharedSync } from '../shared/shared-service.js';
import { HealthBoard } from '../health.js';
import type { GroupCommitter } from '../ingest/group-commit.js';
import type { Store } from '../store/store.js';
import { adminRoutes } from './admin-routes.js';
import { DEFAULT_HTTP_LIMITS, fastifyTimeouts, guardConnections, type HttpLimits } from './connection-limits.js';
import { allowCrossOrigin } from './cors.js';
import { frontDoorOptions, installErrorHandling, installNotFound } from './errors.js';
import { governanceRoutes } from './governance-routes.js';
import { consoleRoutes } from './console-routes.js';
import { openApiRoutes, operatingRoutes } from './operating-routes.js';
import { checkResponse } from './response-check.js';
import { sharedRoutes, type SharedAuthenticate } from './shared-routes.js';
import { syncRoutes } from './sync-routes.js';
import { telemetryAdminRoutes, telemetryDeviceRoutes } from '../telemetry/telemetry-routes.js';
import type { TelemetryService } from '../telemetry/telemetry-service.js';

export interface AppOptions {
  store: Store;
  /** The telemetry path (device batches, queries, mapping reviews); off when absent. */
  telemetry?: TelemetryService;
  adminToken: string;
  bodyLimit: number;
  /** Where device requests are noted (last seen, transport, pulls); its owner runs and flushes it. */
  activity: ActivityRecorder;
  /** Timeouts and the connection cap; DEFAULT_HTTP_LIMITS when not given. */
  httpLimits?: HttpLimits;
  logger: Logger;
  /** The schema policy ingest applies; the production default (review) when not given. */
  policy?: GovernancePolicy;
  /** Group commit for device batches; each batch commits alone when absent. */
  group?: GroupCommitter;
  /** Called when an operator's decision leaves staged rows to replay. */
  onReplayRequested?: () => void;
  /** Flow control (backpressure, circuit breaker) and MQTT admin routes. */
  flow?: Omit<FlowRoutesOptions, 'store' | 'activity' | 'adminToken' | 'bodyLimit'> & { onIngested?: () => void };
  /** Two-way sync routes, when the server declares shared tables. */
  shared?: SharedSync;
  /** Served at GET /metrics (admin token, viewer and up) when given. */
  metrics?: MetricsSource;
  /** Where the console's live rates come from (every worker's counters under `server --workers`); this process's when absent. */
  ingestTotals?: () => Promise<IngestTotals>;
  /** What `/healthz` reports; the server shares it with the MQTT link. */
  health?: HealthBoard;
  /** Check every JSON answer against its declared schema (api-catalogue.ts); on under NODE_ENV=test. */
  checkResponses?: boolean;
  /** An embedding app's own authentication of two-way requests (instead of the JWT settings). */
  authenticate?: SharedAuthenticate;
  /** Origins of browser apps allowed to call the API (CORS; `*` for any); none when absent. */
  corsOrigins?: readonly string[];
}

const registered = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** The routes an app registered (method and URL template), HEAD routes Fastify adds on its own left out. */
export function registeredRoutes(app: FastifyInstance): readonly { method: string; url: string }[] {
  return registered.get(app) ?? [];
}

/** The cloud's HTTP front door: device sync, health, and the admin API. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const logger = options.logger.child({ component: 'http' });
  // Per-request logs would dominate at ingest rates; refusals and faults are logged by the error handler.
  const limits = options.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger (a pino child, its bindings serialized, on every request): nothing here logs
    // through request.log, and the error handler names method and URL itself.
    childLoggerFactory: (parent) => parent,
    ...fastifyTimeouts(limits),
    ...frontDoorOptions(logger as FastifyBaseLogger),
  });
  // At the root too: the connection guard refuses in a root hook.
  installErrorHandling(app, logger);
  installNotFound(app);
  guardConnections(app, limits, logger);
  allowCrossOrigin(app, options.corsOrigins ?? []);
  app.addHook('onResponse', observeRequests);
  const routes: { method: string; url: string }[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url });
  });
  if (options.checkResponses ?? process.env.NODE_ENV === 'test') app.addHook('onSend', checkResponse);
  await app.register(synclineRoutes, options);
  return app;
}

/**
 * Every Syncline route, as an encapsulated Fastify plugin: its error handler, body
 * parsing and limits apply to these routes only, so it can live inside another app.
 */
export async function synclineRoutes(app: FastifyInstance, options: AppOptions): Promise<void> {
  const logger = options.logger.child({ component: 'http' });
  installErrorHandling(app, logger);
  // The embedding app's own bodyLimit may be smaller than what a batch needs.
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= options.bodyLimit;
  });
  // Every body this API takes is JSON; anything else is refused before a handler sees it.
  app.removeContentTypeParser('text/plain');

  const health = options.health ?? new HealthBoard(logger.child({ component: 'health' }));
  // 503 only when the database is unreachable (this server can do nothing useful); a broker
  // outage leaves HTTP working, so it is reported as degraded with 200.
  app.get(Routes.health, async (_request, reply) => {
    await health.checkDatabase(options.store);
    return reply.status(health.has('database') ? 503 : 200).send(health.report());
  });
  await app.register(syncRoutes, {
    store: options.store,
    bodyLimit: options.bodyLimit,
    logger,
    activity: options.activity,
    policy: options.policy ?? DEFAULT_POLICY,
    ...(options.group ? { group: options.group } : {}),
    ...(options.flow?.onIngested ? { onIngested: options.flow.onIngested } : {}),
  });
  await app.register(adminRoutes, { store: options.store, adminToken: options.adminToken, bodyLimit: options.bodyLimit });
  if (options.telemetry) {
    const telemetry = { telemetry: options.telemetry, activity: options.activity, adminToken: options.adminToken, bodyLimit: options.bodyLimit, ...(options.flow?.onIngested ? { onIngested: options.flow.onIngested } : {}) };
    await app.register(telemetryDeviceRoutes, telemetry);
    await app.register(telemetryAdminRoutes, telemetry);
  }
  await app.register(governanceRoutes, {
    store: options.store,
    adminToken: options.adminToken,
    bodyLimit: options.bodyLimit,
    ...(options.onReplayRequested ? { onReplayRequested: options.onReplayRequested } : {}),
  });
  const flow: FlowRoutesOptions = { store: options.store, activity: options.activity, adminToken: options.adminToken, bodyLimit: options.bodyLimit, limits: options.flow?.limits ?? DEFAULT_FLOW_LIMITS, ...options.flow };
  if (options.shared) {
    await app.register(sharedRoutes, {
      ...options.shared,
      ...(options.authenticate ? { authenticate: options.authenticate } : {}),
      store: options.store,
      activity: options.activity,
      adminToken: options.adminToken,
      bodyLimit: options.bodyLimit,
      logger,
    });
  }
  await app.register(deviceControlRoutes, flow);
  await app.register(flowAdminRoutes, flow);
  await app.register(openApiRoutes);
  await app.register(consoleRoutes);
  const snapshots = options.shared?.snapshots;
  await app.register(operatingRoutes, { store: options.store, adminToken: options.adminToken, ...(options.ingestTotals ? { ingestTotals: options.ingestTotals } : {}), ...(snapshots ? { snapshots: () => ({ open: snapshots.openCount, bytes: snapshots.heldBytes }) } : {}) });
  if (options.metrics) await app.register(metricsRoutes, { store: options.store, adminToken: options.adminToken, registry: options.metrics });
}
