import type { Aedes, AedesPublishPacket } from 'aedes';
import { SYNC_QOS } from '../../protocol/topics.js';
import type { PubackHold } from './puback-hold.js';

/**
 * Takes one delivered message. A returned promise lets the link hold further
 * deliveries until it settles (backpressure towards the broker). `handled`, when
 * the link passes one, must be called once the message is handled and its answer
 * (if any) published: the embedded broker holds the message's PUBACK until then.
 */
export type MessageHandler = (topic: string, payload: Buffer, handled?: () => void) => Promise<void> | void;

/**
 * The cloud's side of a broker: receive device messages, publish downlink
 * messages. Two adapters: the embedded aedes broker (in process, no socket) and
 * an external broker reached with an MQTT client. The front door works the same
 * over either.
 */
export interface BrokerLink {
  /** Delivers every message on `filters` to `handler`, in arrival order. */
  subscribe(filters: readonly string[], handler: MessageHandler): Promise<void>;
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
  readonly #pubacks: PubackHold | undefined;
  readonly #subscriptions: { filter: string; deliver: Deliver }[] = [];

  constructor(broker: Aedes, pubacks?: PubackHold) {
    this.#broker = broker;
    this.#pubacks = pubacks;
  }

  async subscribe(filters: readonly string[], handler: MessageHandler): Promise<void> {
    const deliver: Deliver = (packet, callback) => {
      callback();
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      void handler(packet.topic, payload, this.#pubacks?.take(payload));
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
