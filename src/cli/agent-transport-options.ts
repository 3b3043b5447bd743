import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { SynclineError } from '../protocol/errors.js';
import { MQTT_ACK_TIMEOUT_MS, MQTT_MAX_IN_FLIGHT } from '../transport/mqtt-defaults.js';
import { MQTT_RESEND_MIN_MS } from '../transport/resend-timeout.js';
import type { Transport } from '../transport/transport.js';
import type { DeviceIdentity } from '../device/journal/device-binding.js';
import type { OptionTable, ParsedOptions } from './options.js';

/** `syncline agent` options choosing and configuring the transport; spread into the agent's option table. */
export const agentTransportOptions = {
  transport: { flag: 'transport', env: 'SYNCLINE_TRANSPORT', kind: 'string', default: 'http', choices: ['http', 'mqtt'], description: 'how batches travel to the cloud' },
  mqttUrl: { flag: 'mqtt-url', env: 'MQTT_URL', kind: 'string', secret: true, description: 'broker URL for --transport mqtt, e.g. mqtt://127.0.0.1:1883 or mqtts://...' },
  deviceId: { flag: 'device-id', env: 'SYNCLINE_DEVICE_ID', kind: 'string', description: 'device id (MQTT username and client id); read from --mqtt-cert when not given' },
  project: { flag: 'project', env: 'SYNCLINE_PROJECT', kind: 'string', default: 'default', description: "the device's project (part of its MQTT topic root)" },
  mqttCa: { flag: 'mqtt-ca', env: 'SYNCLINE_MQTT_CA', kind: 'string', description: 'PEM CA file to verify the broker (mqtts://)' },
  mqttCert: { flag: 'mqtt-cert', env: 'SYNCLINE_MQTT_CERT', kind: 'string', description: 'PEM device certificate file (mTLS; its CN is the device id)' },
  mqttKey: { flag: 'mqtt-key', env: 'SYNCLINE_MQTT_KEY', kind: 'string', description: 'PEM device key file (mTLS)' },
  ackTimeoutMs: { flag: 'ack-timeout-ms', env: 'SYNCLINE_ACK_TIMEOUT_MS', kind: 'integer', default: MQTT_ACK_TIMEOUT_MS, description: "MQTT: the longest wait for the cloud's answer before a batch is sent again" },
  mqttResendMs: { flag: 'mqtt-resend-ms', env: 'SYNCLINE_MQTT_RESEND_MS', kind: 'integer', default: MQTT_RESEND_MIN_MS, description: 'MQTT: the shortest wait before an unanswered batch is sent again (the wait adapts to answer times, up to --ack-timeout-ms)' },
  mqttMaxInFlight: { flag: 'mqtt-max-in-flight', env: 'SYNCLINE_MQTT_MAX_IN_FLIGHT', kind: 'integer', default: MQTT_MAX_IN_FLIGHT, description: 'MQTT: batches awaiting an answer at once' },
} satisfies OptionTable;

type Parsed = Partial<ParsedOptions<typeof agentTransportOptions>> & { server?: string; token?: string };

function readPem(path: string | undefined, flag: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new SynclineError('invalid_config', `--${flag}: cannot read ${path}: ${(error as Error).message}`, { field: flag });
  }
}

/** The certificate's subject CN: with mTLS the broker takes the device id from it, so the agent does too. */
function commonName(pem: string): string | undefined {
  const match = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(pem).subject);
  return match?.[1]?.trim();
}

/** A URL for messages: its password never printed. */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

export interface AgentLink {
  transport: Transport;
  /** The device this run ships for (the file remembers it). */
  identity: DeviceIdentity;
  /** Where batches go, for messages. */
  where: string;
}

/** The transport the options ask for; required options are checked here because they depend on the choice. */
// The transports load with the command that uses them, so `agent --help` needs neither (nor the MQTT client).
export async function agentTransport(options: Parsed, logger: Logger): Promise<AgentLink> {
  if (options.transport !== 'mqtt') {
    if (!options.server) throw new SynclineError('invalid_config', '--server (or SYNCLINE_SERVER) is required', { field: 'server' });
    if (!options.token) throw new SynclineError('invalid_config', '--token (or SYNCLINE_DEVICE_TOKEN) is required', { field: 'token' });
    const { HttpTransport } = await import('../transport/http-transport.js');
    return { transport: new HttpTransport({ serverUrl: options.server, token: options.token }), identity: { token: options.token }, where: shownUrl(options.server) };
  }
  if (!options.mqttUrl) throw new SynclineError('invalid_config', '--mqtt-url (or MQTT_URL) is required with --transport mqtt', { field: 'mqttUrl' });
  const ca = readPem(options.mqttCa, 'mqtt-ca');
  const cert = readPem(options.mqttCert, 'mqtt-cert');
  const key = readPem(options.mqttKey, 'mqtt-key');
  const deviceId = options.deviceId ?? (cert ? commonName(cert) : undefined);
  if (!deviceId) throw new SynclineError('invalid_config', '--device-id (or SYNCLINE_DEVICE_ID, or a --mqtt-cert with the device id as CN) is required with --transport mqtt', { field: 'deviceId' });
  if (!options.token && !cert) throw new SynclineError('invalid_config', '--token or --mqtt-cert is required with --transport mqtt', { field: 'token' });
  const tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  const { MqttTransport } = await import('../transport/mqtt-transport.js');
  const transport = new MqttTransport({
    url: options.mqttUrl,
    deviceId,
    projectId: options.project ?? 'default',
    ...(options.token ? { token: options.token } : {}),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
    ...(options.ackTimeoutMs !== undefined ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
    ...(options.mqttResendMs !== undefined ? { resendMinMs: options.mqttResendMs } : {}),
    ...(options.mqttMaxInFlight !== undefined ? { maxInFlight: options.mqttMaxInFlight } : {}),
    logger: logger.child({ component: 'mqtt' }),
  });
  return { transport, identity: { deviceId, ...(options.token ? { token: options.token } : {}) }, where: shownUrl(options.mqttUrl) };
}
