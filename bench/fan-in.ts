import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { join } from 'node:path';
import { Routes } from '../src/protocol/constants.js';
import { freePort } from '../test/support/mqtt-fixtures.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { processTree, startServer, type ServerProcess } from '../test/support/processes.js';
import { startBenchBroker, type BenchBroker } from './fan-in-broker.js';
import { cpuMs, Fleet, rssMiB, type FanInSample, type FleetTransport, type SimDevice } from './fan-in-fleet.js';
import { progress, type BenchReport } from './report.js';

/** Fleet sizes; SYNCLINE_BENCH_FAN_IN="100,1000" scales it down on a small machine. */
const FAN_IN_SIZES = (process.env.SYNCLINE_BENCH_FAN_IN ?? '5000,10000').split(',').map(Number).filter((n) => n > 0);
/** Share of the offered batches the cloud must answer in the window for the target to count as met. */
const CARRIED_SHARE = 0.95;
/** How devices reach the server: the embedded broker, HTTP, or a Mosquitto of the bench's own in front of a server on --mqtt-url. */
type RunKind = 'mqtt' | 'http' | 'mqtt-broker';
/**
 * How the rows land: staged under review, materialized under auto into a mirror
 * per device (the default), or under auto into one mirror per table for the
 * whole project (`coalesced`: the project's coalescing set to `project`).
 */
type RunPolicy = 'review' | 'auto' | 'coalesced';
/** SYNCLINE_BENCH_FAN_IN_RUNS="mqtt:review,http:auto,mqtt-broker:coalesced" picks transport/policy pairs. */
const RUNS = (process.env.SYNCLINE_BENCH_FAN_IN_RUNS ?? 'mqtt:review,http:review,mqtt-broker:review,mqtt:auto,http:auto,mqtt-broker:auto,mqtt:coalesced,http:coalesced,mqtt-broker:coalesced')
  .split(',')
  .map((r) => r.split(':') as [RunKind, RunPolicy]);
/**
 * Server processes behind the Mosquitto of the mqtt-broker runs, sharing one
 * subscription (--mqtt-share-group): how a fleet past one Node process's main
 * thread is served. SYNCLINE_BENCH_FAN_IN_BROKER_SERVERS=1 measures one.
 */
const BROKER_SERVERS = Math.max(1, Number(process.env.SYNCLINE_BENCH_FAN_IN_BROKER_SERVERS ?? 2));
/**
 * Worker processes of the server the HTTP and embedded-broker runs talk to
 * (`server --workers`, on PostgreSQL only): HTTP connections are spread over
 * them, the embedded broker lives in the first. SYNCLINE_BENCH_FAN_IN_WORKERS=1
 * measures one process.
 */
const SERVER_WORKERS = Math.max(1, Number(process.env.SYNCLINE_BENCH_FAN_IN_WORKERS ?? 2));
/**
 * The young generation's semi-space of every server process, as an operator of a
 * fleet this size would set it (NODE_OPTIONS; V8 fixes it at start): each batch's
 * parsed and decoded objects live until its commit, so with ~1,000 batches in
 * flight the default 16 MB makes scavenges copy them again and again. Three
 * alternating pairs of MQTT 5,000 staged runs: server CPU per batch 0.22-0.24 ->
 * 0.19-0.21 ms with 64. SYNCLINE_BENCH_FAN_IN_SEMI_SPACE_MIB=0 leaves V8's default.
 */
