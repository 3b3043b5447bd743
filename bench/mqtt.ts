import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Agent } from '../src/device/agent.js';
import { Routes } from '../src/protocol/constants.js';
import { HttpTransport } from '../src/transport/http-transport.js';
import { MqttTransport } from '../src/transport/mqtt-transport.js';
import type { Transport } from '../src/transport/transport.js';
import { freePort } from '../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer, type ServerProcess } from '../test/support/processes.js';
import { tempDir } from '../test/support/temp.js';
import { prepareJournal, ROWS } from './drain.js';
import { Fleet, rssMiB, type SimDevice } from './mqtt-fan-in.js';
import { progress, type BenchReport } from './report.js';

/** Fleet sizes of the fan-in figure; SYNCLINE_BENCH_FAN_IN="100,1000" scales it down on a small machine. */
const FAN_IN_SIZES = (process.env.SYNCLINE_BENCH_FAN_IN ?? '100,1000,5000').split(',').map(Number).filter((n) => n > 0);
const FAN_IN_SECONDS = 15;
const FAN_IN_WARMUP_S = 5;
const DRAIN_ROUNDS = 2;
/** SYNCLINE_BENCH_MQTT=drain or =fan-in runs one half. */
const ONLY = process.env.SYNCLINE_BENCH_MQTT;

async function createDevices(server: ServerProcess, count: number, parallel = 16): Promise<SimDevice[]> {
  const devices: SimDevice[] = [];
  const one = async (i: number) => {
    const response = await fetch(`${server.url}${Routes.devices}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `bench-${i}` }),
    });
    const created = (await response.json()) as { device_id: string; token: string };
    devices.push({ id: created.device_id, token: created.token });
  };
  for (let i = 0; i < count; i += parallel) await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, (_, k) => one(i + k)));
  return devices;
}

async function startCloud(dir: string, name: string, databaseUrl: string | undefined, policy: 'auto' | 'review'): Promise<{ server: ServerProcess; mqttUrl: string }> {
  const port = await freePort();
  const server = await startServer({ dataDir: join(dir, name), ...(databaseUrl ? { databaseUrl } : {}), extraArgs: ['--schema-policy', policy, '--mqtt-port', String(port)] });
  return { server, mqttUrl: `mqtt://127.0.0.1:${port}` };
}

async function drainOnce(dbPath: string, transport: Transport): Promise<number> {
  const agent = new Agent({ dbPath, transport, once: true, logger: pino({ level: 'warn' }) });
  const start = process.hrtime.bigint();
  try {
    await agent.run();
  } finally {
    await transport.close?.();
  }
  return ROWS / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** The same 200k-row journal drained over MQTT and over HTTP to one server, each into a lineage of its own. */
async function drainRatio(report: BenchReport, dir: string, databaseUrl: string | undefined, store: string): Promise<void> {
  progress(`mqtt: writing a ${ROWS.toLocaleString('en-US')}-row journal`);
  const journal = prepareJournal(dir);
  const { server, mqttUrl } = await startCloud(dir, 'drain-cloud', databaseUrl, 'auto');
  try {
    // Two rounds, alternating, best of each: neither transport gets the cold server or the bigger database only.
    const rates = { http: [] as number[], mqtt: [] as number[] };
    for (let round = 1; round <= DRAIN_ROUNDS; round++) {
      const [httpDevice, mqttDevice] = await createDevices(server, 2);
      const copies = { http: join(dir, `drain-http-${round}.db`), mqtt: join(dir, `drain-mqtt-${round}.db`) };
      copyFileSync(journal, copies.http);
      copyFileSync(journal, copies.mqtt);
      rates.http.push(await drainOnce(copies.http, new HttpTransport({ serverUrl: server.url, token: httpDevice!.token })));
      rates.mqtt.push(await drainOnce(copies.mqtt, new MqttTransport({ url: mqttUrl, deviceId: mqttDevice!.id, token: mqttDevice!.token })));
      progress(`mqtt: round ${round}: HTTP ${Math.round(rates.http.at(-1)!)} rows/s, MQTT ${Math.round(rates.mqtt.at(-1)!)} rows/s`);
    }
    const http = Math.max(...rates.http);
    const overMqtt = Math.max(...rates.mqtt);
    const ratio = overMqtt / http;
    report.add({
      name: `drain of ${ROWS.toLocaleString('en-US')} rows over MQTT vs HTTP into ${store}`,
      value: ratio,
      unit: 'x of the HTTP drain',
      baseline: 'the same journal drained over HTTP to the same server in the same run',
      target: '>= 0.8',
      met: ratio >= 0.8,
      details: { mqtt_rows_per_s: Math.round(overMqtt), http_rows_per_s: Math.round(http), rounds: { http: rates.http.map(Math.round), mqtt: rates.mqtt.map(Math.round) }, broker: 'embedded (aedes)', note: 'best of the alternating rounds' },
    });
  } finally {
    await server.stop();
  }
}

/** N devices connected at once, each publishing a small batch every second: answer latency and server memory per N. */
async function fanIn(report: BenchReport, dir: string, databaseUrl: string | undefined, store: string): Promise<void> {
  // Review policy: every device's first schema waits for review and its rows are staged, so the
  // figure is the front door and ingest path, not thousands of mirror tables being created.
  const { server, mqttUrl } = await startCloud(dir, 'fan-in-cloud', databaseUrl, 'review');
  const fleet = new Fleet(mqttUrl);
  const rssIdle = rssMiB(server.child.pid!);
  try {
    for (const size of FAN_IN_SIZES) {
      progress(`mqtt fan-in: creating and connecting ${size} devices`);
      await fleet.grow(await createDevices(server, size - fleet.size));
      progress(`mqtt fan-in: ${size} devices publishing every second for ${FAN_IN_WARMUP_S + FAN_IN_SECONDS} s`);
      const sample = await fleet.measure(FAN_IN_SECONDS, FAN_IN_WARMUP_S);
      const rss = rssMiB(server.child.pid!);
      progress(`mqtt fan-in: ${JSON.stringify(sample)} server RSS ${rss} MiB`);
      report.add({
        name: `MQTT fan-in, ${size.toLocaleString('en-US')} devices x 1 batch/s: answer latency p99`,
        value: sample.p99_ms,
        unit: 'ms',
        baseline: `offered ${size} batches/s of ${5} rows; server on ${store}, embedded broker, staging (review policy)`,
        details: { ...sample, offered_per_s: size, server_rss_mib: rss, server_rss_idle_mib: rssIdle },
      });
    }
  } finally {
    await fleet.close();
    await server.stop();
  }
}

/**
 * MQTT benchmarks: the drain ratio against HTTP, and fan-in of many devices.
 * Runs on the real PostgreSQL when reachable, else PGlite.
 */
export async function benchMqtt(report: BenchReport, dir?: string): Promise<void> {
  const own = dir === undefined ? tempDir('syncline-bench-mqtt-') : undefined;
  const root = dir ?? own!.path;
  mkdirSync(root, { recursive: true });
  const onPostgres = await realPostgresReachable();
  const store = onPostgres ? 'PostgreSQL' : 'PGlite';
  try {
    for (const [name, run] of [['drain', drainRatio], ['fan-in', fanIn]] as const) {
      if (ONLY && ONLY !== name) continue;
      const scratch = onPostgres ? await createScratchDatabase() : undefined;
      const groupDir = join(root, name);
      mkdirSync(groupDir, { recursive: true });
      try {
        await run(report, groupDir, scratch?.url, store);
      } finally {
        await scratch?.drop();
      }
    }
  } finally {
    own?.remove();
  }
}
