import type { Logger } from 'pino';
import type { BundleAnnouncement } from '../../protocol/sync-answers.js';
import { channelFilter, DEFAULT_SHARE_GROUP, sharedFilter, sharedWakeTopic } from '../../protocol/topics.js';
import type { FlowController } from '../flow-control/flow-controller.js';
import type { GovernancePolicy } from '../governance/policy.js';
import type { HealthBoard } from '../health.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import type { TelemetryService } from '../telemetry/telemetry-service.js';
import type { GroupCommitter } from '../ingest/group-commit.js';
import type { Store } from '../store/store.js';
import { AedesLink, type BrokerLink } from './broker-link.js';
import { ClientLink, redact, type ClientLinkOptions } from './client-link.js';
import { announceSignIn, onSignInElsewhere } from './cluster-sessions.js';
import { DeviceDirectory } from './device-directory.js';
import { EmbeddedBroker, type BrokerTlsOptions, type SharedWakeAuth } from './embedded-broker.js';
import { MqttFrontDoor } from './mqtt-front-door.js';
import { newMqttStats, type MqttStats } from './mqtt-stats.js';

export interface CloudMqttOptions {
  /** Embedded broker port: a number (0: any free port) or 'default' (1883, or 18830 when 1883 is taken). Unused with `url`. */
  port?: number | 'default';
  /** Address the embedded broker listens on; default 127.0.0.1. */
  host?: string;
  /** A TLS listener for the embedded broker, with optional client certificates (mTLS). */
  tls?: BrokerTlsOptions;
  /** An external broker (MQTT_URL) instead of the embedded one; several servers share its load. */
  url?: string;
  /** TLS material for connecting to the external broker. */
  clientTls?: ClientLinkOptions['tls'];
  /** The external broker's shared-subscription group; servers in one group split the devices' messages. */
  shareGroup?: string;
  /** Batches ingested at once from MQTT. */
  maxConcurrentIngests?: number;
  /** Embedded broker: largest packet a client may send; default the server's body limit. */
  maxPacketBytes?: number;
  /** Embedded broker: how often connected devices are checked for revocation (default 1 s). */
  revocationCheckMs?: number;
}

export interface MqttServiceDeps {
  store: Store;
  logger: Logger;
  policy: GovernancePolicy;
  bodyLimit: number;
  flow: FlowController;
  /** Devices heard from over MQTT (connections, batches, control acks). */
  activity: ActivityRecorder;
  options: CloudMqttOptions;
  /** Two-way sync: lets devices sign in with their sync JWT to follow their scope's wake-ups. */
  sharedWake?: SharedWakeAuth;
  /** An external broker's reachability is reported here (`/healthz`). */
  health?: HealthBoard;
  /** Telemetry batches on `{root}/sync/telemetry/batch`; not subscribed when absent. */
  telemetry?: TelemetryService;
  /** Group commit shared with the HTTP front door. */
  group?: GroupCommitter;
  /** One of the workers of `server --workers N`, each with a broker: a device signing in here closes its sessions in the others' brokers, and theirs here. */
  clusterWorker?: boolean;
}

/**
 * The MQTT side of the server: an embedded broker or a link to an external one,
 * the front door that ingests and answers, and the downlink flow control sends
 * its controls on.
 */
export class MqttService {
  readonly mode: 'embedded' | 'external';
  /** mqtt:// URL devices connect to (the external broker's, without credentials). */
  readonly url: string;
  readonly tlsUrl: string | undefined;
  readonly stats: MqttStats;
  readonly #link: BrokerLink;
  readonly #frontDoor: MqttFrontDoor;
  readonly #broker: EmbeddedBroker | undefined;
  readonly #flow: FlowController;
  readonly #stopTakeovers: () => void;

  private constructor(fields: { mode: 'embedded' | 'external'; url: string; tlsUrl: string | undefined; stats: MqttStats; link: BrokerLink; frontDoor: MqttFrontDoor; broker: EmbeddedBroker | undefined; flow: FlowController; stopTakeovers: () => void }) {
    this.mode = fields.mode;
    this.url = fields.url;
    this.tlsUrl = fields.tlsUrl;
    this.stats = fields.stats;
    this.#link = fields.link;
    this.#frontDoor = fields.frontDoor;
    this.#broker = fields.broker;
    this.#flow = fields.flow;
    this.#stopTakeovers = fields.stopTakeovers;
  }

