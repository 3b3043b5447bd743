import type { Migration } from '../migrations.js';

/**
 * A deleted device is announced as a revoked one is (migration 0020), by the
 * same function on `syncline_device_revoked` (DEVICE_REVOKED_CHANNEL): other
 * processes drop its verified tokens at once (they were trusted up to 30 s)
 * and their brokers close its sessions (the broker's check reads revoked rows,
 * and a deleted row is none). Syncline never deletes a device (it revokes it),
 * and the tables that reference devices do not cascade, so only an operator's
 * SQL deletes one, after its broker credentials: the trigger covers that. A row
 * already revoked was announced then.
 */
export const deviceDeletedNotify: Migration = {
  version: 21,
  name: 'notify device deletions from a trigger',
  sql: `
CREATE OR REPLACE FUNCTION syncline_device_revoked() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  -- A DELETE has no NEW row: the row that went is announced.
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('syncline_device_revoked', OLD.id::text);
  ELSE
    PERFORM pg_notify('syncline_device_revoked', NEW.id::text);
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER devices_deleted AFTER DELETE ON devices FOR EACH ROW
  WHEN (OLD.revoked_at IS NULL)
  EXECUTE FUNCTION syncline_device_revoked();
`,
};
