import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SERVER_BODY_LIMIT_BYTES } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { HealthBoard } from './health.js';
import { FlowController } from './flow-control/flow-controller.js';
import { flowLimits, type FlowLimits } from './flow-control/flow-decision.js';
import { governancePolicy, type AdditivePolicy, type GovernancePolicy, type SchemaPolicy } from './governance/policy.js';
import { reconcileReviews } from './governance/reconcile.js';
import { ReplayWorker } from './governance/replay-worker.js';
import { buildApp, registeredRoutes } from './http/build-app.js';
import { httpLimits, type HttpLimits } from './http/connection-limits.js';
import { countStoreErrors } from './metrics/counted-store.js';
import { serverRegistry, startMetricsServer } from './metrics/metrics-routes.js';
import { MqttService, type CloudMqttOptions } from './mqtt/mqtt-service.js';
import { sharedWakeAuth, startSharedSync } from './shared/shared-service.js';
import type { SharedSyncConfig } from './shared/declarations.js';
import { migrate } from './store/migrations.js';
import { TelemetryService } from './telemetry/telemetry-service.js';
import type { Store } from './store/store.js';

export interface CloudServerOptions {
  /** The caller opens and closes the store; the server only uses it. */
  store: Store;
  /** 0 picks a free port (tests). */
  httpPort: number;
  host?: string;
  adminToken: string;
  /** `review` (production default): every new schema waits for an operator. `auto`: first schemas are mirrored as they come. */
  schemaPolicy: SchemaPolicy;
  /** Whether added nullable columns are followed without a review; default `review` under `review`, `allow` under `auto`. */
  additivePolicy?: AdditivePolicy;
  logger: Logger;
  /** Largest request body after decompression; default SERVER_BODY_LIMIT_BYTES. */
  bodyLimit?: number;
  /** Request/headers/idle timeouts and the connection cap of the HTTP front door; defaults DEFAULT_HTTP_LIMITS. */
  http?: Partial<HttpLimits>;
  /** Staged-row replay after approvals: rows per transaction and how often to look for work from other processes. */
  replay?: { chunkRows?: number; pollMs?: number };
  /** The MQTT front door (embedded broker, or an external one with `url`); off when absent. */
  mqtt?: CloudMqttOptions;
  /** Backpressure caps and circuit breaker threshold, and how often flow control looks and resends controls. */
  flow?: Partial<FlowLimits> & { intervalMs?: number; resendMs?: number };
  /** Two-way sync of shared tables; off when absent. The tables are provisioned (or checked) before the server listens. */
  shared?: SharedSyncConfig;
  /** Telemetry: days of values kept (0, the default, keeps everything). */
  telemetryRetentionDays?: number;
  /** Serves /metrics without a token on this port of `host` as well (0 picks a free one); off when absent. */
  metricsPort?: number;
}

const MIN_ADMIN_TOKEN_LENGTH = 16;

/** The cloud service: HTTP and MQTT front doors over a store, the worker replaying staged rows, and flow control. */
export class CloudServer {
  readonly url: string;
  readonly policy: GovernancePolicy;
  /** The MQTT front door, when enabled. */
  readonly mqtt: MqttService | undefined;
  readonly flow: FlowController;
  readonly #app: FastifyInstance;
  readonly #stopWorker: AbortController;
  readonly #worker: Promise<void>;
  readonly #flowRun: Promise<void>;
  #metricsServer: { url: string; close(): Promise<void> } | undefined;
  #telemetryRun: Promise<void> | undefined;

  private constructor(
    app: FastifyInstance,
    url: string,
    policy: GovernancePolicy,
    stopWorker: AbortController,
    worker: Promise<void>,
    flow: { controller: FlowController; running: Promise<void>; mqtt: MqttService | undefined },
  ) {
    this.#app = app;
    this.url = url;
    this.policy = policy;
    this.#stopWorker = stopWorker;
    this.#worker = worker;
    this.flow = flow.controller;
    this.#flowRun = flow.running;
    this.mqtt = flow.mqtt;
  }

