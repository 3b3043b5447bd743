import { readFileSync } from 'node:fs';
import http from 'node:http';
import mqtt, { type MqttClient } from 'mqtt';
import { uuidv7 } from 'uuidv7';
import { Headers, Routes } from '../src/protocol/constants.js';
import type { DownlinkMessage } from '../src/protocol/control.js';
import { deviceRoot, deviceTopic } from '../src/protocol/topics.js';
import { noDelay } from '../src/transport/mqtt-transport.js';
import { columns, wireBatch } from '../test/support/batches.js';

/**
 * Simulated devices for the fan-in benchmark: each publishes a small batch every
 * second, over its own MQTT connection (persistent session, client id = device
 * id) or over HTTP keep-alive connections, and measures the time to the cloud's
 * answer. Like the real publisher a device has one batch of its table in flight:
 * when the answer to the previous one has not come, the tick is skipped (and
 * counted), so an overloaded cloud shows as lower throughput and higher latency
 * instead of an unbounded queue.
 */

export interface SimDevice {
  id: string;
  token: string;
}

const COLUMNS = columns([['id', 'INTEGER', 1], ['v', 'TEXT']]);
const ROWS_PER_BATCH = 5;

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

/** A device's journal; `base` keeps its row ids apart from those an earlier fleet of the same devices sent (a new epoch starts seqs at 1 again). */
interface SimJournal {
  seq: number;
  epoch: string;
  base: number;
}

const newJournal = (): SimJournal => ({ seq: 0, epoch: uuidv7(), base: Date.now() * 1000 });

/** The envelope every batch shares: a device fingerprints its table's schema once, not per batch (the canonical JSON it hashes costs ~13 us a batch under load). */
const TEMPLATE = wireBatch({ table: 'readings', columns: COLUMNS, rows: [] });

function nextBatch(state: SimJournal): ReturnType<typeof wireBatch> {
  const rows = Array.from({ length: ROWS_PER_BATCH }, () => {
    state.seq += 1;
    const id = state.base + state.seq;
    return { seq: state.seq, op: 'insert' as const, pk: [id], row: [id, `value ${state.seq}`] };
  });
  return { ...TEMPLATE, batch_id: uuidv7(), journal_epoch: state.epoch, first_seq: rows[0]!.seq, last_seq: rows[rows.length - 1]!.seq, rows };
}

class MqttDevice implements SimClient {
  readonly client: MqttClient;
  readonly #topic: string;
  readonly #journal = newJournal();
  #pending: { batchId: string; sentAt: number } | undefined;
  nextAt = 0;
  answered = 0;
  primed = false;

