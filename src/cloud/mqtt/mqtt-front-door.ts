import type { Logger } from 'pino';
import { parseRowBatch } from '../../protocol/batch.js';
import { parseTelemetryBatch } from '../../protocol/telemetry-batch.js';
import type { TelemetryService } from '../telemetry/telemetry-service.js';
import { parseControlAck, type DownlinkMessage } from '../../protocol/control.js';
import { SynclineError, isSynclineError } from '../../protocol/errors.js';
import { deviceRoot, deviceTopic, parseDeviceTopic, type DeviceTopic } from '../../protocol/topics.js';
import type { DeviceIdentity } from '../auth/devices.js';
import { recordControlAck, type OutgoingControl } from '../flow-control/controls.js';
import type { ControlSink } from '../flow-control/flow-controller.js';
import type { GovernancePolicy } from '../governance/policy.js';
import type { GroupCommitter } from '../ingest/group-commit.js';
import { ingestRowBatch } from '../ingest/ingest-row-batch.js';
import { ingestTimer, rowsOf } from '../metrics/instruments.js';
import type { Store } from '../store/store.js';
import type { BrokerLink } from './broker-link.js';
import type { DeviceDirectory } from './device-directory.js';
import type { MqttStats } from './mqtt-stats.js';
import { decodePayload } from './payload.js';
import { WorkQueue } from './work-queue.js';

export interface MqttFrontDoorOptions {
  store: Store;
  logger: Logger;
  policy: GovernancePolicy;
  directory: DeviceDirectory;
  link: BrokerLink;
  stats: MqttStats;
  /** Largest batch after decompression, as over HTTP. */
  bodyLimit: number;
  /** Batches taken at once; with group commit many of them share one transaction. */
  maxConcurrent?: number;
  /** Messages waiting beyond that before the link is asked to hold deliveries. */
  maxQueued?: number;
  /** Called after each ingested batch (flow control looks at the counters). */
  onIngested?: () => void;
  /** Called for each message from a known, active device. */
  onDeviceSeen?: (deviceId: string) => void;
  /** Takes telemetry batches; without it they are not consumed. */
  telemetry?: TelemetryService;
  /** Group commit shared with the HTTP front door; each batch alone when absent. */
  group?: GroupCommitter;
  /** Whether the link reaches the device now (an embedded broker holds its session); any device when absent. */
  reaches?: (deviceId: string) => boolean;
}

/**
 * Batches in ingest at once (one per device). Waiting for a group commit costs no
 * connection, so this is about how many devices' batches can share a commit; it
 * also bounds how many messages an external broker has to queue for this server
 * (Mosquitto drops beyond max_queued_messages, 1000 by default).
 */
const MAX_CONCURRENT_BATCHES = 512;

/**
 * The cloud's MQTT front door. The device comes from the topic, which the broker
 * only lets that device publish on (embedded ACL, or the Mosquitto ACL that
 * `syncline admin mqtt-config` writes); it must exist, be active and belong to
 * the topic's project. Tenant or device fields inside a payload are dropped by
 * the batch parser, as over HTTP. Every batch is answered on the device's control
 * topic only after ingest committed: the device prunes on that answer, never on
 * the broker's PUBACK, so a broker that loses a message cannot lose data.
 */
export class MqttFrontDoor implements ControlSink {
  readonly #o: MqttFrontDoorOptions;
  readonly #log: Logger;
  readonly #queue: WorkQueue;

  constructor(options: MqttFrontDoorOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#queue = new WorkQueue(options.maxConcurrent ?? MAX_CONCURRENT_BATCHES, options.maxQueued ?? 1024);
  }

  /** Starts taking messages from the given filters (plain, or shared subscriptions on an external broker). */
  async start(filters: readonly string[]): Promise<void> {
    await this.#o.link.subscribe(filters, (topic, payload, handled) => this.#receive(topic, payload, handled));
  }

  /** Messages taken and not yet answered (metrics). */
  get inFlight(): number {
    return this.#queue.size;
  }

  /** Waits for the messages already taken to be answered. */
  async drain(): Promise<void> {
    await this.#queue.idle();
  }

  get reaches(): ((deviceId: string) => boolean) | undefined {
    return this.#o.reaches;
  }

  async sendControl(control: OutgoingControl): Promise<void> {
    await this.#send(deviceRoot(control.projectId, control.deviceId), control.message);
    this.#o.stats.controlsSent += 1;
  }