  static async start(deps: MqttServiceDeps): Promise<MqttService> {
    const { store, options } = deps;
    const log = deps.logger.child({ component: 'mqtt' });
    const stats = newMqttStats();
    let broker: EmbeddedBroker | undefined;
    let link: BrokerLink;
    if (options.url) {
      link = await ClientLink.connect({ url: options.url, logger: log, ...(options.clientTls ? { tls: options.clientTls } : {}), ...(deps.health ? { health: deps.health } : {}) });
    } else {
      broker = await EmbeddedBroker.start({
        db: store,
        logger: log,
        stats,
        onDeviceConnected: (deviceId) => {
          deps.activity.seen(deviceId, 'mqtt');
          if (deps.clusterWorker) announceSignIn(deviceId);
        },
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 'default',
        ...(options.tls ? { tls: options.tls } : {}),
        ...(deps.sharedWake ? { sharedWake: deps.sharedWake } : {}),
        maxPacketBytes: options.maxPacketBytes ?? deps.bodyLimit,
        ...(options.revocationCheckMs !== undefined ? { revocationCheckMs: options.revocationCheckMs } : {}),
      });
      link = new AedesLink(broker.aedes, broker.pubacks);
    }
    const frontDoor = new MqttFrontDoor({
      store,
      logger: log,
      policy: deps.policy,
      directory: new DeviceDirectory(store),
      link,
      stats,
      bodyLimit: deps.bodyLimit,
      ...(options.maxConcurrentIngests !== undefined ? { maxConcurrent: options.maxConcurrentIngests } : {}),
      onIngested: () => deps.flow.wake(),
      onDeviceSeen: (deviceId) => deps.activity.seen(deviceId, 'mqtt'),
      ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
      ...(deps.group ? { group: deps.group } : {}),
      ...(broker ? { reaches: (deviceId: string) => broker.holds(deviceId) } : {}),
    });
    const filters = [channelFilter('rowBatch'), channelFilter('controlAck'), ...(deps.telemetry ? [channelFilter('telemetryBatch')] : [])];
    try {
      await frontDoor.start(options.url ? filters.map((f) => sharedFilter(options.shareGroup ?? DEFAULT_SHARE_GROUP, f)) : filters);
    } catch (error) {
      await link.close().catch(() => {});
      await broker?.close();
      throw error;
    }
    deps.flow.setSink(frontDoor);
    const embedded = broker;
    const stopTakeovers =
      embedded && deps.clusterWorker
        ? onSignInElsewhere((deviceId) => {
            const closed = embedded.closeSessionsOf(deviceId);
            if (closed > 0) log.info({ device_id: deviceId, sessions: closed }, "device signed in to another worker's broker; its session here is closed");
          })
        : () => {};
    const url = broker ? broker.url : redact(options.url!).replace(/\/\/[^@/]*@/, '//');
    log.info({ mode: broker ? 'embedded' : 'external', url, tls_url: broker?.tlsUrl }, 'MQTT front door ready');
    return new MqttService({ mode: broker ? 'embedded' : 'external', url, tlsUrl: broker?.tlsUrl, stats, link, frontDoor, broker, flow: deps.flow, stopTakeovers });
  }

  /** Clients connected to the embedded broker (0 with an external one) and messages not yet answered, for metrics. */
  get load(): { connections: number; inFlight: number } {
    return { connections: this.#broker?.aedes.connectedClients ?? 0, inFlight: this.#frontDoor.inFlight };
  }

  /** Announces a scope's new head on its wake-up topic, retained so a device that connects later learns it too. */
  async publishWake(scope: string, headSeq: string): Promise<void> {
    await this.#link.publish(sharedWakeTopic(scope), Buffer.from(JSON.stringify({ head_seq: headSeq } satisfies BundleAnnouncement)), { retain: true });
  }

  /** Stops taking messages, answers those already taken, then closes the broker or the link. */
  async stop(): Promise<void> {
    this.#flow.setSink(undefined);
    this.#stopTakeovers();
    await this.#link.unsubscribeAll().catch(() => {});
    await this.#frontDoor.drain();
    await this.#link.close().catch(() => {});
    await this.#broker?.close();
  }
}
