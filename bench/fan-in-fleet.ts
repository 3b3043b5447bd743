import { readFileSync } from 'node:fs';
import net from 'node:net';
import { generate, parser, type Packet } from 'mqtt-packet';
import { uuidv7 } from 'uuidv7';
import { Headers, Routes } from '../src/protocol/constants.js';
import type { DownlinkMessage } from '../src/protocol/control.js';
import { deviceRoot, deviceTopic, SYNC_QOS } from '../src/protocol/topics.js';
import { columns, wireBatch } from '../test/support/batches.js';

/**
 * Simulated devices for the fan-in benchmark: each publishes a small batch every
 * second, over its own MQTT connection (persistent session, client id = device
 * id) or over HTTP keep-alive connections, and measures the time to the cloud's
 * answer. Like the real publisher a device has one batch of its table in flight:
 * when the answer to the previous one has not come, the tick is skipped (and
 * counted), so an overloaded cloud shows as lower throughput and higher latency
 * instead of an unbounded queue.
 *
 * Why the MQTT client is hand-rolled (node:net + mqtt-packet) and not mqtt.js:
 * the fleet runs in the bench process on the same two cores as the server and
 * PostgreSQL, and real devices are other machines, so every CPU ms the fleet
 * burns is taken from the capacity being measured. An mqtt.js client per device
 * (stores, timers, callback maps, stream pipeline) cost ~0.23-0.25 ms CPU per
 * answered batch, a quarter of the whole. This client still speaks MQTT 3.1.1
 * over a TCP connection of its own per device: CONNECT with the device's
 * credentials and clean=false, SUBSCRIBE to its control topic at QoS 1, each
 * batch a QoS 1 PUBLISH with a packet id (sent again with DUP after a reconnect
 * until its PUBACK), PUBACK of the server's QoS 1 publishes, PINGREQ keepalive
 * (one sweep for the fleet, not a timer per client), reconnect when dropped.
 * mqtt-packet (mqtt.js's own codec) parses and writes the packets; only the two
 * hot ones, PUBLISH and PUBACK, are encoded here (a few bytes of header, checked
 * against mqtt-packet). A batch counts as answered only when the batch_ack with
 * its batch_id arrives. The batch JSON is spliced from per-device templates, but
 * every batch is a distinct valid batch (new batch_id, next seqs, new rows).
 */

export interface SimDevice {
  id: string;
  token: string;
}

const COLUMNS = columns([['id', 'INTEGER', 1], ['v', 'TEXT']]);
const ROWS_PER_BATCH = 5;

/** What a device reports to its fleet when a batch it sent is settled. */
interface FleetHooks {
  /** The batch sent at `sentAt` was answered (`failure` undefined) or refused; returns whether the fleet is recording. */
  settled(sentAt: number, failure?: string): boolean;
  /** A failure not tied to a batch (a dropped connection, a refused CONNECT). */
  error(reason: string): void;
}

interface SimClient {
  nextAt: number;
  /** Answers received while the fleet was recording. */
  answered: number;
  /** Whether any batch of this device was answered (its lineage exists). */
  primed: boolean;
  readonly connected: boolean;
  /** Whether a batch is sent and not answered yet. */
  readonly waiting: boolean;
  ready(): Promise<void>;
  tick(): boolean;
  close(): Promise<void>;
}

/**
 * A device's journal and its batches as JSON text. The envelope (format, table,
 * key, schema with its fingerprint, journal epoch) is the same for every batch of
 * a device, so it is serialized once; each batch splices in a new batch_id, its
 * seqs and its rows. `base` keeps the row ids apart from those an earlier fleet of
 * the same devices sent (a new epoch starts seqs at 1 again).
 */
class SimJournal {
  #seq = 0;
  readonly #base = Date.now() * 1000;
  readonly #head = `{${ENVELOPE},"journal_epoch":"${uuidv7()}","batch_id":"`;
  /** The batch_id of the last batch built. */
  batchId = '';

