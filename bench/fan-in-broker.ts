import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, mosquittoListening } from '../test/support/mqtt-fixtures.js';
import { runSyncline, type ServerProcess } from '../test/support/processes.js';

/**
 * The fan-in's external broker: a Mosquitto of the bench's own, set up the way
 * the README's "Running on an external broker" does it — `syncline admin
 * mqtt-config` writes the password, ACL and listener files from the server's
 * devices, Mosquitto includes them, and the server then runs with `--mqtt-url`
 * as the `syncline-server` account. The fleet's devices log in with their ids
 * and tokens, so every connection and publish passes the broker's own checks.
 */

export interface BenchBroker {
  /** mqtt:// URL the devices connect to (no credentials). */
  url: string;
  /** The server's MQTT_URL: the broker with the server account's credentials. */
  serverUrl: string;
  pid: number;
  /** Mosquitto's version line, for the figure's baseline. */
  version: string;
  /** The last lines Mosquitto logged (warnings and errors only). */
  logTail(): string;
  stop(): Promise<void>;
}

/**
 * Writes the files through `server` (which must know every device by now) and
 * starts Mosquitto on a free port. `maxQueued` becomes max_queued_messages: the
 * QoS 1 messages Mosquitto holds for one subscriber beyond those in flight to it
 * before it drops the rest.
 */
export async function startBenchBroker(server: ServerProcess, dir: string, maxQueued: number): Promise<BenchBroker> {
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const generated = await runSyncline(['admin', 'mqtt-config', '--server', server.url, '--out-dir', dir, '--listener-port', String(port), '--listener-host', '127.0.0.1', '--json'], {
    SYNCLINE_ADMIN_TOKEN: server.adminToken,
    SYNCLINE_MQTT_SERVER_PASSWORD: password,
  });
  if (generated.code !== 0) throw new Error(`admin mqtt-config failed: ${generated.stderr}`);
  const { files } = JSON.parse(generated.stdout) as { files: { conf: string } };
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      // Started as root, Mosquitto would switch to the mosquitto user, which cannot read the bench's private files.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'persistence false',
      // Warnings and errors only: logging every PUBLISH would be broker CPU the figure charges to the product.
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      `max_queued_messages ${maxQueued}`,
      // The README's other way to include it: its lines copied in.
      readFileSync(files.conf, 'utf8'),
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-4000)));
  await mosquittoListening(child, port, () => tail);
  const version = /mosquitto version (\S+)/.exec(await mosquittoHelp())?.[1] ?? 'unknown';
  return {
    url: `mqtt://127.0.0.1:${port}`,
    serverUrl: `mqtt://syncline-server:${password}@127.0.0.1:${port}`,
    pid: child.pid!,
    version,
    logTail: () => tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `mosquitto -h` prints the version and exits non-zero. */
async function mosquittoHelp(): Promise<string> {
  const child = spawn('mosquitto', ['-h'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  return out;
}
