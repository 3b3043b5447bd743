import type { Aedes, AedesPublishPacket } from 'aedes';
import { SYNC_QOS } from '../../protocol/topics.js';

/**
 * The cloud's side of a broker: receive device messages, publish downlink
 * messages. Two adapters: the embedded aedes broker (in process, no socket) and
 * an external broker reached with an MQTT client. The front door works the same
 * over either.
 */
export interface BrokerLink {
  /**
   * Delivers every message on `filters` to `handler`, in arrival order. When the
   * handler returns a promise, the link may hold further deliveries until it
   * settles (backpressure towards the broker).
   */
  subscribe(filters: readonly string[], handler: (topic: string, payload: Buffer) => Promise<void> | void): Promise<void>;
  /** Publishes at QoS1; resolves when the broker took it. A retained message is also handed to later subscribers. */
  publish(topic: string, payload: Buffer, options?: { retain?: boolean }): Promise<void>;
  /** Stops deliveries; publishing still works (answers to messages already taken). */
  unsubscribeAll(): Promise<void>;
  close(): Promise<void>;
}

type Deliver = (packet: AedesPublishPacket, callback: () => void) => void;

/**
 * The embedded broker, in process. Deliveries are released at once: holding
 * aedes's callback would hold one of its shared emitter slots, and the downlink
 * publishes the front door makes go through the same emitter. Each device's
 * bounded in-flight window is what bounds the work queued here.
 */
export class AedesLink implements BrokerLink {
  readonly #broker: Aedes;
  readonly #subscriptions: { filter: string; deliver: Deliver }[] = [];

  constructor(broker: Aedes) {
    this.#broker = broker;
  }

  async subscribe(filters: readonly string[], handler: (topic: string, payload: Buffer) => Promise<void> | void): Promise<void> {
    const deliver: Deliver = (packet, callback) => {
      callback();
      void handler(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
    };
    for (const filter of filters) {
      await new Promise<void>((resolve) => this.#broker.subscribe(filter, deliver, resolve));
      this.#subscriptions.push({ filter, deliver });
    }
  }

  publish(topic: string, payload: Buffer, options: { retain?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#broker.publish({ cmd: 'publish', topic, payload, qos: SYNC_QOS, retain: options.retain ?? false, dup: false }, (error) => (error ? reject(error) : resolve()));
    });
  }

  async unsubscribeAll(): Promise<void> {
    for (const { filter, deliver } of this.#subscriptions.splice(0)) {
      await new Promise<void>((resolve) => this.#broker.unsubscribe(filter, deliver, resolve));
    }
  }

  /** The broker itself is closed by its owner. */
  async close(): Promise<void> {
    await this.unsubscribeAll();
  }
}
