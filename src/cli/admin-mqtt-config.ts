import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mosquittoPasswordHash } from '../cloud/mqtt/mosquitto-password.js';
import { BROKER_MAX_INFLIGHT, renderAclFile, renderListenerConf, renderPasswordFile } from '../cloud/mqtt/mosquitto-files.js';
import { brokerConfigSchema } from '../protocol/admin-answers.js';
import { DefaultPorts, Routes, SERVER_BODY_LIMIT_BYTES } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { AdminClient } from './admin-client.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { printResult } from './output.js';

export const mqttConfigOptions = {
  server: { flag: 'server', env: 'SYNCLINE_SERVER', kind: 'string', default: 'http://127.0.0.1:8080', description: 'base URL of the syncline server' },
  adminToken: { flag: 'admin-token', env: 'SYNCLINE_ADMIN_TOKEN', kind: 'string', required: true, secret: true, description: 'admin bearer token' },
  outDir: { flag: 'out-dir', env: 'SYNCLINE_MQTT_CONFIG_DIR', kind: 'string', required: true, description: 'directory to write passwd, acl and syncline-listener.conf into' },
  serverUser: { flag: 'server-user', env: 'SYNCLINE_MQTT_SERVER_USER', kind: 'string', default: 'syncline-server', description: "the server's own broker account (the user in the server's MQTT_URL)" },
  serverPassword: { flag: 'server-password', env: 'SYNCLINE_MQTT_SERVER_PASSWORD', kind: 'string', required: true, secret: true, description: "that account's password (hashed here; it never leaves this machine)" },
  listenerPort: { flag: 'listener-port', kind: 'integer', default: DefaultPorts.mqtt, description: 'port of the listener in syncline-listener.conf' },
  listenerHost: { flag: 'listener-host', kind: 'string', default: '0.0.0.0', description: 'address of the listener in syncline-listener.conf' },
  maxPacketBytes: {
    flag: 'max-packet-bytes',
    kind: 'integer',
    default: SERVER_BODY_LIMIT_BYTES,
    description: "max_packet_size written to syncline-listener.conf: the largest packet a client may send (match the server's --body-limit)",
  },
  maxInflightMessages: {
    flag: 'max-inflight-messages',
    kind: 'integer',
    default: BROKER_MAX_INFLIGHT,
    description: "max_inflight_messages written to syncline-listener.conf: QoS 1 messages on their way to a client, the server's account included, before the broker waits for acknowledgements (1 to 65535)",
  },
  json: { flag: 'json', kind: 'boolean', default: false, description: 'print JSON for scripts' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

const USAGE = 'syncline admin mqtt-config --out-dir DIR --server-password PASSWORD [options]';
const SUMMARY = `Writes the Mosquitto password and ACL files that enforce Syncline's topic rules at an external broker:
each active device logs in with its id and token and may publish only on its own uplink topics and
subscribe only to its own control topic; the server's account reads every uplink and writes every control
topic; anonymous clients get nothing. Run it again after creating or revoking devices, then send Mosquitto
SIGHUP to reload. Devices created before this Syncline version have no broker credential and are listed as skipped.`;

/** Writes a file next to its final name first, so Mosquitto never reloads half a file. */
function writeAtomically(path: string, content: string, mode: number): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, path);
}

export async function runAdminMqttConfig(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(`${helpText(USAGE, SUMMARY, mqttConfigOptions)}\n`);
    return 0;
  }
  const { options } = parseCommand(mqttConfigOptions, argv);
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(options.serverUser)) throw new SynclineError('invalid_config', '--server-user must be 1 to 64 letters, digits or _ . @ -', { field: 'serverUser' });
  if (options.maxInflightMessages < 1 || options.maxInflightMessages > 65_535) {
    throw new SynclineError('invalid_config', `--max-inflight-messages must be between 1 and 65535, got ${options.maxInflightMessages}`, { field: 'maxInflightMessages' });
  }
  const accounts = await new AdminClient(options.server, options.adminToken).request('GET', Routes.mqttBrokerConfig, brokerConfigSchema);
  const server = { username: options.serverUser, password_hash: mosquittoPasswordHash(options.serverPassword) };
  const dir = resolve(options.outDir);
  mkdirSync(dir, { recursive: true });
  const files = { passwd: join(dir, 'passwd'), acl: join(dir, 'acl'), conf: join(dir, 'syncline-listener.conf') };
  writeAtomically(files.passwd, renderPasswordFile(server, accounts.devices), 0o600);
  writeAtomically(files.acl, renderAclFile(server, accounts.devices, new Date().toISOString()), 0o644);
  writeAtomically(files.conf, renderListenerConf({ port: options.listenerPort, host: options.listenerHost, passwordFile: files.passwd, aclFile: files.acl, maxPacketBytes: options.maxPacketBytes, maxInflightMessages: options.maxInflightMessages }), 0o644);
  const result = { files, devices: accounts.devices.length, skipped: accounts.skipped };
  printResult(result, options.json, () =>
    [
      `wrote ${files.passwd}, ${files.acl} and ${files.conf} for ${accounts.devices.length} device(s) and the account ${options.serverUser}.`,
      ...accounts.skipped.map((s) => `skipped ${s.device_id} (${s.name}): ${s.reason}`),
      `include ${files.conf} from mosquitto.conf (or copy its lines), make ${files.passwd} readable by the broker's user only (e.g. chown mosquitto), then reload Mosquitto (kill -HUP <pid>).`,
    ].join('\n'),
  );
  return 0;
}
