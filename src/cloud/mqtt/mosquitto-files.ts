import { channelFilter, UPLINK_CHANNELS, type TopicChannel } from '../../protocol/topics.js';
import type { Queryable } from '../store/store.js';
import { deviceTopics } from './acl.js';

/**
 * The password and ACL files that make an external Mosquitto enforce what the
 * embedded broker enforces: each device logs in as its id with its token and may
 * publish only on its own uplink topics and read only its own control topic;
 * the server's account reads every uplink and writes every control topic;
 * anyone else gets nothing.
 */

export interface BrokerAccount {
  device_id: string;
  project_id: string;
  /** `$7$` hash of the device token (see mosquitto-password.ts). */
  password_hash: string;
}

export interface BrokerAccounts {
  devices: BrokerAccount[];
  /** Active devices that cannot be written (created before broker credentials were kept). */
  skipped: { device_id: string; name: string; reason: string }[];
}

/** Every active device, with its broker credential. */
export async function listBrokerAccounts(db: Queryable): Promise<BrokerAccounts> {
  const { rows } = await db.query<{ id: string; project_id: string; name: string; password_hash: string | null }>(
    `SELECT d.id::text AS id, d.project_id, d.name, c.password_hash
     FROM devices d LEFT JOIN device_broker_credentials c ON c.device_id = d.id
     WHERE d.revoked_at IS NULL ORDER BY d.created_at, d.id`,
  );
  const result: BrokerAccounts = { devices: [], skipped: [] };
  for (const row of rows) {
    if (row.password_hash) result.devices.push({ device_id: row.id, project_id: row.project_id, password_hash: row.password_hash });
    else result.skipped.push({ device_id: row.id, name: row.name, reason: 'created before broker credentials were kept; create a new device for it' });
  }
  return result;
}

/** The account the server itself uses on the broker (MQTT_URL's user and password). */
export interface ServerAccount {
  username: string;
  password_hash: string;
}

const SERVER_READS: readonly TopicChannel[] = UPLINK_CHANNELS;

export function renderPasswordFile(server: ServerAccount, devices: readonly BrokerAccount[]): string {
  return [`${server.username}:${server.password_hash}`, ...devices.map((d) => `${d.device_id}:${d.password_hash}`)].join('\n') + '\n';
}

export function renderAclFile(server: ServerAccount, devices: readonly BrokerAccount[], generatedAt: string): string {
  const lines = [
    `# Written by syncline admin mqtt-config at ${generatedAt}.`,
    '# Write it again after devices are created or revoked, then reload Mosquitto (SIGHUP).',
    '# No topic lines before the first "user": anonymous clients may do nothing.',
    '',
    `user ${server.username}`,
    ...SERVER_READS.map((c) => `topic read ${channelFilter(c)}`),
    `topic write ${channelFilter('control')}`,
  ];
  for (const device of devices) {
    const topics = deviceTopics(device);
    lines.push('', `user ${device.device_id}`, ...topics.write.map((t) => `topic write ${t}`), ...topics.read.map((t) => `topic read ${t}`));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A mosquitto.conf fragment that turns the files on for one listener, with the packet
 * size limit the embedded broker applies and the in-flight window toward the server
 * (global options: they cover every listener).
 */
/**
 * Mosquitto's in-flight window written by default: the server acknowledges a batch
 * as soon as its work queue has room (1,024 queued; back-pressure holds the PUBACK
 * beyond that), so a window this size keeps it fed at thousands of batches/s, where
 * Mosquitto's default of 20 held a 5,000-device fan-in to 4,500 batches/s.
 */
export const BROKER_MAX_INFLIGHT = 1000;

export function renderListenerConf(options: { port: number; host: string; passwordFile: string; aclFile: string; maxPacketBytes: number; maxInflightMessages: number }): string {
  return [
    '# Packets over this size are refused and their client disconnected (the embedded broker does the same).',
    `max_packet_size ${options.maxPacketBytes}`,
    "# QoS 1 messages sent to a client and not yet acknowledged: every batch reaches the server's account this way,",
    '# and at the default of 20 one round trip per 20 batches capped a fleet well below what the server takes.',
    `max_inflight_messages ${options.maxInflightMessages}`,
    '',
    `listener ${options.port} ${options.host}`,
    'allow_anonymous false',
    `password_file ${options.passwordFile}`,
    `acl_file ${options.aclFile}`,
    '',
  ].join('\n');
}
