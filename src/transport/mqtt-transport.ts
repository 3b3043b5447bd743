import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import pino, { type Logger } from 'pino';
import type { WireRowBatch } from '../protocol/batch.js';
import type { WireTelemetryBatch } from '../protocol/telemetry-batch.js';
import { PublisherDefaults, SERVER_BODY_LIMIT_BYTES } from '../protocol/constants.js';
import { parseDownlink, type ControlAck, type ControlMessage, type ReceivedBatchAck } from '../protocol/control.js';
import { deviceRoot, deviceTopic, SYNC_QOS } from '../protocol/topics.js';
import { AckWaiters } from './mqtt-ack-waiters.js';
import { MQTT_RESEND_MIN_MS, ResendTimeout } from './resend-timeout.js';
import { encodeRowBatch } from './row-batch-encoding.js';
import { isRetryableStatus, TransportError, type EncodedBatch, type EncodedRowBatch, type Transport } from './transport.js';
import { MQTT_ACK_TIMEOUT_MS, MQTT_MAX_IN_FLIGHT } from './mqtt-defaults.js';

export interface MqttTransportOptions {
  /** mqtt://host:port or mqtts://host:port. */
  url: string;
  deviceId: string;
  /** The device's project (the middle level of its topic root); default `default`. */
  projectId?: string;
  /** Device token, sent as the MQTT password (username = device id); not needed with a client certificate. Never logged. */
  token?: string;
  /** PEM: CA to verify the broker, and the device's own certificate and key (mTLS). */
  tls?: { ca?: string; cert?: string; key?: string };
  /** The longest wait for the cloud's answer to a batch before sending it again (the adaptive wait never exceeds it). */
  ackTimeoutMs?: number;
  /** The shortest wait before a batch is sent again (default MQTT_RESEND_MIN_MS); see resend-timeout.ts. */
  resendMinMs?: number;
  /** Batches published and not yet answered, at most. */
  maxInFlight?: number;
  compressAboveBytes?: number;
  /** Batches larger than this are refused locally as 413, so the publisher splits them (the cloud would refuse them anyway). */
  maxPayloadBytes?: number;
  logger?: Logger;
}

const CONTROL_ACK_TIMEOUT_MS = 5000;
const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** CONNACK codes after which reconnecting with the same credential is pointless. */
const REFUSED: Record<number, { status: number; why: string }> = {
  2: { status: 403, why: 'the broker rejected the client id (it must be the device id)' },
  4: { status: 401, why: 'bad username or password (check the device id and token)' },
  5: { status: 401, why: 'not authorized (check the device token or certificate)' },
  135: { status: 401, why: 'not authorized (check the device token or certificate)' },
};

/**
 * Ships batches over MQTT: a persistent session (client id = device id, clean
 * false) so downlink messages wait while the device is away, QoS1 publishes on
 * `{root}/sync/rows/batch`, and a bounded window of batches awaiting the cloud's
 * answer on `{root}/sync/control`. Control messages on that topic go to the
 * registered handler and are acked on `{root}/sync/control/ack`. Reconnects with
 * jittered backoff; a refused credential fails every send with 401/403 so the
 * agent stops with a clear error.
 */
