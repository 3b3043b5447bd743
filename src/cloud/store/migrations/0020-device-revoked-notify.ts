import type { Migration } from '../migrations.js';

/**
 * Every revocation of a device is announced by the database: a trigger NOTIFYs
 * `syncline_device_revoked` (DEVICE_REVOKED_CHANNEL) with the device id when
 * revoked_at goes from NULL to a time, or a row is inserted revoked (a restored
 * row). revokeDevice used to send the NOTIFY in its own statement, so a
 * revocation written by hand in SQL reached other processes' verified-token
 * caches only when their entries expired. Delivered at commit, like any NOTIFY;
 * PGlite delivers it to its own connection's listeners. A later re-stamp of an
 * already revoked device announces nothing (it was announced when revoked).
 */
export const deviceRevokedNotify: Migration = {
  version: 20,
  name: 'notify device revocations from a trigger',
  sql: `
CREATE FUNCTION syncline_device_revoked() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  PERFORM pg_notify('syncline_device_revoked', NEW.id::text);
  RETURN NULL;
END
$fn$;

CREATE TRIGGER devices_revoked AFTER UPDATE OF revoked_at ON devices FOR EACH ROW
  WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
  EXECUTE FUNCTION syncline_device_revoked();
CREATE TRIGGER devices_inserted_revoked AFTER INSERT ON devices FOR EACH ROW
  WHEN (NEW.revoked_at IS NOT NULL)
  EXECUTE FUNCTION syncline_device_revoked();
`,
};