  next(): string {
    this.batchId = uuidv7();
    const first = this.#seq + 1;
    let rows = '';
    for (let i = 0; i < ROWS_PER_BATCH; i++) {
      const seq = ++this.#seq;
      const id = this.#base + seq;
      rows += `${i === 0 ? '' : ','}{"seq":${seq},"op":"insert","pk":[${id}],"row":[${id},"value ${seq}"]}`;
    }
    return `${this.#head}${this.batchId}","first_seq":${first},"last_seq":${this.#seq},"rows":[${rows}]}`;
  }
}

/** The envelope fields every batch shares, as JSON members: a device fingerprints its table's schema once, not per batch. */
const ENVELOPE = (() => {
  const { batch_id: _id, journal_epoch: _epoch, first_seq: _first, last_seq: _last, rows: _rows, ...shared } = wireBatch({ table: 'readings', columns: COLUMNS, rows: [] });
  return JSON.stringify(shared).slice(1, -1);
})();

/** MQTT keepalive (s); the fleet's sweep sends a PINGREQ on a connection that wrote nothing for half of it. */
const KEEPALIVE_S = 120;
const RECONNECT_MS = 2000;
const CONNECT_TIMEOUT_MS = 60_000;
const PINGREQ = generate({ cmd: 'pingreq' });
const DISCONNECT = generate({ cmd: 'disconnect' });
/** MQTT fixed-header flags: PUBLISH at QoS 1, its DUP bit, PUBACK. */
const PUBLISH_QOS1 = 0x32;
const DUP = 0x08;
const PUBACK = 0x40;

/** A QoS 1 PUBLISH (MQTT 3.1.1 §3.3): fixed header, remaining length, the topic (length-prefixed, pre-encoded), packet id, payload. */
function publishPacket(topic: Buffer, packetId: number, payload: string): Buffer {
  const payloadBytes = Buffer.byteLength(payload);
  const remaining = topic.length + 2 + payloadBytes;
  const lengthBytes = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x200000 ? 3 : 4;
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  packet[0] = PUBLISH_QOS1;
  let at = 1;
  for (let left = remaining; ; ) {
    const digit = left % 0x80;
    left = Math.floor(left / 0x80);
    packet[at++] = left > 0 ? digit | 0x80 : digit;
    if (left === 0) break;
  }
  at += topic.copy(packet, at);
  packet.writeUInt16BE(packetId, at);
  packet.write(payload, at + 2);
  return packet;
}

