import type { Migration } from '../migrations.js';

/**
 * Revoked devices by revocation time, for the embedded broker's revocation check
 * (broker-guards.ts): every second it asks for the devices revoked since shortly
 * before the newest revocation it saw, a range read here that touches only those
 * rows, however many devices exist or are connected. Partial: active devices
 * (nearly all of them) are not in it, so it stays as small as the revocations.
 * A plain CREATE INDEX (migrations run in a transaction): it blocks writes to
 * `devices` while it reads the table, one row per registered device.
 */
export const revokedDevicesIndex: Migration = {
  version: 19,
  name: 'index of revoked devices by revocation time',
  sql: `
CREATE INDEX devices_revoked_at ON devices (revoked_at) WHERE revoked_at IS NOT NULL;
`,
};