export class MqttTransport implements Transport {
  readonly #opts: MqttTransportOptions;
  readonly #log: Logger;
  readonly #root: string;
  readonly #waiters: AckWaiters;
  readonly #resend: ResendTimeout;
  #client: MqttClient | undefined;
  /** Connected and subscribed; re-armed on every disconnect. */
  #ready: Promise<void> | undefined;
  #resolveReady: (() => void) | undefined;
  #rejectReady: ((error: TransportError) => void) | undefined;
  #readySettled = true;
  #fatal: TransportError | undefined;
  #controlHandler: ((control: ControlMessage) => void) | undefined;
  #reconnectAttempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MqttTransportOptions) {
    this.#opts = options;
    this.#log = options.logger ?? pino({ level: 'silent' });
    this.#root = deviceRoot(options.projectId ?? 'default', options.deviceId);
    this.#waiters = new AckWaiters(options.maxInFlight ?? MQTT_MAX_IN_FLIGHT);
    this.#resend = new ResendTimeout(options.resendMinMs ?? MQTT_RESEND_MIN_MS, options.ackTimeoutMs ?? MQTT_ACK_TIMEOUT_MS);
  }

  get inFlight(): number {
    return this.#waiters.inFlight;
  }

  encodeRowBatch(batch: WireRowBatch, json = JSON.stringify(batch)): Promise<EncodedRowBatch> {
    return encodeRowBatch(batch, json, this.#opts.compressAboveBytes ?? PublisherDefaults.compressAboveBytes);
  }

  sendRowBatch(encoded: EncodedRowBatch, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    return this.#publishBatch('rowBatch', encoded, signal);
  }

  async sendTelemetryBatch(batch: WireTelemetryBatch, json: string, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    const encoded = await encodeRowBatch(batch, json, this.#opts.compressAboveBytes ?? PublisherDefaults.compressAboveBytes);
    return this.#publishBatch('telemetryBatch', encoded, signal);
  }

  async #publishBatch(channel: 'rowBatch' | 'telemetryBatch', encoded: EncodedBatch<{ batch_id: string }>, signal?: AbortSignal): Promise<ReceivedBatchAck> {
    const { batch, body } = encoded;
    const limit = this.#opts.maxPayloadBytes ?? SERVER_BODY_LIMIT_BYTES;
    if (encoded.jsonBytes > limit) throw new TransportError(`batch is ${encoded.jsonBytes} bytes, more than the ${limit} the cloud accepts`, { retryable: false, status: 413, code: 'payload_too_large' });
    const release = await this.#waiters.acquire(signal);
    try {
      const client = await this.#connected(signal);
      const sentAt = Date.now();
      const answer = this.#waiters.wait(batch.batch_id, this.#resend.current(), signal, () => this.#resend.timedOut());
      client.publish(deviceTopic(this.#root, channel), body, { qos: SYNC_QOS }, (error) => {
        if (error) this.#waiters.reject(batch.batch_id, new TransportError(`publish failed: ${error.message}`, { retryable: true, cause: error }));
      });
      const ack = await answer;
      this.#resend.answered(Date.now() - sentAt);
      return ack;
    } finally {
      release();
    }
  }

  onControl(handler: (control: ControlMessage) => void): void {
    this.#controlHandler = handler;
    this.#connect();
  }

  /** Best effort within a few seconds: an ack that does not arrive only means the cloud sends the control again. */
  async ackControl(ack: ControlAck): Promise<void> {
    const client = this.#client;
    if (!client?.connected) throw new TransportError('not connected', { retryable: true });
    const sent = client.publishAsync(deviceTopic(this.#root, 'controlAck'), JSON.stringify(ack), { qos: SYNC_QOS });
    await Promise.race([sent, new Promise((_, reject) => setTimeout(() => reject(new TransportError('control ack not confirmed in time', { retryable: true })), CONTROL_ACK_TIMEOUT_MS).unref())]);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#waiters.rejectAll(new TransportError('transport closed', { retryable: true }));
    await this.#client?.endAsync(true).catch(() => {});
  }

  /** Resolves once connected and subscribed to the control topic (so no answer can arrive before we listen). */
  async #connected(signal?: AbortSignal): Promise<MqttClient> {
    if (this.#fatal) throw this.#fatal;
    this.#connect();
    const timeoutMs = this.#opts.ackTimeoutMs ?? MQTT_ACK_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TransportError(`broker ${this.#opts.url} not reachable within ${timeoutMs} ms`, { retryable: true })), timeoutMs);
      onAbort = () => reject(new TransportError('aborted', { retryable: true }));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.#ready!, giveUp]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    return this.#client!;
  }

  #connect(): void {
    if (this.#client || this.#closed) return;
    const options: IClientOptions = {
      clientId: this.#opts.deviceId,
      username: this.#opts.deviceId,
      ...(this.#opts.token !== undefined ? { password: this.#opts.token } : {}),
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...(this.#opts.tls ?? {}),
    };
    const client = mqtt.connect(this.#opts.url, options);
    this.#client = client;
    this.#armReady();
    client.on('connect', () => void this.#onConnect(client));
    client.on('message', (_topic, payload) => this.#onMessage(payload));
    client.on('error', (error) => this.#onError(error));
    client.on('close', () => this.#onClose(client));
  }

  #armReady(): void {
    // A send already waiting holds the previous promise: if that one was never settled
    // (the connection failed again before it was ready), settle it with this one, or
    // the send would sit out its whole timeout after the broker is back.
    const previous = this.#readySettled ? undefined : { resolve: this.#resolveReady, reject: this.#rejectReady };
    this.#readySettled = false;
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = () => {
        this.#readySettled = true;
        previous?.resolve?.();
        resolve();
      };
      this.#rejectReady = (error: TransportError) => {
        this.#readySettled = true;
        previous?.reject?.(error);
        reject(error);
      };
    });
    // A rejection nobody awaits yet (no send pending) must not crash the process.
    this.#ready.catch(() => {});
  }

  async #onConnect(client: MqttClient): Promise<void> {
    this.#reconnectAttempt = 0;
    noDelay(client);
    try {
      const grants = await client.subscribeAsync(deviceTopic(this.#root, 'control'), { qos: SYNC_QOS });
      if (grants.some((g) => g.qos > 2)) {
        this.#failFor(new TransportError('the broker refused the control topic subscription (check its ACL for this device)', { retryable: false, status: 403, code: 'topic_denied' }));
        return;
      }
      this.#log.info({ broker: this.#opts.url, root: this.#root }, 'MQTT connected');
      this.#resolveReady?.();
    } catch (error) {
      this.#log.warn({ err: error }, 'MQTT subscribe failed; reconnecting');
      client.end(true);
    }
  }

  #onMessage(payload: Buffer): void {
    let message;
    try {
      message = parseDownlink(JSON.parse(payload.toString('utf8')));
    } catch (error) {
      this.#log.warn({ err: error }, 'ignoring an unreadable downlink message');
      return;
    }
    switch (message.type) {
      case 'batch_ack':
        this.#waiters.resolve(message.ack);
        return;
      case 'batch_error':
        if (message.batch_id === null) {
          this.#log.warn({ error: message.error, message: message.message }, 'the cloud could not read a batch at all; it will be sent again');
          return;
        }
        this.#waiters.reject(message.batch_id, new TransportError(`cloud answered ${message.status} ${message.error}: ${message.message}`, { retryable: isRetryableStatus(message.status), status: message.status, code: message.error }));
        return;
      default:
        this.#controlHandler?.(message);
    }
  }

  #onError(error: Error & { code?: unknown }): void {
    const refused = typeof error.code === 'number' ? REFUSED[error.code] : undefined;
    if (refused) {
      this.#failFor(new TransportError(`the MQTT broker refused the connection: ${refused.why}`, { retryable: false, status: refused.status, code: refused.status === 401 ? 'unauthorized' : 'forbidden', cause: error }));
      return;
    }
    this.#log.warn({ err: error }, 'MQTT connection error');
  }

  #onClose(client: MqttClient): void {
    if (this.#client !== client) return;
    this.#waiters.rejectAll(new TransportError('MQTT connection lost before the answer', { retryable: true }));
    if (this.#closed || this.#fatal) return;
    // Many devices come back together after a broker restart: spread the reconnects out.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.#reconnectAttempt, 10));
    const wait = RECONNECT_BASE_MS / 2 + Math.floor(Math.random() * ceiling);
    this.#reconnectAttempt += 1;
    this.#armReady();
    this.#reconnectTimer = setTimeout(() => {
      if (!this.#closed) client.reconnect();
    }, wait);
    this.#log.debug({ retry_in_ms: wait }, 'MQTT disconnected; reconnecting');
  }

  #failFor(error: TransportError): void {
    this.#fatal = error;
    this.#log.error({ err: error }, 'MQTT transport stopped');
    this.#rejectReady?.(error);
    this.#waiters.rejectAll(error);
    this.#client?.end(true);
  }
}

/** Batches and answers alternate on one connection: Nagle's algorithm would hold each publish behind the previous PUBACK's ACK (~40 ms). */
export function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => void } | undefined;
  stream?.setNoDelay?.(true);
}
