import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { prepareCloud, type CloudServiceOptions } from './cloud-services.js';
import type { FlowController } from './flow-control/flow-controller.js';
import type { GovernancePolicy } from './governance/policy.js';
import { buildApp, registeredRoutes } from './http/build-app.js';
import { closingLettingRequestsFinish, httpLimits, type HttpLimits } from './http/connection-limits.js';
import { HealthBoard } from './health.js';
import { countStoreErrors } from './metrics/counted-store.js';
import { clusterIngestTotals, clusterMqttStats, workerMetricsSource } from './metrics/cluster-metrics.js';
import { serverRegistry, startMetricsServer } from './metrics/metrics-routes.js';
import { MqttService, type CloudMqttOptions } from './mqtt/mqtt-service.js';
import { sharedWakeAuth } from './shared/shared-service.js';

export interface CloudServerOptions extends CloudServiceOptions {
  /** 0 picks a free port (tests). */
  httpPort: number;
  host?: string;
  /** Request/headers/idle timeouts and the connection cap of the HTTP front door; defaults DEFAULT_HTTP_LIMITS. */
  http?: Partial<HttpLimits>;
  /** The MQTT front door (embedded broker, or an external one with `url`); off when absent. */
  mqtt?: CloudMqttOptions;
  /** Serves /metrics without a token on this port of `host` as well (0 picks a free one); off when absent. */
  metricsPort?: number;
  /** Origins of browser apps allowed to call the API from other origins (CORS; `*` for any); none when absent. */
  corsOrigins?: readonly string[];
  /**
   * This process is one worker of `syncline server --workers N`: /metrics on the
   * API port serves the primary's sum over every worker (the primary serves
   * --metrics-port itself, so `metricsPort` is not given to workers).
   */
  clusterWorker?: boolean;
}

/** The cloud service: HTTP and MQTT front doors over a store, the worker replaying staged rows, and flow control. */
export class CloudServer {
  readonly url: string;
  readonly policy: GovernancePolicy;
  /** The MQTT front door, when enabled. */
  readonly mqtt: MqttService | undefined;
  readonly flow: FlowController;
  readonly #app: FastifyInstance;
  readonly #closeApp: (close: () => Promise<void>) => Promise<void>;
  readonly #stopWorker: AbortController;
  readonly #worker: Promise<void>;
  #metricsServer: { url: string; close(): Promise<void> } | undefined;

  private constructor(
    app: FastifyInstance,
    url: string,
    policy: GovernancePolicy,
    stopWorker: AbortController,
    worker: Promise<void>,
    flow: { controller: FlowController; mqtt: MqttService | undefined },
    closeApp: (close: () => Promise<void>) => Promise<void>,
  ) {
    this.#app = app;
    this.#closeApp = closeApp;
    this.url = url;
    this.policy = policy;
    this.#stopWorker = stopWorker;
    this.#worker = worker;
    this.flow = flow.controller;
    this.mqtt = flow.mqtt;
  }

  static async start(given: CloudServerOptions): Promise<CloudServer> {
    const options = { ...given, store: countStoreErrors(given.store) };
    const connectionLimits = httpLimits(options.http);
    const services = await prepareCloud(options);
    const { policy, bodyLimit, flow, shared } = services;
    let mqtt: MqttService | undefined;
    const registry = serverRegistry({
      store: options.store,
      mqtt: () => mqtt && { ...mqtt.load, stats: mqtt.stats },
      ...(shared ? { snapshots: () => ({ open: shared.snapshots.openCount, bytes: shared.snapshots.heldBytes }) } : {}),
    });
    const metrics = options.clusterWorker ? workerMetricsSource(registry, () => mqtt?.stats) : registry;
    const clusterWide = options.clusterWorker ? { ingestTotals: clusterIngestTotals } : {};
    // A worker's own MQTT counters are its broker's share of the devices: the route answers with every worker's sum.
    const mqttStats = options.clusterWorker ? clusterMqttStats : async () => mqtt?.stats;
    const health = new HealthBoard(options.logger.child({ component: 'health' }));
    const app = await buildApp({ ...services.routes(mqttStats), metrics, ...clusterWide, health, httpLimits: connectionLimits, ...(options.corsOrigins ? { corsOrigins: options.corsOrigins } : {}) });
    // Before listen: the stop has to know every connection.
    const closeApp = closingLettingRequestsFinish(app.server);
    const host = options.host ?? '127.0.0.1';
    try {
      await app.listen({ port: options.httpPort, host });
    } catch (error) {
      await app.close().catch(() => {});
      throw error;
    }
    if (options.mqtt) {
      try {
        mqtt = await MqttService.start({ health, activity: services.activity, ...(options.clusterWorker ? { clusterWorker: true } : {}), store: options.store, logger: options.logger, policy, bodyLimit, flow, options: options.mqtt, telemetry: services.telemetry, group: services.group, ...(shared ? { sharedWake: sharedWakeAuth(shared) } : {}) });
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
    const running = services.run(stopWorker.signal);
    options.logger.info({ schema_policy: policy.schema, additive_policy: policy.additive }, 'schema governance ready');
    const server = new CloudServer(app, `http://${shownHost}:${address.port}`, policy, stopWorker, running, { controller: flow, mqtt }, closeApp);
    server.#metricsServer = metricsServer;
    return server;
  }

  /** Every route the HTTP front door registered (method and URL template). */
  get routes(): readonly { method: string; url: string }[] {
    return registeredRoutes(this.#app);
  }

  /** The token-free /metrics URL of `metricsPort`, when one was given. */
  get metricsUrl(): string | undefined {
    return this.#metricsServer?.url;
  }

  /** Stops MQTT and HTTP intake (answering what is in flight), then lets the replay step in progress commit and stops the workers. */
  async stop(): Promise<void> {
    try {
      await this.#metricsServer?.close();
      await this.mqtt?.stop();
      await this.#closeApp(() => this.#app.close());
    } finally {
      this.#stopWorker.abort();
      await this.#worker;
    }
  }
}
