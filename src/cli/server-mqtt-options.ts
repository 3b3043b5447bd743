import { readFileSync } from 'node:fs';
import type { FlowLimits } from '../cloud/flow-control/flow-decision.js';
import { DEFAULT_FLOW_LIMITS } from '../cloud/flow-control/flow-decision.js';
import type { CloudMqttOptions } from '../cloud/mqtt/mqtt-service.js';
import { DefaultPorts } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { DEFAULT_SHARE_GROUP } from '../protocol/topics.js';
import type { OptionTable, ParsedOptions } from './options.js';

/** `syncline server` options for the MQTT front door and flow control; spread into the server's option table. */
export const serverMqttOptions = {
  mqttPort: {
    flag: 'mqtt-port',
    env: 'SYNCLINE_MQTT_PORT',
    kind: 'integer',
    description: `embedded MQTT broker port; 0 turns MQTT off (default ${DefaultPorts.mqtt}, or ${DefaultPorts.mqttFallback} when ${DefaultPorts.mqtt} is taken)`,
  },
  mqttTlsPort: { flag: 'mqtt-tls-port', env: 'SYNCLINE_MQTT_TLS_PORT', kind: 'integer', description: 'also listen for MQTT over TLS on this port (needs --mqtt-tls-cert and --mqtt-tls-key)' },
  mqttTlsCert: { flag: 'mqtt-tls-cert', env: 'SYNCLINE_MQTT_TLS_CERT', kind: 'string', description: 'PEM certificate file of the TLS listener' },
  mqttTlsKey: { flag: 'mqtt-tls-key', env: 'SYNCLINE_MQTT_TLS_KEY', kind: 'string', description: 'PEM private key file of the TLS listener' },
  mqttTlsCa: { flag: 'mqtt-tls-ca', env: 'SYNCLINE_MQTT_TLS_CA', kind: 'string', description: 'PEM CA file signing device certificates: a verified certificate\'s CN is the device id (mTLS)' },
  mqttRequireClientCert: { flag: 'mqtt-require-client-cert', env: 'SYNCLINE_MQTT_REQUIRE_CLIENT_CERT', kind: 'boolean', default: false, description: 'refuse TLS clients without a verified certificate' },
  mqttMaxPacketBytes: {
    flag: 'mqtt-max-packet-bytes',
    env: 'SYNCLINE_MQTT_MAX_PACKET_BYTES',
    kind: 'integer',
    description: 'embedded broker: largest MQTT packet (topic and payload) a client may send; a larger one disconnects it before its body is read (default: --body-limit)',
  },
  mqttUrl: { flag: 'mqtt-url', env: 'MQTT_URL', kind: 'string', secret: true, description: 'use this external broker (mqtt://user:password@host:port) instead of the embedded one' },
  mqttShareGroup: { flag: 'mqtt-share-group', env: 'SYNCLINE_MQTT_SHARE_GROUP', kind: 'string', default: DEFAULT_SHARE_GROUP, description: 'shared-subscription group on the external broker; servers in one group split the load' },
  mqttCa: { flag: 'mqtt-ca', env: 'SYNCLINE_MQTT_CA', kind: 'string', description: 'PEM CA file to verify the external broker (mqtts://)' },
  mqttCert: { flag: 'mqtt-cert', env: 'SYNCLINE_MQTT_CERT', kind: 'string', description: 'PEM client certificate file for the external broker' },
  mqttKey: { flag: 'mqtt-key', env: 'SYNCLINE_MQTT_KEY', kind: 'string', description: 'PEM client key file for the external broker' },
  stagedCapRows: { flag: 'staged-cap-rows', env: 'SYNCLINE_STAGED_CAP_ROWS', kind: 'integer', default: DEFAULT_FLOW_LIMITS.maxStagedRows, description: 'staged rows per lineage above which its device is paused' },
  stagedCapBytes: { flag: 'staged-cap-bytes', env: 'SYNCLINE_STAGED_CAP_BYTES', kind: 'integer', default: DEFAULT_FLOW_LIMITS.maxStagedBytes, description: 'staged bytes per lineage above which its device is paused' },
  breakerThreshold: { flag: 'breaker-threshold', env: 'SYNCLINE_BREAKER_THRESHOLD', kind: 'integer', default: DEFAULT_FLOW_LIMITS.breakerThreshold, description: 'failed batches in a row (permanent materialization errors) before the device is paused' },
} satisfies OptionTable;

