import type { FastifyRequest } from 'fastify';
import { Headers } from '../../protocol/constants.js';
import { authenticateDevice, devicesByTokenHash, type DeviceIdentity } from '../auth/devices.js';
import { bearerToken } from '../auth/tokens.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import { BatchedLookup } from '../store/batched-lookup.js';
import type { Queryable } from '../store/store.js';

/**
 * The device-token check of the HTTP device routes, as an onRequest hook (before
 * the body is read, so an unknown caller cannot make the server inflate or parse
 * anything), noting each authenticated request as the device being seen over HTTP.
 * Requests arriving together share one token lookup.
 */
export function deviceAuthenticator(store: Queryable, activity: ActivityRecorder): { onRequest: (request: FastifyRequest) => Promise<void>; identity: (request: FastifyRequest) => DeviceIdentity } {
  const identities = new WeakMap<FastifyRequest, DeviceIdentity>();
  const holders = new BatchedLookup((hashes) => devicesByTokenHash(store, hashes));
  return {
    onRequest: async (request) => {
      const device = await authenticateDevice(store, bearerToken(request.headers[Headers.authorization]), (hash) => holders.get(hash));
      identities.set(request, device);
      activity.seen(device.device_id, 'http');
    },
    identity: (request) => identities.get(request)!,
  };
}
