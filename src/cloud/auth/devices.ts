import { randomUUID } from 'node:crypto';
import { SynclineError } from '../../protocol/errors.js';
import { mosquittoPasswordHash } from '../mqtt/mosquitto-password.js';
import type { Queryable } from '../store/store.js';
import { generateDeviceToken, hashToken, looksLikeDeviceToken } from './tokens.js';
import { forgetRevokedDevice } from './verified-tokens.js';

/** Who a request comes from; derived from the credential only, never from a payload. */
export interface DeviceIdentity {
  device_id: string;
  org_id: string;
  project_id: string;
}

export interface DeviceRecord {
  device_id: string;
  org_id: string;
  project_id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
  /** When the server last heard from it (written every few seconds, see ActivityRecorder), and over which transport. */
  last_seen_at: string | null;
  last_transport: 'http' | 'mqtt' | null;
}

const DEFAULT_PROJECT = 'default';
const MAX_NAME_LENGTH = 200;

interface DeviceRow {
  id: string;
  org_id: string;
  project_id: string;
  name: string;
  created_at: Date;
  revoked_at: Date | null;
  last_seen_at: Date | null;
  last_transport: 'http' | 'mqtt' | null;
}

const DEVICE_COLUMNS = 'id, org_id, project_id, name, created_at, revoked_at, last_seen_at, last_transport';

function toRecord(row: DeviceRow): DeviceRecord {
  return {
    device_id: row.id,
    org_id: row.org_id,
    project_id: row.project_id,
    name: row.name,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
    last_seen_at: row.last_seen_at ? row.last_seen_at.toISOString() : null,
    last_transport: row.last_transport,
  };
}

/**
 * Registers a device and returns its token. The token exists only in this return
 * value: the database keeps its hash. Device ids are random (v4) rather than
 * time-ordered so the 8-hex tag in mirror names differs between devices created
 * in the same minute.
 */
export async function createDevice(db: Queryable, options: { name: string; projectId?: string }): Promise<{ device_id: string; token: string }> {
  const name = options.name.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || name.includes('\u0000')) {
    throw new SynclineError('invalid_request', `a device name is 1 to ${MAX_NAME_LENGTH} characters without NUL`, { field: 'name' });
  }
  const projectId = options.projectId ?? DEFAULT_PROJECT;
  const project = await db.query<{ org_id: string }>('SELECT org_id FROM projects WHERE id = $1', [projectId]);
  const orgId = project.rows[0]?.org_id;
  if (orgId === undefined) throw new SynclineError('not_found', `no project ${projectId}`, { project_id: projectId });
  const deviceId = randomUUID();
  const token = generateDeviceToken();
  // One statement, so a device never exists without the broker credential an external MQTT broker checks its token with.
  await db.query(
    `WITH device AS (INSERT INTO devices (id, org_id, project_id, name, token_hash) VALUES ($1, $2, $3, $4, $5) RETURNING id)
     INSERT INTO device_broker_credentials (device_id, password_hash) SELECT id, $6 FROM device`,
    [deviceId, orgId, projectId, name, hashToken(token), mosquittoPasswordHash(token)],
  );
  return { device_id: deviceId, token };
}

/** A device as its token finds it. */
export interface TokenHolder {
  id: string;
  org_id: string;
  project_id: string;
  revoked_at: Date | null;
}

/** The devices holding these token hashes, in one statement, by hash. */
export async function devicesByTokenHash(db: Queryable, hashes: readonly string[]): Promise<Map<string, TokenHolder>> {
  const { rows } = await db.query<TokenHolder & { token_hash: string }>('SELECT id, org_id, project_id, revoked_at, token_hash FROM devices WHERE token_hash = ANY($1::text[])', [hashes]);
  return new Map(rows.map(({ token_hash, ...holder }) => [token_hash, holder]));
}

/** Finds the device of a token hash; the HTTP front door passes one that shares a statement with concurrent requests (BatchedLookup). */
export type TokenLookup = (tokenHash: string) => Promise<TokenHolder | undefined>;

export async function authenticateDevice(db: Queryable, token: string | undefined, lookup: TokenLookup = async (hash) => (await devicesByTokenHash(db, [hash])).get(hash)): Promise<DeviceIdentity> {
  if (token === undefined || !looksLikeDeviceToken(token)) throw new SynclineError('unauthorized', 'missing or malformed device token');
  const row = await lookup(hashToken(token));
  // One message for unknown and revoked alike: the caller learns nothing about which tokens exist.
  if (!row || row.revoked_at !== null) throw new SynclineError('unauthorized', 'unknown or revoked device token');
  return { device_id: row.id, org_id: row.org_id, project_id: row.project_id };
}

export async function listDevices(db: Queryable): Promise<DeviceRecord[]> {
  const { rows } = await db.query<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices ORDER BY created_at, id`);
  return rows.map(toRecord);
}

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_TEXT.test(text);
}

/**
 * Revokes a device's token; revoking twice keeps the first revocation time. The
 * token stops working at once: this process's verified-token caches drop it
 * before this returns, and the NOTIFY that the database's trigger sends at
 * commit (migration 0020, for every revocation) tells other processes'.
 */
export async function revokeDevice(db: Queryable, deviceId: string): Promise<DeviceRecord> {
  if (!isUuid(deviceId)) throw new SynclineError('not_found', 'no such device', { device_id: deviceId.slice(0, 64) });
  const { rows } = await db.query<DeviceRow>(`UPDATE devices SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${DEVICE_COLUMNS}`, [deviceId]);
  const row = rows[0];
  if (!row) throw new SynclineError('not_found', 'no such device', { device_id: deviceId });
  forgetRevokedDevice(row.id);
  return toRecord(row);
}

export async function getDevice(db: Queryable, deviceId: string): Promise<DeviceRecord> {
  const row = isUuid(deviceId)
    ? (await db.query<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = $1`, [deviceId])).rows[0]
    : undefined;
  if (!row) throw new SynclineError('not_found', 'no such device', { device_id: deviceId.slice(0, 64) });
  return toRecord(row);
}