  #receive(topic: string, payload: Buffer, handled?: () => void): Promise<void> | void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || (parsed.channel !== 'rowBatch' && parsed.channel !== 'controlAck' && (parsed.channel !== 'telemetryBatch' || !this.#o.telemetry))) return handled?.();
    return this.#queue.push(parsed.deviceId, () => this.#job(parsed, payload, handled));
  }

  /** Handles one message; `handled` follows its answer's publish (not awaited here: see #reply). */
  async #job(topic: DeviceTopic, payload: Buffer, handled: (() => void) | undefined): Promise<void> {
    let answer: Answer | undefined;
    try {
      answer = await this.#handle(topic, payload);
    } finally {
      if (handled) void (answer ? answer.published.then(handled) : handled());
    }
  }

  async #handle(topic: DeviceTopic, payload: Buffer): Promise<Answer | undefined> {
    const device = await this.#o.directory.lookup(topic.deviceId);
    if (!device || device.project_id !== topic.projectId) {
      this.#o.stats.unknownDevices += 1;
      this.#log.warn({ device_id: topic.deviceId.slice(0, 64), project_id: topic.projectId.slice(0, 64), channel: topic.channel }, 'MQTT message for an unknown, revoked or foreign device dropped');
      return undefined;
    }
    this.#o.onDeviceSeen?.(device.device_id);
    if (topic.channel === 'controlAck') {
      await this.#controlAck(device, payload);
      return undefined;
    }
    return this.#rowBatch(device, payload, topic.channel === 'telemetryBatch');
  }

  async #rowBatch(device: DeviceIdentity, payload: Buffer, telemetry = false): Promise<Answer> {
    const { stats, store, policy } = this.#o;
    stats.batchesReceived += 1;
    const root = deviceRoot(device.project_id, device.device_id);
    let batchId: string | null = null;
    const timer = ingestTimer('mqtt');
    const size = { rows: 0, bytes: payload.length };
    try {
      const { json, bytes } = await decodePayload(payload, this.#o.bodyLimit);
      Object.assign(size, { rows: rowsOf(json), bytes });
      batchId = batchIdOf(json);
      const ack = telemetry
        ? await this.#o.telemetry!.ingest(device, parseTelemetryBatch(json), bytes)
        : await ingestRowBatch(store, device, parseRowBatch(json), bytes, { logger: this.#log, policy, ...(this.#o.group ? { group: this.#o.group } : {}) });
      timer.acked(ack.status, size.rows, size.bytes);
      stats.batchesAcked += 1;
      this.#o.onIngested?.();
      return this.#reply(root, { type: 'batch_ack', ack });
    } catch (error) {
      stats.batchesRefused += 1;
      timer.refused(error, size.rows, size.bytes);
      const refusal = isSynclineError(error) ? error.withContext({ device_id: device.device_id }) : new SynclineError('internal', 'internal server error');
      if (refusal.status >= 500) this.#log.error({ err: error, device_id: device.device_id, batch_id: batchId }, 'MQTT batch failed');
      else this.#log.info({ code: refusal.code, device_id: device.device_id, batch_id: batchId, context: refusal.context }, 'MQTT batch refused');
      return this.#reply(root, { type: 'batch_error', batch_id: batchId, error: refusal.code, message: refusal.message, status: refusal.status });
    }
  }

  async #controlAck(device: DeviceIdentity, payload: Buffer): Promise<void> {
    try {
      const { json } = await decodePayload(payload, 64 * 1024);
      const ack = parseControlAck(json);
      if (await recordControlAck(this.#o.store, device.device_id, ack)) this.#o.stats.controlAcks += 1;
    } catch (error) {
      this.#log.warn({ err: error, device_id: device.device_id }, 'unreadable control ack ignored');
    }
  }

  /** Answers are not awaited by the worker: a held link would otherwise hold the queue that frees it. A lost answer is a resend. */
  #reply(root: string, message: DownlinkMessage): Answer {
    return { published: this.#send(root, message).catch((error: unknown) => this.#log.warn({ err: error, topic: root }, 'could not publish an answer; the device will resend')) };
  }

  #send(root: string, message: DownlinkMessage): Promise<void> {
    return this.#o.link.publish(deviceTopic(root, 'control'), Buffer.from(JSON.stringify(message)));
  }
}

/** An answer being published; wrapped so an async function can return it without waiting for it. */
interface Answer {
  published: Promise<void>;
}

function batchIdOf(json: unknown): string | null {
  const id = typeof json === 'object' && json !== null ? (json as Record<string, unknown>).batch_id : undefined;
  return typeof id === 'string' ? id.slice(0, 64) : null;
}
