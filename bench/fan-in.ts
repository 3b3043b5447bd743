import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { join } from 'node:path';
import { Routes } from '../src/protocol/constants.js';
import { freePort } from '../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { startServer, type ServerProcess } from '../test/support/processes.js';
import { cpuMs, Fleet, rssMiB, type FanInSample, type FleetTransport, type SimDevice } from './fan-in-fleet.js';
import { progress, type BenchReport } from './report.js';

/** Fleet sizes; SYNCLINE_BENCH_FAN_IN="100,1000" scales it down on a small machine. */
const FAN_IN_SIZES = (process.env.SYNCLINE_BENCH_FAN_IN ?? '5000,10000').split(',').map(Number).filter((n) => n > 0);
/** Share of the offered batches the cloud must answer in the window for the target to count as met. */
const CARRIED_SHARE = 0.95;
/** SYNCLINE_BENCH_FAN_IN_RUNS="mqtt:review,http:auto" picks transport/policy pairs. */
const RUNS = (process.env.SYNCLINE_BENCH_FAN_IN_RUNS ?? 'mqtt:review,http:review,mqtt:auto,http:auto').split(',').map((r) => r.split(':') as ['mqtt' | 'http', 'review' | 'auto']);
const FAN_IN_SECONDS = 15;
const FAN_IN_WARMUP_S = 5;
/** Longest wait for every device's first batch to be answered before the window (see Fleet.prime). */
const FAN_IN_PRIME_MAX_S = 300;
/**
 * Mosquitto's default max_queued_messages: a subscriber (the server's shared
 * subscription) with more messages waiting loses the rest. The MQTT fleet keeps
 * no more batches unanswered than that, so the figure is one a real broker in
 * front of the server could deliver, not one only the embedded broker allows.
 */
const BROKER_QUEUE_LIMIT = 1000;

/** Devices created through the admin API, `parallel` requests at a time. */
export async function createDevices(server: ServerProcess, count: number, parallel = 32): Promise<SimDevice[]> {
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

/**
 * Where the CPU goes, so a missed latency target can be read against this
 * machine's two cores whatever else runs on it: CPU ms per answered batch in the
 * server process, in the PostgreSQL backends serving its database, and in the
 * simulated fleet; and the rate two cores could sustain at that cost.
 */
interface CpuMeter {
  /** Called when the measured window starts (after the warm-up). */
  start(): void;
  stop(sample: FanInSample): Record<string, number>;
}

/** Waits until the server has worked off what an overloaded run left queued (it burns under a fifth of a core for a second), at most `maxS`. */
async function serverIdle(pid: number, maxS = 180): Promise<void> {
  for (let i = 0; i < maxS; i++) {
    const before = cpuMs(pid);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (cpuMs(pid) - before < 200) return;
  }
}

async function startCpuMeter(serverPid: number, databaseUrl: string | undefined): Promise<CpuMeter> {
  const backends = async (): Promise<number[]> => {
    if (!databaseUrl) return [];
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      return rows.map((r) => r.pid);
    } finally {
      await client.end();
    }
  };
  const pids = await backends();
  let before = { server: 0, pg: new Map<number, number>(), fleet: process.cpuUsage(), at: 0 };
  return {
    start() {
      before = { server: cpuMs(serverPid), pg: new Map(pids.map((p) => [p, cpuMs(p)])), fleet: process.cpuUsage(), at: performance.now() };
    },
    stop(sample) {
      const seconds = (performance.now() - before.at) / 1000;
      const batches = sample.answered_per_s * sample.seconds;
      const server = cpuMs(serverPid) - before.server;
      // Backends that were there at the start (the pool keeps them); one opened later is not counted, which only lowers the figure.
      const postgres = [...before.pg].reduce((sum, [p, start]) => sum + Math.max(0, cpuMs(p) - start), 0);
      const usage = process.cpuUsage(before.fleet);
      const fleet = (usage.user + usage.system) / 1000;
      const per = (ms: number) => Number((ms / Math.max(1, batches)).toFixed(3));
      const total = server + postgres + fleet;
      return {
        window_s: Number(seconds.toFixed(1)),
        server_cpu_ms_per_batch: per(server),
        postgres_cpu_ms_per_batch: per(postgres),
        fleet_cpu_ms_per_batch: per(fleet),
        cores_busy: Number((total / 1000 / seconds).toFixed(2)),
        two_core_capacity_batches_per_s: Math.round((2 * 1000) / Math.max(0.001, total / Math.max(1, batches))),
        load_average_1m: Number(loadavg()[0]!.toFixed(1)),
      };
    },
  };
}

