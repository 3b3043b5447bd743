import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Agent } from '../src/device/agent.js';
import { HttpTransport } from '../src/transport/http-transport.js';
import { MqttTransport } from '../src/transport/mqtt-transport.js';
import type { Transport } from '../src/transport/transport.js';
import { freePort } from '../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer, type ServerProcess } from '../test/support/processes.js';
import { tempDir } from '../test/support/temp.js';
import { prepareJournal, ROWS } from './drain.js';
import { createDevices } from './fan-in.js';
import { progress, type BenchReport } from './report.js';

const DRAIN_ROUNDS = 2;

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
  const journal = await prepareJournal(dir);
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

/**
 * MQTT benchmark: the drain ratio against HTTP (fan-in is its own group, fan-in.ts).
 * Runs on the real PostgreSQL when reachable, else PGlite.
 */
export async function benchMqtt(report: BenchReport, dir?: string): Promise<void> {
  const own = dir === undefined ? tempDir('syncline-bench-mqtt-') : undefined;
  const root = dir ?? own!.path;
  mkdirSync(root, { recursive: true });
  const onPostgres = await realPostgresReachable();
  const store = onPostgres ? 'PostgreSQL' : 'PGlite';
  try {
    const scratch = onPostgres ? await createScratchDatabase() : undefined;
    try {
      await drainRatio(report, root, scratch?.url, store);
    } finally {
      await scratch?.drop();
    }
  } finally {
    own?.remove();
  }
}
