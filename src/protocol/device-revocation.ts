import { z } from 'zod';

/**
 * The PostgreSQL channel every revocation or deletion of a device notifies, with
 * the device id as its payload: triggers on `devices` send it (migrations 0020
 * and 0021 spell it in SQL too), whoever revoked or deleted, so every server
 * process drops the device's verified tokens and the embedded broker closes its
 * sessions at once.
 */
export const DEVICE_REVOKED_CHANNEL = 'syncline_device_revoked';

/** The payload of a DEVICE_REVOKED_CHANNEL notification: the device id (uuid text, any version, as device ids are checked elsewhere). */
export const deviceRevokedNotificationSchema = z.guid();
