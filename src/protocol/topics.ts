import { SynclineError } from './errors.js';
import { sha256Hex } from './sha256.js';

/**
 * The MQTT topic layout, shared by the device, the embedded broker's ACL, the
 * cloud's subscriber and the Mosquitto ACL generator. Every device has a root
 * `syncline/{project}/{device}`; under it, uplink channels the device publishes
 * on and one downlink channel the cloud publishes on. No other file spells a topic.
 */
export const TOPIC_PREFIX = 'syncline';

export const TopicChannels = {
  /** Device → cloud: row batches (QoS1). */
  rowBatch: 'sync/rows/batch',
  /** Device → cloud: telemetry batches (QoS1); reserved for the telemetry strategy. */
  telemetryBatch: 'sync/telemetry/batch',
  /** Cloud → device: batch acks, batch errors and control messages. */
  control: 'sync/control',
  /** Device → cloud: the device confirms a control message by its control_id. */
  controlAck: 'sync/control/ack',
} as const;

export type TopicChannel = keyof typeof TopicChannels;

/** What a device may publish on (its own root only). */
export const UPLINK_CHANNELS: readonly TopicChannel[] = ['rowBatch', 'telemetryBatch', 'controlAck'];
/** What a device may subscribe to (its own root only); only the cloud publishes here. */
export const DOWNLINK_CHANNELS: readonly TopicChannel[] = ['control'];

/** The QoS of every Syncline publish and subscription: at least once, deduplicated by ids in the payload. */
export const SYNC_QOS = 1;

/** The cloud's shared-subscription group name on an external broker (several servers split the load). */
export const DEFAULT_SHARE_GROUP = 'syncline';

const MAX_SEGMENT_LENGTH = 128;

/** A project or device id usable as one topic level: no level separator, no wildcard, no NUL, no `$` lead. */
export function isTopicSegment(value: string): boolean {
  return value.length > 0 && value.length <= MAX_SEGMENT_LENGTH && !/[/+#\u0000]/.test(value) && !value.startsWith('$');
}

/** `syncline/{project}/{device}`; refuses ids that would change the topic's shape. */
export function deviceRoot(projectId: string, deviceId: string): string {
  for (const [field, value] of [['project', projectId], ['device', deviceId]] as const) {
    if (!isTopicSegment(value)) throw new SynclineError('invalid_config', `the ${field} id ${JSON.stringify(value.slice(0, 64))} cannot be an MQTT topic level`, { field });
  }
  return `${TOPIC_PREFIX}/${projectId}/${deviceId}`;
}

export function deviceTopic(root: string, channel: TopicChannel): string {
  return `${root}/${TopicChannels[channel]}`;
}

export interface DeviceTopic {
  projectId: string;
  deviceId: string;
  channel: TopicChannel;
}

const CHANNEL_BY_SUFFIX = new Map<string, TopicChannel>(Object.entries(TopicChannels).map(([channel, suffix]) => [suffix, channel as TopicChannel]));

/** Splits a concrete topic into its device root and channel; undefined for anything else (including wildcards). */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  const levels = topic.split('/');
  if (levels.length < 4 || levels[0] !== TOPIC_PREFIX) return undefined;
  const [, projectId, deviceId, ...rest] = levels;
  const channel = CHANNEL_BY_SUFFIX.get(rest.join('/'));
  if (!channel || !isTopicSegment(projectId!) || !isTopicSegment(deviceId!)) return undefined;
  return { projectId: projectId!, deviceId: deviceId!, channel };
}

/** The filter matching one channel of every device: `syncline/+/+/sync/rows/batch`. */
export function channelFilter(channel: TopicChannel): string {
  return `${TOPIC_PREFIX}/+/+/${TopicChannels[channel]}`;
}

/** MQTT 5 / Mosquitto shared subscription: each message goes to one member of `group`. */
export function sharedFilter(group: string, filter: string): string {
  if (!isTopicSegment(group)) throw new SynclineError('invalid_config', `share group ${JSON.stringify(group.slice(0, 64))} cannot be an MQTT topic level`, { field: 'share_group' });
  return `$share/${group}/${filter}`;
}

/**
 * Two-way sync's wake-up topic of one scope: the cloud publishes each new head
 * there (retained), and a device signed in with its sync JWT may subscribe to its
 * own scope's topic only. The scope is hashed because a user id may hold
 * characters a topic level cannot.
 */
export function sharedWakeTopic(scope: string): string {
  return `${TOPIC_PREFIX}/shared/${sha256Hex(scope).slice(0, 32)}/bundles`;
}

/** The MQTT username with which a device signs in using its sync JWT (as the password) instead of a device token. */
export const SHARED_WAKE_USERNAME = 'jwt';
