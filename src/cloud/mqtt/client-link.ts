import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { SYNC_QOS } from '../../protocol/topics.js';
import type { BrokerLink } from './broker-link.js';

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
}

/**
 * The cloud on an external broker (Mosquitto, EMQX), as an ordinary MQTT client.
 * Deliveries are held while the front door's queue is full: mqtt.js then stops
 * reading, and the broker keeps (or, for a shared subscription, redistributes)
 * what it has not delivered. Reconnects and resubscribes on its own.
 */
export class ClientLink implements BrokerLink {
  readonly #client: MqttClient;
  #filters: string[] = [];

  private constructor(client: MqttClient) {
    this.#client = client;
  }

  static async connect(options: ClientLinkOptions): Promise<ClientLink> {
    const log = options.logger;
    const clientOptions: IClientOptions = {
      clientId: `syncline-server-${randomUUID()}`,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 1000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      ...(options.tls ?? {}),
    };
    const client = mqtt.connect(options.url, clientOptions);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no CONNACK within ${clientOptions.connectTimeout} ms`)), clientOptions.connectTimeout);
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        client.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      await client.endAsync(true).catch(() => {});
      throw new SynclineError('broker_unavailable', `cannot connect to the MQTT broker at ${redact(options.url)}: ${(error as Error).message}`, {}, { cause: error });
    }
    client.on('error', (error) => log.warn({ err: error }, 'MQTT broker connection error'));
    client.on('offline', () => log.warn({ broker: redact(options.url) }, 'MQTT broker unreachable; reconnecting'));
    noDelay(client);
    client.on('connect', () => {
      noDelay(client);
      log.info({ broker: redact(options.url) }, 'MQTT broker connected');
    });
    return new ClientLink(client);
  }

  async subscribe(filters: readonly string[], handler: (topic: string, payload: Buffer) => Promise<void> | void): Promise<void> {
    this.#client.handleMessage = (packet, callback) => {
      const held = handler(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      if (held) held.then(() => callback(), () => callback());
      else callback();
    };
    this.#filters = [...filters];
    const grants = await this.#client.subscribeAsync(this.#filters, { qos: SYNC_QOS });
    const refused = grants.filter((g) => g.qos > 2).map((g) => g.topic);
    if (refused.length > 0) throw new SynclineError('broker_unavailable', `the MQTT broker refused the subscriptions ${refused.join(', ')} (check its ACL for the server's account)`, { refused });
  }

  async publish(topic: string, payload: Buffer, options: { retain?: boolean } = {}): Promise<void> {
    await this.#client.publishAsync(topic, payload, { qos: SYNC_QOS, retain: options.retain ?? false });
  }

  async unsubscribeAll(): Promise<void> {
    const filters = this.#filters.splice(0);
    if (filters.length > 0 && this.#client.connected) await this.#client.unsubscribeAsync(filters);
  }

  async close(): Promise<void> {
    await this.#client.endAsync();
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
