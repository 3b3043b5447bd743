import { SynclineError } from '../../protocol/errors.js';
import { authenticateDevice, isUuid, type DeviceIdentity } from '../auth/devices.js';
import { arrayParam } from '../store/array-param.js';
import { BatchedLookup } from '../store/batched-lookup.js';
import type { Queryable } from '../store/store.js';

/**
 * Devices by id, for the MQTT front door: a message's topic names its device
 * (the broker's ACL guarantees only that device could publish there), and this
 * says whether that device exists, is not revoked, and belongs to the topic's
 * project. Answers are cached briefly because every batch asks; a revocation
 * takes effect within the TTL even for a device that stays connected.
 */
export class DeviceDirectory {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #cache = new Map<string, { identity: DeviceIdentity | undefined; expires: number }>();
  /** Misses arriving together (a fleet reconnecting, TTLs running out at once) share one statement. */
  readonly #misses: BatchedLookup<DeviceIdentity>;

  constructor(db: Queryable, options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#misses = new BatchedLookup((ids) => findActiveDevices(db, ids));
  }

  /** The active device with this id, or undefined (unknown or revoked). */
  async lookup(deviceId: string): Promise<DeviceIdentity | undefined> {
    const now = Date.now();
    const cached = this.#cache.get(deviceId);
    if (cached && cached.expires > now) return cached.identity;
    const identity = await this.#misses.get(deviceId.toLowerCase());
    if (this.#cache.size >= this.#maxEntries) this.#cache.clear();
    this.#cache.set(deviceId, { identity, expires: now + this.#ttlMs });
    return identity;
  }
}

export async function findActiveDevice(db: Queryable, deviceId: string): Promise<DeviceIdentity | undefined> {
  return (await findActiveDevices(db, [deviceId])).get(deviceId.toLowerCase());
}

/** The active devices among these ids, in one statement, by lowercased id as PostgreSQL prints it (unknown, revoked and malformed ids are absent). */
export async function findActiveDevices(db: Queryable, deviceIds: readonly string[]): Promise<Map<string, DeviceIdentity>> {
  const ids = deviceIds.filter(isUuid);
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{ id: string; org_id: string; project_id: string }>(
    'SELECT id, org_id, project_id FROM devices WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL',
    [arrayParam(ids)],
  );
  return new Map(rows.map((r) => [r.id, { device_id: r.id, org_id: r.org_id, project_id: r.project_id }]));
}

export interface BrokerCredentials {
  clientId: string;
  username: string | undefined;
  password: string | undefined;
  /** The device id a verified client certificate names (its subject CN), when the client presented one. */
  certificateDeviceId: string | undefined;
}

/**
 * Who an MQTT connection is: from a verified client certificate (CN = device id),
 * else from username = device id and password = device token. The client id must
 * be the device id, so one device cannot take over another's persistent session.
 */
export async function authenticateBrokerClient(db: Queryable, credentials: BrokerCredentials): Promise<DeviceIdentity> {
  let identity: DeviceIdentity;
  if (credentials.certificateDeviceId !== undefined) {
    const found = await findActiveDevice(db, credentials.certificateDeviceId);
    if (!found) throw new SynclineError('unauthorized', 'the client certificate names an unknown or revoked device', { device_id: credentials.certificateDeviceId.slice(0, 64) });
    identity = found;
  } else {
    identity = await authenticateDevice(db, credentials.password);
  }
  if (credentials.username !== undefined && credentials.username !== '' && credentials.username !== identity.device_id) {
    throw new SynclineError('unauthorized', 'the username is not the device id of the credential', { device_id: identity.device_id });
  }
  if (credentials.clientId !== identity.device_id) {
    throw new SynclineError('forbidden', 'the MQTT client id must be the device id', { device_id: identity.device_id, client_id: credentials.clientId.slice(0, 64) });
  }
  return identity;
}