  constructor(device: SimDevice, url: string, onAnswer: (ms: number) => boolean) {
    const root = deviceRoot('default', device.id);
    this.#topic = deviceTopic(root, 'rowBatch');
    this.client = mqtt.connect(url, { clientId: device.id, username: device.id, password: device.token, clean: false, protocolVersion: 4, reconnectPeriod: 2000, connectTimeout: 60_000, keepalive: 120 });
    this.client.on('connect', () => {
      noDelay(this.client);
      void this.client.subscribe(deviceTopic(root, 'control'), { qos: 1 });
    });
    this.client.on('message', (_topic, payload) => {
      const message = JSON.parse(payload.toString()) as DownlinkMessage;
      if (message.type !== 'batch_ack' || message.ack.batch_id !== this.#pending?.batchId) return;
      if (onAnswer(performance.now() - this.#pending.sentAt)) this.answered += 1;
      this.primed = true;
      this.#pending = undefined;
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get waiting(): boolean {
    return this.#pending !== undefined;
  }

  ready(): Promise<void> {
    return this.client.connected ? Promise.resolve() : new Promise((resolve) => this.client.once('connect', () => resolve()));
  }

  /** Publishes the next batch unless the previous one is unanswered; returns whether it published. */
  tick(): boolean {
    if (this.#pending || !this.client.connected) return false;
    const batch = nextBatch(this.#journal);
    this.#pending = { batchId: batch.batch_id, sentAt: performance.now() };
    this.client.publish(this.#topic, JSON.stringify(batch), { qos: 1 });
    return true;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

/**
 * A device posting its batches over HTTP. All devices of the fleet share one
 * keep-alive agent (a process holds only so many sockets; the server caps
 * connections at 5,000 by default), so each request reuses an open connection.
 */
class HttpDevice implements SimClient {
  readonly #url: URL;
  readonly #token: string;
  readonly #agent: http.Agent;
  readonly #onAnswer: (ms: number) => boolean;
  readonly #onError: (reason: string) => void;
  readonly #journal = newJournal();
  #sentAt: number | undefined;
  nextAt = 0;
  answered = 0;
  primed = false;
  readonly connected = true;

  constructor(device: SimDevice, baseUrl: string, agent: http.Agent, onAnswer: (ms: number) => boolean, onError: (reason: string) => void) {
    this.#url = new URL(Routes.rowBatch, baseUrl);
    this.#onError = onError;
    this.#token = device.token;
    this.#agent = agent;
    this.#onAnswer = onAnswer;
  }

  get waiting(): boolean {
    return this.#sentAt !== undefined;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  tick(): boolean {
    if (this.#sentAt !== undefined) return false;
    const body = JSON.stringify(nextBatch(this.#journal));
    const sentAt = performance.now();
    this.#sentAt = sentAt;
    const request = http.request(this.#url, {
      method: 'POST',
      agent: this.#agent,
      headers: { [Headers.authorization]: `Bearer ${this.#token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const done = (failure: string | undefined) => {
      if (this.#sentAt !== sentAt) return;
      this.#sentAt = undefined;
      if (failure !== undefined) this.#onError(failure);
      else {
        if (this.#onAnswer(performance.now() - sentAt)) this.answered += 1;
        this.primed = true;
      }
    };
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => done(response.statusCode === 200 ? undefined : `HTTP ${response.statusCode}`));
    });
    request.on('error', (error) => done(error.message));
    request.end(body);
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
  /** Requests that failed (HTTP status or socket error) in the window, and the last reason. */
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

/** A fleet that grows: `grow` connects more devices, `measure` runs every connected device for a window. */
export class Fleet {
  readonly #transport: FleetTransport;
  readonly #devices: SimClient[] = [];
  /** Unanswered batches the fleet allows at once; a tick beyond is held (counted), as a broker queue limit would drop it. */
  readonly #maxOutstanding: number;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });
  #latencies: number[] = [];
  #recording = false;
  #errors = 0;
  #lastError: string | null = null;

  constructor(transport: FleetTransport, options: { maxOutstanding?: number } = {}) {
    this.#transport = transport;
    this.#maxOutstanding = options.maxOutstanding ?? Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.#devices.length;
  }

  /** Connects `devices`, a wave at a time, and waits until all are connected. */
  async grow(devices: readonly SimDevice[], wave = 200): Promise<void> {
    const onAnswer = (ms: number) => {
      if (this.#recording) this.#latencies.push(ms);
      return this.#recording;
    };
    const onError = (reason: string) => {
      if (!this.#recording) return;
      this.#errors += 1;
      this.#lastError = reason;
    };
    const t = this.#transport;
    for (let i = 0; i < devices.length; i += wave) {
      const joined = devices.slice(i, i + wave).map((d): SimClient => (t.kind === 'mqtt' ? new MqttDevice(d, t.url, onAnswer) : new HttpDevice(d, t.url, this.#agent, onAnswer, onError)));
      this.#devices.push(...joined);
      await Promise.all(joined.map((d) => d.ready()));
    }
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
        let unanswered = 0;
        for (const d of this.#devices) if (d.waiting) unanswered += 1;
        let left = 0;
        for (const d of this.#devices) {
          if (d.primed) continue;
          left += 1;
          if (!d.waiting && d.connected && unanswered < this.#maxOutstanding && d.tick()) unanswered += 1;
        }
        if (left === 0 || performance.now() - start > maxS * 1000) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    return Number(((performance.now() - start) / 1000).toFixed(1));
  }

  /** Every device sends once per second (spread over the second) for `warmupS + seconds`; the last `seconds` are measured. */
  async measure(seconds: number, warmupS: number, onWindow?: () => void): Promise<FanInSample> {
    const start = performance.now();
    for (const d of this.#devices) {
      d.nextAt = start + Math.random() * 1000;
      d.answered = 0;
    }
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
        let unanswered = 0;
        for (const d of this.#devices) if (d.waiting) unanswered += 1;
        for (const d of this.#devices) {
          if (d.nextAt > now) continue;
          d.nextAt += 1000;
          if (d.waiting || !d.connected) skipped += 1;
          else if (unanswered >= this.#maxOutstanding) held += 1;
          else if (d.tick()) unanswered += 1;
        }
        peak = Math.max(peak, unanswered);
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
    await Promise.all(this.#devices.map((d) => d.close().catch(() => {})));
    this.#agent.destroy();
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
