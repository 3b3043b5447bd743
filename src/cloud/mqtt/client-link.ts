import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { SYNC_QOS } from '../../protocol/topics.js';
import type { HealthBoard } from '../health.js';
import type { BrokerLink, MessageHandler } from './broker-link.js';

/** Answers are small and frequent: no Nagle delay on the broker connection. */
function noDelay(client: MqttClient): void {
  (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
}

export interface ClientLinkOptions {
  /** mqtt://user:password@host:port or mqtts://...; credentials in the URL are the server's broker account. */
  url: string;
  logger: Logger;
  /** PEM: CA to verify the broker with, and the server's own client certificate and key (mqtts). */
  tls?: { ca?: string; cert?: string; key?: string };
  connectTimeoutMs?: number;
  /** Told when the broker goes away and comes back (`/healthz`). */
  health?: HealthBoard;
}

/**
 * PINGREQ interval: a server whose event loop hangs stops pinging, and the broker
 * drops it (and its share of the shared subscription) after 1.5x this.
 */
export const SERVER_KEEPALIVE_S = 10;
/** How long start-up waits for a first connection before going on without the broker. */
const FIRST_CONNECT_WAIT_MS = 3000;
/**
 * mqtt.js calls its `debug` logger a dozen times per packet, and checking whether
 * it is enabled cost ~2 % of the server's CPU in the fan-in; it is kept when
 * DEBUG is set, the only way to turn it on.
 */
const quiet = process.env.DEBUG ? {} : { log: () => {} };

/**
 * The cloud on an external broker (Mosquitto, EMQX), as an ordinary MQTT client.
 * Deliveries are held while the front door's queue is full: mqtt.js then stops
 * reading, and the broker keeps (or, for a shared subscription, redistributes)
 * what it has not delivered. A broker that is down at start-up or goes away later
 * does not stop the server: the link reports `degraded` and keeps reconnecting,
 * subscribing again on every connection (clean sessions keep nothing).
 */
export class ClientLink implements BrokerLink {
  readonly #client: MqttClient;
  readonly #log: Logger;
  readonly #url: string;
  readonly #health: HealthBoard | undefined;
  #filters: string[] = [];
  /** The socket whose writes are held until the end of this turn of the event loop (see #coalesceWrites). */
  #corked: { uncork(): void } | undefined;

  private constructor(client: MqttClient, options: ClientLinkOptions) {
    this.#client = client;
    this.#log = options.logger;
    this.#url = redact(options.url);
    this.#health = options.health;
  }

  static async connect(options: ClientLinkOptions): Promise<ClientLink> {
    const clientOptions: IClientOptions = {
      clientId: `syncline-server-${randomUUID()}`,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 1000,
      keepalive: SERVER_KEEPALIVE_S,
      // Subscriptions are made again by #onConnect, which can report a refusal.
      resubscribe: false,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      ...quiet,
      ...(options.tls ?? {}),
    };
    const client = mqtt.connect(options.url, clientOptions);
    const link = new ClientLink(client, options);
    link.#health?.degrade('mqtt_broker', `connecting to the MQTT broker at ${link.#url}`);
    client.on('error', (error) => {
      link.#log.warn({ reason: error.message }, 'MQTT broker connection error');
      if (!client.connected) link.#health?.degrade('mqtt_broker', `MQTT broker at ${link.#url} unreachable: ${error.message}`);
    });
    client.on('offline', () => {
      link.#log.warn({ broker: link.#url }, 'MQTT broker unreachable; reconnecting');
      link.#health?.degrade('mqtt_broker', `MQTT broker at ${link.#url} unreachable; reconnecting`);
    });
    client.on('connect', () => void link.#onConnect());
    // A reachable broker is connected (and its subscriptions checked) before start-up goes on; an unreachable one is not waited for.
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        client.off('connect', done);
        client.off('error', done);
        client.off('offline', done);
        resolve();
      };
      const timer = setTimeout(done, FIRST_CONNECT_WAIT_MS);
      client.once('connect', done);
      client.once('error', done);
      client.once('offline', done);
    });
    return link;
  }

  async #onConnect(): Promise<void> {
    noDelay(this.#client);
    this.#log.info({ broker: this.#url }, 'MQTT broker connected');
    if (this.#filters.length === 0) {
      this.#health?.recover('mqtt_broker');
      return;
    }
    try {
      await this.#subscribeNow();
      this.#health?.recover('mqtt_broker');
    } catch (error) {
      this.#log.error({ reason: (error as Error).message }, 'MQTT subscription failed');
      this.#health?.degrade('mqtt_broker', (error as Error).message);
    }
  }

  async #subscribeNow(): Promise<void> {
    const grants = await this.#client.subscribeAsync(this.#filters, { qos: SYNC_QOS });
    const refused = grants.filter((g) => g.qos > 2).map((g) => g.topic);
    if (refused.length > 0) throw new SynclineError('broker_unavailable', `the MQTT broker refused the subscriptions ${refused.join(', ')} (check its ACL for the server's account)`, { refused });
  }

  /** Subscribes now when connected (a refusal then fails start-up); otherwise on the next connection. */
  async subscribe(filters: readonly string[], handler: MessageHandler): Promise<void> {
    this.#client.handleMessage = (packet, callback) => {
      // The PUBACK mqtt.js writes when `callback` runs joins the other writes of this turn.
      const ack = () => {
        this.#coalesceWrites();
        callback();
      };
      const held = handler(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      if (held) held.then(ack, ack);
      else ack();
    };
    this.#filters = [...filters];
    if (this.#client.connected) {
      await this.#subscribeNow();
      this.#health?.recover('mqtt_broker');
    }
  }

  /**
   * Refused at once while the broker is away rather than queued: a queued publish
   * would hold flow control's pass until the broker returns, and every caller
   * already sends again (controls are resent until acked, devices resend batches).
   */
  async publish(topic: string, payload: Buffer, options: { retain?: boolean } = {}): Promise<void> {
    if (!this.#client.connected) throw new SynclineError('broker_unavailable', `the MQTT broker at ${this.#url} is unreachable`);
    this.#coalesceWrites();
    await this.#client.publishAsync(topic, payload, { qos: SYNC_QOS, retain: options.retain ?? false });
  }

  /**
   * Holds the socket's writes until the end of this turn of the event loop, so the
   * PUBACKs of one read's deliveries and the answers of one commit leave in one
   * write: mqtt.js takes each received packet on a tick of its own and each
   * packet's write goes out on the next, one writev syscall per PUBACK otherwise
   * (the MQTT writes were ~8 % of the server's CPU in the fan-in profile). The
   * delay is the rest of the turn; a graceful end flushes held writes itself.
   */
  #coalesceWrites(): void {
    const stream = this.#client.stream as { cork?: () => void; uncork(): void } | undefined;
    if (!stream?.cork || this.#corked === stream) return;
    stream.cork();
    this.#corked = stream;
    setImmediate(() => {
      if (this.#corked === stream) this.#corked = undefined;
      stream.uncork();
    });
  }

  async unsubscribeAll(): Promise<void> {
    const filters = this.#filters.splice(0);
    if (filters.length > 0 && this.#client.connected) await this.#client.unsubscribeAsync(filters);
  }

  async close(): Promise<void> {
    // Forced when the broker is away: a graceful end would wait for queued publishes that cannot go out.
    await this.#client.endAsync(!this.#client.connected);
  }
}

/** The URL without its password, for logs and errors. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