const SEMI_SPACE_MIB = Number(process.env.SYNCLINE_BENCH_FAN_IN_SEMI_SPACE_MIB ?? 64);
const FAN_IN_SECONDS = 15;
const FAN_IN_WARMUP_S = 5;
/** Longest wait for every device's first batch to be answered before the window (see Fleet.prime). */
const FAN_IN_PRIME_MAX_S = 300;
/**
 * Mosquitto's default max_queued_messages: a subscriber (the server's shared
 * subscription) with more messages waiting loses the rest. The MQTT fleet keeps
 * no more batches unanswered than that, so the figure is one a real broker in
 * front of the server could deliver, not one only the embedded broker allows.
 * The mqtt-broker run's Mosquitto gets exactly this max_queued_messages (not
 * whatever the distribution defaults to): every message it queues for the server
 * is an unanswered batch, so the fleet's cap keeps its queue within the limit
 * (the limit counts beyond the messages in flight: `admin mqtt-config` writes max_inflight_messages 1000) and a drop would show as a starved
 * device rather than pass unseen.
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

/** Sets the default project's coalescing through the admin API, before any device has a mirror. */
async function setCoalescing(server: ServerProcess, coalescing: 'none' | 'project'): Promise<void> {
  const response = await fetch(`${server.url}${Routes.projectSettings.replace(':id', 'default')}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ coalescing }),
  });
  if (!response.ok) throw new Error(`setting the project's coalescing failed: ${response.status} ${await response.text()}`);
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
  stop(sample: FanInSample): Promise<Record<string, number>>;
}

/** Waits until the server's processes have worked off what an overloaded run left queued (together they burn under a fifth of a core for a second), at most `maxS`. */
async function serverIdle(pids: readonly number[], maxS = 180): Promise<void> {
  const cpu = () => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  for (let i = 0; i < maxS; i++) {
    const before = cpu();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (cpu() - before < 200) return;
  }
}

/** How often the meter looks for the database's backends during the window. */
const BACKEND_POLL_MS = 500;

/**
 * The PostgreSQL backends are polled through the window, not only listed once:
 * the server's pool closes a connection idle for 10 s (the warm-up and the wait
 * for an idle server leave some idle) and opens new ones under load, and a
 * backend opened in the window did all its work there. Counting only those present
 * before the window left that out, by a varying share: the same HTTP batches
 * measured 0.02-0.14 ms of PostgreSQL CPU from run to run. A backend that exits
 * between polls loses at most its last half second.
 */
async function startCpuMeter(serverPids: readonly number[], databaseUrl: string | undefined, brokerPid?: number): Promise<CpuMeter> {
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const client = databaseUrl ? new pg.Client({ connectionString: databaseUrl }) : undefined;
  await client?.connect();
  const backends = async (): Promise<number[]> => {
    if (!client) return [];
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    return rows.map((r) => r.pid);
  };
  /** Each backend's CPU at the window's start, or 0 for one opened in the window; and when last seen. */
  const seen = new Map<number, { first: number; last: number }>();
  const poll = async (inWindow: boolean): Promise<void> => {
    for (const pid of await backends()) {
      const now = cpuMs(pid);
      const entry = seen.get(pid);
      if (entry && inWindow) entry.last = Math.max(entry.last, now);
      else seen.set(pid, { first: inWindow ? 0 : now, last: now });
    }
  };
  let polling: NodeJS.Timeout | undefined;
  let before = { server: 0, broker: 0, fleet: process.cpuUsage(), at: 0 };
  return {
    start() {
      before = { server: serverCpu(), broker: brokerPid ? cpuMs(brokerPid) : 0, fleet: process.cpuUsage(), at: performance.now() };
      // Backends open now count from here (a query's few ms late), later ones from their start.
      void poll(false)
        .catch(() => {})
        .then(() => (polling = setInterval(() => void poll(true).catch(() => {}), BACKEND_POLL_MS)));
    },
    async stop(sample) {
      clearInterval(polling);
      const seconds = (performance.now() - before.at) / 1000;
      const server = serverCpu() - before.server;
      const usage = process.cpuUsage(before.fleet);
      // An external broker is a process of its own; the embedded one is inside the server's figure.
      const broker = brokerPid ? cpuMs(brokerPid) - before.broker : 0;
      await poll(true);
      await client?.end();
      const postgres = [...seen.values()].reduce((sum, { first, last }) => sum + Math.max(0, last - first), 0);
      const batches = sample.answered_per_s * sample.seconds;
      const fleet = (usage.user + usage.system) / 1000;
      const per = (ms: number) => Number((ms / Math.max(1, batches)).toFixed(3));
      const total = server + postgres + fleet + broker;
      return {
        window_s: Number(seconds.toFixed(1)),
        server_cpu_ms_per_batch: per(server),
        postgres_cpu_ms_per_batch: per(postgres),
        fleet_cpu_ms_per_batch: per(fleet),
        ...(brokerPid ? { broker_cpu_ms_per_batch: per(broker) } : {}),
        cores_busy: Number((total / 1000 / seconds).toFixed(2)),
        two_core_capacity_batches_per_s: Math.round((2 * 1000) / Math.max(0.001, total / Math.max(1, batches))),
        load_average_1m: Number(loadavg()[0]!.toFixed(1)),
      };
    },
  };
}

/**
 * Fan-in: N devices, each sending a 5-row batch every second, over MQTT (one
 * connection each, embedded broker or a Mosquitto in front of the server) and over
 * HTTP (keep-alive), under the review
 * policy (rows staged), `auto` (rows materialized into a mirror per device) and
 * `auto` with the project's mirrors coalesced (one mirror per table). The
 * devices run in this process, the server in a process of its own; answer latency
 * is from send to the cloud's ack, which comes only after the commit.
 */
export async function benchFanIn(report: BenchReport, dir: string): Promise<void> {
  const onPostgres = await realPostgresReachable();
  const store = onPostgres ? 'PostgreSQL' : 'PGlite';
  const largest = Math.max(...FAN_IN_SIZES);
  for (const policy of ['review', 'auto', 'coalesced'] as const) {
    // The external broker's run last: it restarts the server on --mqtt-url, and the embedded runs need the server as first started.
    const transports = RUNS.filter(([, p]) => p === policy)
      .map(([t]) => t)
      .sort((a, b) => Number(a === 'mqtt-broker') - Number(b === 'mqtt-broker'));
    if (transports.length === 0) continue;
    const scratch = onPostgres ? await createScratchDatabase() : undefined;
    const port = await freePort();
    const dataDir = join(dir, policy);
    mkdirSync(dataDir, { recursive: true });
    const serverEnv = SEMI_SPACE_MIB > 0 ? { env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=${SEMI_SPACE_MIB}`.trim() } } : {};
    const serverArgs = (mqtt: string[]) => ({ dataDir, ...(scratch ? { databaseUrl: scratch.url } : {}), ...serverEnv, extraArgs: ['--schema-policy', policy === 'review' ? 'review' : 'auto', ...mqtt] });
    const workers = scratch ? SERVER_WORKERS : 1;
    let server = await startServer(serverArgs(['--mqtt-port', String(port), '--workers', String(workers)]));
    // The servers taking the fleet's batches: the first alone, or the mqtt-broker run's several.
    let servers = [server];
    let broker: BenchBroker | undefined;
    try {
      if (policy === 'coalesced') await setCoalescing(server, 'project');
      progress(`fan-in (${policy}): creating ${largest} devices`);
      const devices = await createDevices(server, largest);
      for (const kind of transports) {
        if (kind === 'mqtt-broker' && !broker) {
          // The README's order: the broker's files from a server that knows every device, the broker, then the server on it.
          progress(`fan-in (${policy}): starting Mosquitto, the server on --mqtt-url`);
          broker = await startBenchBroker(server, join(dataDir, 'mosquitto'), BROKER_QUEUE_LIMIT);
          await server.stop();
          servers = [];
          for (let i = 0; i < BROKER_SERVERS; i++) {
            const own = { ...serverArgs(['--mqtt-url', broker.serverUrl]), dataDir: join(dataDir, `server-${i}`) };
            servers.push(await startServer(own));
          }
          server = servers[0]!;
        }
        const transport: FleetTransport = kind === 'http' ? { kind, url: server.url } : { kind: 'mqtt', url: kind === 'mqtt-broker' ? broker!.url : `mqtt://127.0.0.1:${port}` };
        const fleet = new Fleet(transport, kind === 'http' ? {} : { maxOutstanding: BROKER_QUEUE_LIMIT });
        try {
          for (const size of FAN_IN_SIZES) {
            await fleet.grow(devices.slice(fleet.size, size));
            progress(`fan-in ${kind} (${policy}): first batches of ${size} devices`);
            const primeS = await fleet.prime(FAN_IN_PRIME_MAX_S);
            // A server's CPU and memory are its whole process tree: the primary of --workers and every worker.
            const serverPids = servers.flatMap((s) => processTree(s.child.pid!));
            await serverIdle(serverPids);
            progress(`fan-in ${kind} (${policy}): ${size} devices sending every second for ${FAN_IN_WARMUP_S + FAN_IN_SECONDS} s`);
            const brokerPid = kind === 'mqtt-broker' ? broker!.pid : undefined;
            const meter = await startCpuMeter(serverPids, scratch?.url, brokerPid);
            const sample = await fleet.measure(FAN_IN_SECONDS, FAN_IN_WARMUP_S, () => meter.start());
            const cpu = await meter.stop(sample);
            const rss = serverPids.reduce((sum, pid) => sum + rssMiB(pid), 0);
            const brokerRss = brokerPid ? { broker_rss_mib: rssMiB(brokerPid) } : {};
            progress(`fan-in ${kind} (${policy}): ${JSON.stringify({ ...sample, ...cpu })} server RSS ${rss} MiB`);
            const via = {
              'mqtt-broker': `Mosquitto ${broker?.version} in its own process (files from admin mqtt-config, max_queued_messages ${BROKER_QUEUE_LIMIT}; its CPU counted), ${servers.length} server process${servers.length > 1 ? 'es' : ''} on --mqtt-url sharing one subscription (their CPU summed), at most ${BROKER_QUEUE_LIMIT} batches unanswered`,
              mqtt: `embedded broker${workers > 1 ? ` in each of the server's ${workers} worker processes (the cluster hands each device connection to the next; their CPU summed)` : ''}, at most ${BROKER_QUEUE_LIMIT} batches unanswered (Mosquitto's max_queued_messages)`,
              http: `HTTP keep-alive, the server's connections spread over ${workers} worker process${workers > 1 ? 'es' : ''} (--workers ${workers}; their CPU summed)`,
            }[kind];
            report.add({
              name: `${kind === 'mqtt-broker' ? 'MQTT via Mosquitto' : kind.toUpperCase()} fan-in, ${size.toLocaleString('en-US')} devices x 1 batch/s (${{ review: 'staged', auto: 'materialized', coalesced: 'materialized, one mirror per table' }[policy]}): answer latency p99`,
              // No answer inside the window: the p99 is longer than the whole run, reported as that bound.
              value: Number.isFinite(sample.p99_ms) ? sample.p99_ms : (FAN_IN_WARMUP_S + FAN_IN_SECONDS) * 1000,
              unit: 'ms',
              baseline: `offered ${size} batches/s of 5 rows; server on ${store}${SEMI_SPACE_MIB > 0 ? ` with --max-semi-space-size=${SEMI_SPACE_MIB}` : ''}; ${via}; schema policy ${policy === 'coalesced' ? "auto, the project's mirrors coalesced" : policy}; met also needs >= ${CARRIED_SHARE * 100} % of the offered batches answered`,
              target: '< 1000',
              // Met only when the cloud also carries what is offered: a tick held at the broker's queue limit or skipped behind an unanswered batch is load it did not take.
              met: sample.p99_ms < 1000 && sample.starved_devices === 0 && sample.answered_per_s >= CARRIED_SHARE * size,
              details: { ...sample, offered_per_s: size, first_batches_s: primeS, server_rss_mib: rss, ...brokerRss, ...cpu, ...(Number.isFinite(sample.p99_ms) ? {} : { p99_at_least_ms: (FAN_IN_WARMUP_S + FAN_IN_SECONDS) * 1000 }) },
            });
          }
        } finally {
          await fleet.close();
        }
      }
    } finally {
      for (const s of new Set([server, ...servers])) await s.stop();
      await broker?.stop();
      await scratch?.drop();
    }
  }
}
