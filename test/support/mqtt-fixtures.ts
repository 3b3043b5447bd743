import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

/**
 * Real MQTT parts for tests: Debian's mosquitto clients (a client that is not
 * ours), a second Mosquitto broker with generated files, the machine's Mosquitto
 * on 127.0.0.1:1883, and certificates made with openssl.
 */

export const mosquittoClientsInstalled = spawnSync('mosquitto_pub', ['--help']).error === undefined;
export const mosquittoInstalled = spawnSync('mosquitto', ['-h']).error === undefined;

/** The first `event` of an mqtt.js client (its emitter type is its own, not node's). */
export function clientEvent(client: MqttClient, event: 'connect' | 'close' | 'error'): Promise<unknown[]> {
  return new Promise((resolve) => client.once(event, (...args: unknown[]) => resolve(args)));
}

/** An mqtt.js client signed in to `url` as the device (client id and username its id, password its token), once connected; added to `opened` at once, for the test to end. */
export async function connectAsDevice(url: string, device: { device_id: string; token: string }, opened: MqttClient[]): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: device.device_id, username: device.device_id, password: device.token, reconnectPeriod: 0, clean: true });
  opened.push(client);
  await clientEvent(client, 'connect');
  return client;
}

export const REAL_MOSQUITTO_URL = process.env.SYNCLINE_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

/** Waits until a spawned mosquitto listens on `port`; kills it and throws with its log when it exits or takes over 15 s. */
export async function mosquittoListening(child: ChildProcess, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not start:\n${log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  const socket = new Socket();
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
      socket.connect(port, host);
    });
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

export const realMosquittoReachable = await portOpen(Number(new URL(REAL_MOSQUITTO_URL).port || 1883), new URL(REAL_MOSQUITTO_URL).hostname);

/** A port nothing listens on right now (for processes that take a port number rather than 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs mosquitto_pub or mosquitto_sub to completion (killed after `timeoutMs`). */
export async function mosquittoClient(command: 'mosquitto_pub' | 'mosquitto_sub', args: string[], timeoutMs = 15_000): Promise<ClientRun> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** A long-running mosquitto_sub; `lines()` is what it printed so far. */
export function subscriber(args: string[]): { child: ChildProcess; lines(): string[]; stop(): Promise<void> } {
  const child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  return {
    child,
    lines: () => out.split('\n').filter(Boolean),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface MosquittoProcess {
  port: number;
  url: string;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A Mosquitto of the test's own, with `confLines`; on a free port with a listener
 * added here, unless `port` is given (then `confLines` carry the listener).
 */
export async function startMosquitto(dir: string, confLines: string[], given?: number): Promise<MosquittoProcess> {
  const port = given ?? (await freePort());
  const conf = join(dir, `mosquitto-${port}.conf`);
  // Started as root, Mosquitto would switch to the mosquitto user, which cannot read the test's private temp files.
  const user = process.getuid?.() === 0 ? ['user root'] : [];
  writeFileSync(conf, [...(given === undefined ? [`listener ${port} 127.0.0.1`] : []), ...user, 'persistence false', 'log_dest stderr', 'log_type all', ...confLines, ''].join('\n'));
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stderr.on('data', (c: Buffer) => (logs += c.toString()));
  child.stdout.on('data', (c: Buffer) => (logs += c.toString()));
  await mosquittoListening(child, port, () => logs);
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    logs: () => logs,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Writes a client certificate with subject CN = `cn`, signed by `signer` (the test CA unless another is given). */
  client(cn: string, signer?: 'ca' | 'rogue'): { cert: string; key: string };
}

/** A CA, a broker certificate for 127.0.0.1, and client certificates on demand (openssl). */
export function makeCerts(dir: string): TestCerts {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  for (const ca of ['ca', 'rogue']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=syncline test ${ca}`, '-keyout', path(`${ca}.key`), '-out', path(`${ca}.pem`));
  }
  const sign = (name: string, cn: string, signer: string, extensions: string | undefined) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', path(`${name}.key`), '-out', path(`${name}.csr`));
    const ext = extensions ? ['-extfile', path(`${name}.ext`)] : [];
    if (extensions) writeFileSync(path(`${name}.ext`), extensions);
    openssl('x509', '-req', '-in', path(`${name}.csr`), '-CA', path(`${signer}.pem`), '-CAkey', path(`${signer}.key`), '-CAcreateserial', '-days', '2', '-out', path(`${name}.pem`), ...ext);
    return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
  };
  const server = sign('server', '127.0.0.1', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  let n = 0;
  return {
    ca: path('ca.pem'),
    serverCert: server.cert,
    serverKey: server.key,
    client: (cn, signer = 'ca') => sign(`client-${++n}`, cn, signer, undefined),
  };
}