type Parsed = Partial<ParsedOptions<typeof serverMqttOptions>>;

function pem(path: string | undefined, flag: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new SynclineError('invalid_config', `--${flag}: cannot read ${path}: ${(error as Error).message}`, { field: flag });
  }
}

/** The server's MQTT configuration from its options; undefined when MQTT is off (--mqtt-port 0 without an external broker). */
export function mqttConfig(options: Parsed, host: string): CloudMqttOptions | undefined {
  if (options.mqttUrl) {
    const [ca, cert, key] = [pem(options.mqttCa, 'mqtt-ca'), pem(options.mqttCert, 'mqtt-cert'), pem(options.mqttKey, 'mqtt-key')];
    const clientTls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
    return { url: options.mqttUrl, shareGroup: options.mqttShareGroup ?? DEFAULT_SHARE_GROUP, ...(Object.keys(clientTls).length > 0 ? { clientTls } : {}) };
  }
  if (options.mqttPort === 0) return undefined;
  if (options.mqttPort !== undefined && (options.mqttPort < 0 || options.mqttPort > 65535)) throw new SynclineError('invalid_config', '--mqtt-port must be 0 to 65535', { field: 'mqttPort' });
  const config: CloudMqttOptions = { host, port: options.mqttPort ?? 'default' };
  if (options.mqttMaxPacketBytes !== undefined) {
    if (options.mqttMaxPacketBytes < 1024) throw new SynclineError('invalid_config', '--mqtt-max-packet-bytes must be at least 1024', { field: 'mqttMaxPacketBytes' });
    config.maxPacketBytes = options.mqttMaxPacketBytes;
  }
  if (options.mqttTlsPort !== undefined) {
    const cert = pem(options.mqttTlsCert, 'mqtt-tls-cert');
    const key = pem(options.mqttTlsKey, 'mqtt-tls-key');
    if (!cert || !key) throw new SynclineError('invalid_config', '--mqtt-tls-port needs --mqtt-tls-cert and --mqtt-tls-key', { field: 'mqttTlsPort' });
    const ca = pem(options.mqttTlsCa, 'mqtt-tls-ca');
    config.tls = { port: options.mqttTlsPort, cert, key, ...(ca ? { ca } : {}), requireClientCert: options.mqttRequireClientCert === true };
  }
  return config;
}

export function flowConfig(options: Parsed): Partial<FlowLimits> {
  return {
    ...(options.stagedCapRows !== undefined ? { maxStagedRows: options.stagedCapRows } : {}),
    ...(options.stagedCapBytes !== undefined ? { maxStagedBytes: options.stagedCapBytes } : {}),
    ...(options.breakerThreshold !== undefined ? { breakerThreshold: options.breakerThreshold } : {}),
  };
}

/** The line `syncline server` prints about MQTT (tests and operators read it). */
export function mqttBanner(config: CloudMqttOptions | undefined, url: string | undefined, tlsUrl: string | undefined): string {
  if (!config || !url) return 'MQTT off (--mqtt-port 0)';
  if (config.url) return `MQTT via external broker ${url} (shared subscription group ${config.shareGroup ?? DEFAULT_SHARE_GROUP})`;
  const fellBack = config.port === 'default' && !url.endsWith(`:${DefaultPorts.mqtt}`) ? ` (port ${DefaultPorts.mqtt} was taken)` : '';
  return `MQTT broker listening on ${url}${tlsUrl ? ` and ${tlsUrl}` : ''}${fellBack}`;
}
