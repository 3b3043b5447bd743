import { deviceRoot, deviceTopic, DOWNLINK_CHANNELS, parseDeviceTopic, sharedWakeTopic, UPLINK_CHANNELS, type TopicChannel } from '../../protocol/topics.js';
import type { DeviceIdentity } from '../auth/devices.js';

/**
 * The broker's topic rules for devices, as pure functions: the embedded broker
 * applies them to every publish and subscribe, and the Mosquitto ACL generator
 * writes the same rules as per-device `topic` lines.
 *
 * A device may publish only on its own uplink channels and subscribe only to its
 * own downlink; wildcards, shared subscriptions, `$` topics, other roots and the
 * control topic itself are denied.
 */

export type AclVerdict = { allowed: true } | { allowed: false; reason: string };

const ALLOWED: AclVerdict = { allowed: true };

function check(session: DeviceIdentity, topic: string, channels: readonly TopicChannel[], verb: string): AclVerdict {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return { allowed: false, reason: `${verb} on ${JSON.stringify(topic.slice(0, 200))}: not a Syncline device topic` };
  if (parsed.deviceId !== session.device_id || parsed.projectId !== session.project_id) {
    return { allowed: false, reason: `${verb} under another device's root (${parsed.projectId}/${parsed.deviceId})` };
  }
  if (!channels.includes(parsed.channel)) return { allowed: false, reason: `${verb} on ${parsed.channel}, which devices may not ${verb}` };
  return ALLOWED;
}

/** Retained publishes are refused on every device topic: the broker would keep each one in memory for good. */
export function authorizeDevicePublish(session: DeviceIdentity, topic: string, options: { retain?: boolean } = {}): AclVerdict {
  const verdict = check(session, topic, UPLINK_CHANNELS, 'publish');
  if (verdict.allowed && options.retain) return { allowed: false, reason: 'a retained publish: devices may not leave messages on the broker' };
  return verdict;
}

/** `filter` must be the device's own downlink topic exactly: a wildcard could reach other devices. */
export function authorizeDeviceSubscribe(session: DeviceIdentity, filter: string): AclVerdict {
  if (/[+#]/.test(filter)) return { allowed: false, reason: `subscribe with a wildcard (${JSON.stringify(filter.slice(0, 200))})` };
  return check(session, filter, DOWNLINK_CHANNELS, 'subscribe');
}

/**
 * The exact topics a device may publish on, with their channels: what
 * authorizeDevicePublish allows (a publish that is not retained), as a Map the
 * embedded broker looks a connection's publishes up in.
 */
export function deviceUplinks(session: Pick<DeviceIdentity, 'device_id' | 'project_id'>): Map<string, TopicChannel> {
  const root = deviceRoot(session.project_id, session.device_id);
  return new Map(UPLINK_CHANNELS.map((c) => [deviceTopic(root, c), c]));
}

/** The exact topics a device may use, for ACL files: publish (write) and subscribe (read). */
export function deviceTopics(session: Pick<DeviceIdentity, 'device_id' | 'project_id'>): { write: string[]; read: string[] } {
  const root = deviceRoot(session.project_id, session.device_id);
  return { write: [...deviceUplinks(session).keys()], read: DOWNLINK_CHANNELS.map((c) => deviceTopic(root, c)) };
}

/** A session signed in with a sync JWT may follow its own scope's wake-up topic and nothing else. */
export function authorizeWakeSubscribe(scope: string, filter: string): AclVerdict {
  return filter === sharedWakeTopic(scope) ? ALLOWED : { allowed: false, reason: `a wake-up session follows only its own scope's topic, not ${JSON.stringify(filter.slice(0, 200))}` };
}
