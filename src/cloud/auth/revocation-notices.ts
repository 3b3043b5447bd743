import type { Logger } from 'pino';
import { DEVICE_REVOKED_CHANNEL, deviceRevokedNotificationSchema } from '../../protocol/device-revocation.js';
import type { ListenHandlers } from '../store/pg-listener.js';
import type { Store } from '../store/store.js';

export interface RevocationHandlers extends Omit<ListenHandlers, 'onMessage'> {
  /** A device was revoked or deleted (by any process, or by hand in SQL): the triggers of migrations 0020 and 0021 said so at its commit. */
  onRevoked(deviceId: string): void;
}

/**
 * Listens for the revocations (and deletions) of devices the database
 * announces. Anyone with access to the database can NOTIFY the channel: a
 * payload that is not a device id is logged and skipped, and the listener goes
 * on. Resolves as Store.listen does (a failed LISTEN is retried by the store);
 * the returned function stops it.
 */
export function listenForRevocations(store: Store, logger: Logger, handlers: RevocationHandlers): Promise<() => Promise<void>> {
  const { onRevoked, ...connection } = handlers;
  return store.listen(DEVICE_REVOKED_CHANNEL, {
    ...connection,
    onMessage: (payload) => {
      const deviceId = deviceRevokedNotificationSchema.safeParse(payload);
      if (deviceId.success) onRevoked(deviceId.data);
      else logger.warn({ err: deviceId.error, channel: DEVICE_REVOKED_CHANNEL, payload: payload.slice(0, 200) }, 'ignored an unreadable device revocation notification');
    },
  });
}