  static async start(given: CloudServerOptions): Promise<CloudServer> {
    const options = { ...given, store: countStoreErrors(given.store) };
    if (options.adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
      throw new SynclineError('invalid_config', `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
    }
    const policy = governancePolicy(options.schemaPolicy, options.additivePolicy);
    const bodyLimit = options.bodyLimit ?? SERVER_BODY_LIMIT_BYTES;
    if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) throw new SynclineError('invalid_config', 'the body limit must be an integer of at least 1024 bytes');
    const connectionLimits = httpLimits(options.http);
    const chunkRows = options.replay?.chunkRows;
    if (chunkRows !== undefined && (!Number.isInteger(chunkRows) || chunkRows < 1)) throw new SynclineError('invalid_config', 'replay chunkRows must be a positive integer');
    // Idempotent: a store opened without migrations is brought up to date here.
    await migrate(options.store, { logger: options.logger });
    const governanceLog = options.logger.child({ component: 'governance' });
    await reconcileReviews(options.store, governanceLog);
    const worker = new ReplayWorker({
      store: options.store,
      logger: governanceLog,
      policy,
      ...(chunkRows !== undefined ? { chunkRows } : {}),
      ...(options.replay?.pollMs !== undefined ? { pollMs: options.replay.pollMs } : {}),
    });
    const { intervalMs: flowIntervalMs, resendMs, ...limits } = options.flow ?? {};
    const flow = new FlowController({
      store: options.store,
      logger: options.logger.child({ component: 'flow-control' }),
      limits: flowLimits(limits),
      ...(flowIntervalMs !== undefined ? { intervalMs: flowIntervalMs } : {}),
      ...(resendMs !== undefined ? { resendMs } : {}),
    });
    const shared = options.shared ? await startSharedSync(options.store, options.shared, options.logger) : undefined;
    let mqtt: MqttService | undefined;
    const metrics = serverRegistry({
      store: options.store,
      mqtt: () => mqtt && { ...mqtt.load, stats: mqtt.stats },
      ...(shared ? { snapshots: () => ({ open: shared.snapshots.openCount, bytes: shared.snapshots.heldBytes }) } : {}),
    });
    const health = new HealthBoard(options.logger.child({ component: 'health' }));
    const telemetry = new TelemetryService({ store: options.store, policy, logger: options.logger, retentionDays: options.telemetryRetentionDays ?? 0 });
    await telemetry.maintenance.once();
    const app = await buildApp({
      health,
      metrics,
      telemetry,
      ...(shared ? { shared } : {}),
      store: options.store,
      adminToken: options.adminToken,
      bodyLimit,
      httpLimits: connectionLimits,
      logger: options.logger,
      policy,
      onReplayRequested: () => {
        worker.wake();
        flow.wake();
      },
      flow: { limits: flow.limits, mqttStats: () => mqtt?.stats, onChange: () => flow.wake(), onIngested: () => flow.wake() },
    });
    const host = options.host ?? '127.0.0.1';
    try {
      await app.listen({ port: options.httpPort, host });
    } catch (error) {
      await app.close().catch(() => {});
      throw error;
    }
    if (options.mqtt) {
      try {
        mqtt = await MqttService.start({ health, store: options.store, logger: options.logger, policy, bodyLimit, flow, options: options.mqtt, telemetry, ...(shared ? { sharedWake: sharedWakeAuth(shared) } : {}) });
        const service = mqtt;
        shared?.events.subscribeAll((scope, head) => {
          service.publishWake(scope, head).catch((error: unknown) => options.logger.warn({ err: error, scope }, 'could not publish a wake-up'));
        });
      } catch (error) {
        await app.close().catch(() => {});
        throw error;
      }
    }
    const metricsServer = options.metricsPort === undefined ? undefined : await startMetricsServer(metrics, options.metricsPort, host).catch(async (error: unknown) => {
      await mqtt?.stop().catch(() => {});
      await app.close().catch(() => {});
      throw error;
    });
    const address = app.server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const stopWorker = new AbortController();
    const running = worker.run(stopWorker.signal);
    const flowRunning = flow.run(stopWorker.signal);
    const telemetryRunning = telemetry.maintenance.run(stopWorker.signal);
    options.logger.info({ schema_policy: policy.schema, additive_policy: policy.additive }, 'schema governance ready');
    const server = new CloudServer(app, `http://${shownHost}:${address.port}`, policy, stopWorker, running, { controller: flow, running: flowRunning, mqtt });
    server.#metricsServer = metricsServer;
    server.#telemetryRun = telemetryRunning;
    return server;
  }

  /** Stops MQTT and HTTP intake (answering what is in flight), then lets the replay step in progress commit and stops the workers. */
  /** Every route the HTTP front door registered (method and URL template). */
  get routes(): readonly { method: string; url: string }[] {
    return registeredRoutes(this.#app);
  }

  /** The token-free /metrics URL of `metricsPort`, when one was given. */
  get metricsUrl(): string | undefined {
    return this.#metricsServer?.url;
  }

  async stop(): Promise<void> {
    try {
      await this.#metricsServer?.close();
      await this.mqtt?.stop();
      await this.#app.close();
    } finally {
      this.#stopWorker.abort();
      await this.#worker;
      await this.#flowRun;
      await this.#telemetryRun;
    }
  }
}
