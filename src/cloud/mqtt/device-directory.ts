import { SynclineError } from '../../protocol/errors.js';
import { authenticateDevice, isUuid, type DeviceIdentity } from '../auth/devices.js';
import type { Queryable } from '../store/store.js';

/**
 * Devices by id, for the MQTT front door: a message's topic names its device
 * (the broker's ACL guarantees only that device could publish there), and this
 * says whether that device exists, is not revoked, and belongs to the topic's
 * project. Answers are cached briefly because every batch asks; a revocation
 * takes effect within the TTL even for a device that stays connected.
 */
export class DeviceDirectory {
  readonly #db: Queryable;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #cache = new Map<string, { identity: DeviceIdentity | undefined; expires: number }>();

  constructor(db: Queryable, options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.#db = db;
    this.#ttlMs = options.ttlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /** The active device with this id, or undefined (unknown or revoked). */
  async lookup(deviceId: string): Promise<DeviceIdentity | undefined> {
    const now = Date.now();
    const cached = this.#cache.get(deviceId);
    if (cached && cached.expires > now) return cached.identity;
    const identity = await findActiveDevice(this.#db, deviceId);
    if (this.#cache.size >= this.#maxEntries) this.#cache.clear();
    this.#cache.set(deviceId, { identity, expires: now + this.#ttlMs });
    return identity;
  }
}

export async function findActiveDevice(db: Queryable, deviceId: string): Promise<DeviceIdentity | undefined> {
  if (!isUuid(deviceId)) return undefined;
  const { rows } = await db.query<{ id: string; org_id: string; project_id: string; revoked_at: Date | null }>(
    'SELECT id, org_id, project_id, revoked_at FROM devices WHERE id = $1',
    [deviceId],
  );
  const row = rows[0];
  return row && row.revoked_at === null ? { device_id: row.id, org_id: row.org_id, project_id: row.project_id } : undefined;
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
