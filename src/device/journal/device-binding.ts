import { createHash } from 'node:crypto';
import { SynclineError } from '../../protocol/errors.js';
import type { SqliteQueryable } from '../driver/sqlite-driver.js';
import { StateKeys } from './journal-schema.js';
import { readState, writeState } from './journal-state.js';

/**
 * A file remembers which device it ships for. The cloud keeps one lineage per
 * (device, table) and the journal only holds what the first device has not been
 * sent yet, so the same file shipped under a second device would give that
 * device's mirror only the latest rows, silently. A different device is refused;
 * rebinding re-snapshots the file so the new device's mirror is complete.
 *
 * What identifies the device: its id when the agent knows it (MQTT, mTLS), and a
 * hash of its token (HTTP knows only the token; the token itself is never stored).
 */
export interface DeviceIdentity {
  token?: string;
  deviceId?: string;
}

interface Binding {
  token_sha256?: string;
  device_id?: string;
  bound_at: string;
}

const tokenHash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

function bindingOf(identity: DeviceIdentity): Binding {
  return {
    ...(identity.token ? { token_sha256: tokenHash(identity.token) } : {}),
    ...(identity.deviceId ? { device_id: identity.deviceId } : {}),
    bound_at: new Date().toISOString(),
  };
}

async function readBinding(db: SqliteQueryable): Promise<Binding | undefined> {
  const text = await readState(db, StateKeys.deviceBinding);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Binding;
  } catch {
    return undefined;
  }
}

/** The same device when what both know agrees: the id if both have one, else the token. */
function sameDevice(bound: Binding, now: Binding): boolean {
  if (bound.device_id && now.device_id) return bound.device_id === now.device_id;
  if (bound.token_sha256 && now.token_sha256) return bound.token_sha256 === now.token_sha256;
  return true;
}

export type BindingOutcome = 'bound' | 'same' | 'rebind';

/**
 * Checks the file's device against `identity`: binds a file that has none,
 * answers `rebind` when another device takes it over with `rebind` allowed (the
 * caller re-snapshots, then calls `bindDevice`), and refuses it otherwise.
 */
export async function checkDeviceBinding(db: SqliteQueryable, dbPath: string, identity: DeviceIdentity, rebind: boolean): Promise<BindingOutcome> {
  const now = bindingOf(identity);
  const bound = await readBinding(db);
  if (!bound) {
    await bindDevice(db, identity);
    return 'bound';
  }
  if (sameDevice(bound, now)) {
    // Learn what was not known before (a device id after a token-only run), keeping the first binding time.
    if ((now.device_id && !bound.device_id) || (now.token_sha256 && !bound.token_sha256)) await writeState(db, StateKeys.deviceBinding, JSON.stringify({ ...bound, ...now, bound_at: bound.bound_at }));
    return 'same';
  }
  if (rebind) return 'rebind';
  const was = bound.device_id ? `device ${bound.device_id}` : 'another device token';
  throw new SynclineError(
    'invalid_config',
    `${dbPath} ships for ${was} (since ${bound.bound_at}), not for this ${now.device_id ? `device ${now.device_id}` : 'token'}: shipped under two devices its rows would split between two mirrors; use that device's token, or pass --rebind-device to re-snapshot the file for this device so its mirror gets every current row`,
    { field: 'token', ...(bound.device_id ? { bound_device_id: bound.device_id } : {}) },
  );
}

export async function bindDevice(db: SqliteQueryable, identity: DeviceIdentity): Promise<void> {
  await writeState(db, StateKeys.deviceBinding, JSON.stringify(bindingOf(identity)));
}