/**
 * Fan-in: N devices, each sending a 5-row batch every second, over MQTT (one
 * connection each, embedded broker) and over HTTP (keep-alive), under the review
 * policy (rows staged) and `auto` (rows materialized into the mirror). The
 * devices run in this process, the server in a process of its own; answer latency
 * is from send to the cloud's ack, which comes only after the commit.
 */
export async function benchFanIn(report: BenchReport, dir: string): Promise<void> {
  const onPostgres = await realPostgresReachable();
  const store = onPostgres ? 'PostgreSQL' : 'PGlite';
  const largest = Math.max(...FAN_IN_SIZES);
  for (const policy of ['review', 'auto'] as const) {
    const transports = RUNS.filter(([, p]) => p === policy).map(([t]) => t);
    if (transports.length === 0) continue;
    const scratch = onPostgres ? await createScratchDatabase() : undefined;
    const port = await freePort();
    const dataDir = join(dir, policy);
    mkdirSync(dataDir, { recursive: true });
    const server = await startServer({ dataDir, ...(scratch ? { databaseUrl: scratch.url } : {}), extraArgs: ['--schema-policy', policy, '--mqtt-port', String(port)] });
    try {
      progress(`fan-in (${policy}): creating ${largest} devices`);
      const devices = await createDevices(server, largest);
      for (const kind of transports) {
        const transport: FleetTransport = kind === 'mqtt' ? { kind, url: `mqtt://127.0.0.1:${port}` } : { kind, url: server.url };
        const fleet = new Fleet(transport, kind === 'mqtt' ? { maxOutstanding: BROKER_QUEUE_LIMIT } : {});
        try {
          for (const size of FAN_IN_SIZES) {
            await fleet.grow(devices.slice(fleet.size, size));
            progress(`fan-in ${kind} (${policy}): first batches of ${size} devices`);
            const primeS = await fleet.prime(FAN_IN_PRIME_MAX_S);
            await serverIdle(server.child.pid!);
            progress(`fan-in ${kind} (${policy}): ${size} devices sending every second for ${FAN_IN_WARMUP_S + FAN_IN_SECONDS} s`);
            const meter = await startCpuMeter(server.child.pid!, scratch?.url);
            const sample = await fleet.measure(FAN_IN_SECONDS, FAN_IN_WARMUP_S, () => meter.start());
            const cpu = meter.stop(sample);
            const rss = rssMiB(server.child.pid!);
            progress(`fan-in ${kind} (${policy}): ${JSON.stringify({ ...sample, ...cpu })} server RSS ${rss} MiB`);
            report.add({
              name: `${kind.toUpperCase()} fan-in, ${size.toLocaleString('en-US')} devices x 1 batch/s (${policy === 'auto' ? 'materialized' : 'staged'}): answer latency p99`,
              // No answer inside the window: the p99 is longer than the whole run, reported as that bound.
              value: Number.isFinite(sample.p99_ms) ? sample.p99_ms : (FAN_IN_WARMUP_S + FAN_IN_SECONDS) * 1000,
              unit: 'ms',
              baseline: `offered ${size} batches/s of 5 rows; server on ${store}; ${kind === 'mqtt' ? `embedded broker, at most ${BROKER_QUEUE_LIMIT} batches unanswered (Mosquitto's max_queued_messages)` : 'HTTP keep-alive'}; schema policy ${policy}; met also needs >= ${CARRIED_SHARE * 100} % of the offered batches answered`,
              target: '< 1000',
              // Met only when the cloud also carries what is offered: a tick held at the broker's queue limit or skipped behind an unanswered batch is load it did not take.
              met: sample.p99_ms < 1000 && sample.starved_devices === 0 && sample.answered_per_s >= CARRIED_SHARE * size,
              details: { ...sample, offered_per_s: size, first_batches_s: primeS, server_rss_mib: rss, ...cpu, ...(Number.isFinite(sample.p99_ms) ? {} : { p99_at_least_ms: (FAN_IN_WARMUP_S + FAN_IN_SECONDS) * 1000 }) },
            });
          }
        } finally {
          await fleet.close();
        }
      }
    } finally {
      await server.stop();
      await scratch?.drop();
    }
  }
}