/** A UTF-8 string as MQTT writes it: two length bytes, then the bytes. */
function mqttString(value: string): Buffer {
  const bytes = Buffer.from(value);
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/** One device over MQTT 3.1.1 on a TCP connection of its own (see the file's header). */
class MqttDevice implements SimClient {
  readonly #device: SimDevice;
  readonly #host: string;
  readonly #port: number;
  readonly #hooks: FleetHooks;
  readonly #topic: Buffer;
  readonly #controlTopic: string;
  readonly #journal = new SimJournal();
  #socket: net.Socket | undefined;
  #subscribed = false;
  #closing = false;
  #packetId = 0;
  #subscribeId = 0;
  /** The batch in flight: its id and when it was sent; undefined when none. */
  #pendingId: string | undefined;
  #sentAt = 0;
  /** The PUBLISH until its PUBACK, sent again with DUP after a reconnect (QoS 1: at least once). */
  #unacked: Buffer | undefined;
  #unackedId = 0;
  #lastWriteAt = 0;
  #pingSentAt = 0;
  #connectTimer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  nextAt = 0;
  answered = 0;
  primed = false;

  constructor(device: SimDevice, url: URL, hooks: FleetHooks) {
    this.#device = device;
    this.#host = url.hostname;
    this.#port = Number(url.port || 1883);
    this.#hooks = hooks;
    const root = deviceRoot('default', device.id);
    this.#topic = mqttString(deviceTopic(root, 'rowBatch'));
    this.#controlTopic = deviceTopic(root, 'control');
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve));
    this.#connect();
  }

  get connected(): boolean {
    return this.#subscribed;
  }

  get waiting(): boolean {
    return this.#pendingId !== undefined;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Publishes the next batch unless the previous one is unanswered; returns whether it published. */
  tick(): boolean {
    if (this.#pendingId !== undefined || !this.#subscribed) return false;
    const payload = this.#journal.next();
    this.#pendingId = this.#journal.batchId;
    this.#unackedId = this.#nextPacketId();
    this.#unacked = publishPacket(this.#topic, this.#unackedId, payload);
    this.#sentAt = performance.now();
    this.#write(this.#unacked, this.#sentAt);
    return true;
  }

  /** Called by the fleet's sweep: PINGREQ on a connection idle for half the keepalive; one whose PINGRESP did not come within the keepalive is dropped. */
  keepAlive(now: number): void {
    if (!this.#subscribed) return;
    if (this.#pingSentAt > 0 && now - this.#pingSentAt > KEEPALIVE_S * 1000) this.#socket?.destroy();
    else if (this.#pingSentAt === 0 && now - this.#lastWriteAt >= (KEEPALIVE_S * 1000) / 2) {
      this.#pingSentAt = now;
      this.#write(PINGREQ, now);
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    if (!socket || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      // DISCONNECT keeps the persistent session, as a device that stops cleanly would.
      if (this.#subscribed) socket.end(DISCONNECT);
      else socket.destroy();
    });
  }

  #connect(): void {
    const socket = net.connect({ host: this.#host, port: this.#port, noDelay: true });
    const packets = parser({ protocolVersion: 4 });
    packets.on('packet', (packet: Packet) => this.#onPacket(packet));
    packets.on('error', (error: Error) => {
      this.#hooks.error(`MQTT: ${error.message}`);
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => packets.parse(chunk));
    socket.on('error', () => {}); // 'close' follows and reconnects
    socket.on('close', () => {
      clearTimeout(this.#connectTimer);
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#subscribed = false;
      if (this.#closing) return;
      this.#hooks.error('MQTT connection closed');
      this.#reconnectTimer = setTimeout(() => this.#connect(), RECONNECT_MS);
    });
    socket.once('connect', () => {
      this.#write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: this.#device.id, username: this.#device.id, password: Buffer.from(this.#device.token), clean: false, keepalive: KEEPALIVE_S }), performance.now());
    });
    this.#connectTimer = setTimeout(() => socket.destroy(), CONNECT_TIMEOUT_MS);
    this.#socket = socket;
    this.#pingSentAt = 0;
  }

  #onPacket(packet: Packet): void {
    switch (packet.cmd) {
      case 'publish': {
        if (packet.qos > 0) this.#write(Buffer.from([PUBACK, 2, packet.messageId! >> 8, packet.messageId! & 0xff]), performance.now());
        this.#onDownlink(JSON.parse(packet.payload.toString()) as DownlinkMessage);
        return;
      }
      case 'puback':
        if (packet.messageId === this.#unackedId) this.#unacked = undefined;
        return;
      case 'connack': {
        clearTimeout(this.#connectTimer);
        if (packet.returnCode !== 0) {
          this.#hooks.error(`MQTT CONNACK return code ${packet.returnCode}`);
          this.#socket?.destroy();
          return;
        }
        this.#subscribeId = this.#nextPacketId();
        this.#write(generate({ cmd: 'subscribe', messageId: this.#subscribeId, subscriptions: [{ topic: this.#controlTopic, qos: SYNC_QOS }] }), performance.now());
        if (this.#unacked) {
          this.#unacked[0]! |= DUP;
          this.#write(this.#unacked, performance.now());
        }
        return;
      }
      case 'suback': {
        if (packet.messageId !== this.#subscribeId) return;
        if ((packet.granted[0] as number) >= 0x80) {
          // A refused subscription would never see an answer; the broker's ACL is wrong, not the load.
          this.#hooks.error('MQTT SUBSCRIBE to the control topic refused');
          return;
        }
        this.#subscribed = true;
        this.#resolveReady();
        return;
      }
      case 'pingresp':
        this.#pingSentAt = 0;
        return;
      default:
        return;
    }
  }

  #onDownlink(message: DownlinkMessage): void {
    if (this.#pendingId === undefined) return;
    let failure: string | undefined;
    if (message.type === 'batch_ack' && message.ack.batch_id === this.#pendingId) failure = undefined;
    else if (message.type === 'batch_error' && message.batch_id === this.#pendingId) failure = `batch_error ${message.error}: ${message.message}`;
    else return;
    this.#pendingId = undefined;
    if (failure !== undefined) {
      this.#hooks.settled(this.#sentAt, failure);
      return;
    }
    if (this.#hooks.settled(this.#sentAt)) this.answered += 1;
    this.primed = true;
  }

  #nextPacketId(): number {
    this.#packetId = (this.#packetId % 0xffff) + 1;
    return this.#packetId;
  }

  #write(packet: Buffer, now: number): void {
    this.#lastWriteAt = now;
    this.#socket?.write(packet);
  }
}

/** What an HTTP connection reports for one request: the answer's status, or why there is none. */
type HttpAnswer = (status: number | undefined, failure?: string) => void;

interface HttpRequest {
  text: string;
  answer: HttpAnswer;
}

const CRLF_CRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;
const CONNECTION_CLOSE = /\r\nconnection: *close/i;

/**
 * One HTTP/1.1 keep-alive connection of the fleet: writes a whole request (head
 * and body in one write) and reads its answer: status line, headers up to the
 * blank line, then exactly Content-Length bytes of body (the server answers every
 * request with a length; an answer without one is a failure). `Connection: close`
 * in an answer closes the connection after it, as a client must. One request at a
 * time, no pipelining, as node's agent does.
 */
class HttpConnection {
  readonly #socket: net.Socket;
  readonly #onIdle: (connection: HttpConnection) => void;
  readonly #onGone: (connection: HttpConnection) => void;
  #current: HttpAnswer | undefined;
  #received: Buffer | undefined;
  /** Once the head is read: its status, the body length, whether the server closes after it, where the body starts. */
  #head: { status: number; length: number; close: boolean; bodyAt: number } | undefined;
  #gone = false;

  constructor(host: string, port: number, onIdle: (connection: HttpConnection) => void, onGone: (connection: HttpConnection) => void) {
    this.#onIdle = onIdle;
    this.#onGone = onGone;
    this.#socket = net.connect({ host, port, noDelay: true });
    this.#socket.on('data', (chunk: Buffer) => this.#read(chunk));
    this.#socket.on('error', () => {}); // 'close' follows
    this.#socket.on('close', () => this.#drop('connection closed'));
  }

  send(request: HttpRequest): void {
    this.#current = request.answer;
    this.#socket.write(request.text);
  }

  close(): void {
    this.#socket.destroy();
  }

  #read(chunk: Buffer): void {
    if (this.#current === undefined) return void this.#socket.destroy(); // an answer nobody asked for
    this.#received = this.#received === undefined ? chunk : Buffer.concat([this.#received, chunk]);
    if (this.#head === undefined) {
      const end = this.#received.indexOf(CRLF_CRLF);
      if (end < 0) return;
      const head = this.#received.toString('latin1', 0, end);
      const status = STATUS_LINE.exec(head);
      const length = CONTENT_LENGTH.exec(head);
      if (!status || !length) return void this.#fail(`HTTP answer without ${status ? 'Content-Length' : 'a status line'}`);
      this.#head = { status: Number(status[1]), length: Number(length[1]), close: CONNECTION_CLOSE.test(head), bodyAt: end + 4 };
    }
    const { status, length, close, bodyAt } = this.#head;
    if (this.#received.length < bodyAt + length) return;
    if (this.#received.length > bodyAt + length) return void this.#fail('HTTP answer longer than its Content-Length');
    const answer = this.#current;
    this.#current = undefined;
    this.#received = undefined;
    this.#head = undefined;
    answer(status);
    if (close) this.#socket.destroy();
    else this.#onIdle(this);
  }

  #fail(reason: string): void {
    const answer = this.#current;
    this.#current = undefined;
    this.#socket.destroy();
    answer?.(undefined, reason);
  }

  #drop(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#fail(reason);
    this.#onGone(this);
  }
}

/**
 * The HTTP fleet's connections: at most `max` open (a process holds only so many
 * sockets; the server caps connections at 5,000 by default), each request on an
 * idle one, a new one while under the cap, else queued until one is idle, as
 * node's keep-alive agent does with maxSockets = maxFreeSockets.
 *
 * Why not node:http's client: the fleet runs on the same two cores as the server
 * and PostgreSQL, and a ClientRequest per batch (its header handling, the HTTP
 * parser, an IncomingMessage stream and the agent's bookkeeping) put the fleet at
 * 0.09-0.11 ms CPU per batch, against 0.05-0.07 with this. It still speaks
 * HTTP/1.1 over real keep-alive TCP connections to the real server.
 */
class HttpConnections {
  readonly #host: string;
  readonly #port: number;
  readonly #max: number;
  readonly #idle: HttpConnection[] = [];
  readonly #open = new Set<HttpConnection>();
  #queue: HttpRequest[] = [];
  #queueHead = 0;

  constructor(url: URL, max: number) {
    this.#host = url.hostname;
    this.#port = Number(url.port || 80);
    this.#max = max;
  }

  send(request: HttpRequest): void {
    const idle = this.#idle.pop();
    if (idle) return idle.send(request);
    if (this.#open.size < this.#max) {
      const connection = new HttpConnection(this.#host, this.#port, (c) => this.#release(c), (c) => this.#gone(c));
      this.#open.add(connection);
      return connection.send(request);
    }
    this.#queue.push(request);
  }

  close(): void {
    for (const connection of this.#open) connection.close();
  }

  #release(connection: HttpConnection): void {
    const next = this.#next();
    if (next) connection.send(next);
    else this.#idle.push(connection);
  }

  #gone(connection: HttpConnection): void {
    this.#open.delete(connection);
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    // A queued request takes the freed place on a new connection.
    const next = this.#next();
    if (next) this.send(next);
  }

  #next(): HttpRequest | undefined {
    if (this.#queueHead >= this.#queue.length) return undefined;
    const request = this.#queue[this.#queueHead++]!;
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    return request;
  }
}

/** A device posting its batches over HTTP on the fleet's shared keep-alive connections; its request head is built once. */
class HttpDevice implements SimClient {
  readonly #head: string;
  readonly #connections: HttpConnections;
  readonly #hooks: FleetHooks;
  readonly #journal = new SimJournal();
  #sentAt: number | undefined;
  nextAt = 0;
  answered = 0;
  primed = false;
  readonly connected = true;

  constructor(device: SimDevice, baseUrl: URL, connections: HttpConnections, hooks: FleetHooks) {
    this.#head = `POST ${Routes.rowBatch} HTTP/1.1\r\nhost: ${baseUrl.host}\r\n${Headers.authorization}: Bearer ${device.token}\r\ncontent-type: application/json\r\n${Headers.contentLength}: `;
    this.#connections = connections;
    this.#hooks = hooks;
  }

  get waiting(): boolean {
    return this.#sentAt !== undefined;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  tick(): boolean {
    if (this.#sentAt !== undefined) return false;
    const body = this.#journal.next();
    const sentAt = performance.now();
    this.#sentAt = sentAt;
    // The batch JSON is ASCII: its length is its byte count.
    const text = `${this.#head}${body.length}\r\n\r\n${body}`;
    this.#connections.send({
      text,
      answer: (status, failure) => {
        this.#sentAt = undefined;
        if (status !== 200) this.#hooks.settled(sentAt, failure ?? `HTTP ${status}`);
        else {
          if (this.#hooks.settled(sentAt)) this.answered += 1;
          this.primed = true;
        }
      },
    });
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface FanInSample {
  devices: number;
  seconds: number;
  /** Batches answered per second over the window. */
  answered_per_s: number;
  /** Ticks skipped because the previous batch was still unanswered. */
  skipped_ticks: number;
  /** Ticks held back because the fleet already had `maxOutstanding` batches unanswered (a broker's queue limit). */
  held_ticks: number;
  /** Most batches unanswered at once over the window. */
  peak_unanswered: number;
  /** Devices that got no answer at all in the window. */
  starved_devices: number;
  /** Failures in the window (HTTP status, socket error, MQTT batch_error, dropped or refused MQTT connection), and the last reason. */
  errors: number;
  last_error: string | null;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export type FleetTransport = { kind: 'mqtt'; url: string } | { kind: 'http'; url: string };

/** Most HTTP connections the fleet holds (the server's default cap is 5,000). */
const HTTP_CONNECTIONS = 2048;

/** How often the fleet looks for MQTT connections that need a PINGREQ. */
const KEEPALIVE_SWEEP_MS = 10_000;

/** A fleet that grows: `grow` connects more devices, `measure` runs every connected device for a window. */
export class Fleet {
  readonly #transport: FleetTransport;
  readonly #devices: SimClient[] = [];
  readonly #mqttDevices: MqttDevice[] = [];
  /** Unanswered batches the fleet allows at once; a tick beyond is held (counted), as a broker queue limit would drop it. */
  readonly #maxOutstanding: number;
  /** The HTTP devices' connections, made on first use. Idle ones are kept (not closed after each answer: a new TCP connection per batch cost the server 6-7 % of its CPU); a real device keeps its one connection. */
  #connections: HttpConnections | undefined;
  /** Batches sent and not settled yet, kept by the devices' hooks (counting them each tick would walk the fleet 100 times a second). */
  #unanswered = 0;
  #latencies: number[] = [];
  #recording = false;
  #errors = 0;
  #lastError: string | null = null;
  #keepAlive: NodeJS.Timeout | undefined;
  readonly #hooks: FleetHooks = {
    settled: (sentAt, failure) => {
      this.#unanswered -= 1;
      if (failure !== undefined) {
        this.#hooks.error(failure);
        return false;
      }
      if (this.#recording) this.#latencies.push(performance.now() - sentAt);
      return this.#recording;
    },
    error: (reason) => {
      if (!this.#recording) return;
      this.#errors += 1;
      this.#lastError = reason;
    },
  };

  constructor(transport: FleetTransport, options: { maxOutstanding?: number } = {}) {
    this.#transport = transport;
    this.#maxOutstanding = options.maxOutstanding ?? Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.#devices.length;
  }

  /** Connects `devices`, a wave at a time, and waits until all are connected. */
  async grow(devices: readonly SimDevice[], wave = 200): Promise<void> {
    const t = this.#transport;
    const url = new URL(t.url);
    if (t.kind === 'mqtt' && !this.#keepAlive) {
      this.#keepAlive = setInterval(() => {
        const now = performance.now();
        for (const d of this.#mqttDevices) d.keepAlive(now);
      }, KEEPALIVE_SWEEP_MS);
    }
    for (let i = 0; i < devices.length; i += wave) {
      const joined = devices.slice(i, i + wave).map((d): SimClient => {
        if (t.kind === 'http') return new HttpDevice(d, url, (this.#connections ??= new HttpConnections(url, HTTP_CONNECTIONS)), this.#hooks);
        const device = new MqttDevice(d, url, this.#hooks);
        this.#mqttDevices.push(device);
        return device;
      });
      this.#devices.push(...joined);
      await Promise.all(joined.map((d) => d.ready()));
    }
  }

  /** Sends the device's next batch; returns whether it did. */
  #send(d: SimClient): boolean {
    if (!d.tick()) return false;
    this.#unanswered += 1;
    return true;
  }

  /**
   * Sends every device's first batch and waits until each is answered, at most
   * `maxS`; returns the seconds it took. A device's first batch creates its
   * lineage and opens a review (or adopts the mirror under `auto`), which costs
   * far more than a steady batch: a one-off when a fleet is enrolled, kept out of
   * the measured window so the window shows the steady state.
   */
  async prime(maxS: number): Promise<number> {
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        let left = 0;
        for (const d of this.#devices) {
          if (d.primed) continue;
          left += 1;
          if (!d.waiting && d.connected && this.#unanswered < this.#maxOutstanding) this.#send(d);
        }
        if (left === 0 || performance.now() - start > maxS * 1000) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    return Number(((performance.now() - start) / 1000).toFixed(1));
  }

  /**
   * Every device sends once per second (spread over the second) for `warmupS + seconds`; the last `seconds` are measured.
   * The devices are walked in the order of their send times, from a cursor, so a tick looks only at the devices due.
   */
  async measure(seconds: number, warmupS: number, onWindow?: () => void): Promise<FanInSample> {
    const start = performance.now();
    for (const d of this.#devices) {
      d.nextAt = start + Math.random() * 1000;
      d.answered = 0;
    }
    const due = [...this.#devices].sort((a, b) => a.nextAt - b.nextAt);
    let cursor = 0;
    this.#latencies = [];
    this.#errors = 0;
    this.#lastError = null;
    let skipped = 0;
    let held = 0;
    let peak = 0;
    const end = start + (warmupS + seconds) * 1000;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (!this.#recording && now >= start + warmupS * 1000) {
          this.#recording = true;
          onWindow?.();
          skipped = 0;
          held = 0;
          peak = 0;
        }
        // At most one turn per device per tick: after a stall the fleet catches up a second per tick, not all at once.
        for (let n = 0; n < due.length; n++) {
          const d = due[cursor]!;
          if (d.nextAt > now) break;
          d.nextAt += 1000;
          cursor = (cursor + 1) % due.length;
          if (d.waiting || !d.connected) skipped += 1;
          else if (this.#unanswered >= this.#maxOutstanding) held += 1;
          else this.#send(d);
        }
        peak = Math.max(peak, this.#unanswered);
        if (now >= end) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    this.#recording = false;
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    return {
      devices: this.#devices.length,
      seconds,
      answered_per_s: Number((sorted.length / seconds).toFixed(1)),
      skipped_ticks: skipped,
      held_ticks: held,
      peak_unanswered: peak,
      starved_devices: this.#devices.filter((d) => d.answered === 0).length,
      errors: this.#errors,
      last_error: this.#lastError,
      p50_ms: Number(percentile(sorted, 50).toFixed(1)),
      p99_ms: Number(percentile(sorted, 99).toFixed(1)),
      max_ms: Number((sorted.at(-1) ?? Number.NaN).toFixed(1)),
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#keepAlive);
    await Promise.all(this.#devices.map((d) => d.close().catch(() => {})));
    this.#connections?.close();
  }
}

/** CPU time (user + system) a process has used so far, in ms (Linux; 0 once it is gone). */
export function cpuMs(pid: number): number {
  try {
    // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** USER_HZ: Linux reports process times in 1/100 s. */
const CLOCK_TICKS = 100;

/** Resident memory of a process in MiB (Linux). */
export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN;
}
