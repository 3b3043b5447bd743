import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { uuidv7 } from 'uuidv7';
import type { DownlinkMessage } from '../src/protocol/control.js';
import { deviceRoot, deviceTopic } from '../src/protocol/topics.js';
import { noDelay } from '../src/transport/mqtt-transport.js';
import { columns, wireBatch } from '../test/support/batches.js';

/**
 * Simulated devices for the fan-in benchmark: each holds one MQTT connection
 * (persistent session, client id = device id), publishes a small batch every
 * second and measures the time to the cloud's answer. Like the real publisher a
 * device has one batch of its table in flight: when the answer to the previous
 * one has not come, the tick is skipped (and counted), so an overloaded cloud
 * shows as lower throughput and higher latency instead of an unbounded queue.
 */

export interface SimDevice {
  id: string;
  token: string;
}

const COLUMNS = columns([['id', 'INTEGER', 1], ['v', 'TEXT']]);
const ROWS_PER_BATCH = 5;

class Simulated {
  readonly client: MqttClient;
  readonly #topic: string;
  readonly #epoch = uuidv7();
  #seq = 0;
  #pending: { batchId: string; sentAt: number } | undefined;
  nextAt = 0;

  constructor(device: SimDevice, url: string, onAnswer: (ms: number) => void) {
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
      onAnswer(performance.now() - this.#pending.sentAt);
      this.#pending = undefined;
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Publishes the next batch unless the previous one is unanswered; returns whether it published. */
  tick(): boolean {
    if (this.#pending || !this.client.connected) return false;
    const rows = Array.from({ length: ROWS_PER_BATCH }, () => {
      this.#seq += 1;
      return { seq: this.#seq, op: 'insert' as const, pk: [this.#seq], row: [this.#seq, `value ${this.#seq}`] };
    });
    const batch = wireBatch({ table: 'readings', columns: COLUMNS, rows, epoch: this.#epoch });
    this.#pending = { batchId: batch.batch_id, sentAt: performance.now() };
    this.client.publish(this.#topic, JSON.stringify(batch), { qos: 1 });
    return true;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

export interface FanInSample {
  devices: number;
  seconds: number;
  /** Batches answered per second over the window. */
  answered_per_s: number;
  /** Ticks skipped because the previous batch was still unanswered. */
  skipped_ticks: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A fleet that grows: `grow` connects more devices, `measure` runs every connected device for a window. */
export class Fleet {
  readonly #url: string;
  readonly #devices: Simulated[] = [];
  #latencies: number[] = [];
  #recording = false;

  constructor(url: string) {
    this.#url = url;
  }

  get size(): number {
    return this.#devices.length;
  }

  /** Connects `devices`, a wave at a time, and waits until all are connected. */
  async grow(devices: readonly SimDevice[], wave = 200): Promise<void> {
    for (let i = 0; i < devices.length; i += wave) {
      const joined = devices.slice(i, i + wave).map((d) => new Simulated(d, this.#url, (ms) => this.#recording && this.#latencies.push(ms)));
      this.#devices.push(...joined);
      await Promise.all(joined.map((d) => (d.connected ? undefined : new Promise<void>((resolve) => d.client.once('connect', () => resolve())))));
    }
  }

  /** Every device publishes once per second (spread over the second) for `warmupS + seconds`; the last `seconds` are measured. */
  async measure(seconds: number, warmupS: number): Promise<FanInSample> {
    const start = performance.now();
    for (const d of this.#devices) d.nextAt = start + Math.random() * 1000;
    this.#latencies = [];
    let skipped = 0;
    const end = start + (warmupS + seconds) * 1000;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        if (!this.#recording && now >= start + warmupS * 1000) {
          this.#recording = true;
          skipped = 0;
        }
        for (const d of this.#devices) {
          if (d.nextAt > now) continue;
          d.nextAt += 1000;
          if (!d.tick()) skipped += 1;
        }
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
      p50_ms: Number(percentile(sorted, 50).toFixed(1)),
      p99_ms: Number(percentile(sorted, 99).toFixed(1)),
      max_ms: Number((sorted.at(-1) ?? Number.NaN).toFixed(1)),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#devices.map((d) => d.close().catch(() => {})));
  }
}

/** Resident memory of a process in MiB (Linux). */
export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN;
}
