import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { Headers } from '../../protocol/constants.js';
import { authenticateDevice, devicesByTokenHash, type DeviceIdentity } from '../auth/devices.js';
import { bearerToken } from '../auth/tokens.js';
import type { VerifiedTokens } from '../auth/verified-tokens.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import { BatchedLookup } from '../store/batched-lookup.js';
import type { Queryable } from '../store/store.js';

/**
 * The device-token check of the HTTP device routes, as an onRequest hook (before
 * the body is read, so an unknown caller cannot make the server inflate or parse
 * anything), noting each authenticated request as the device being seen over HTTP.
 * Requests arriving together share one token lookup; with `verified`, a token
 * found active recently is not checked again (revocation still counts at once).
 */
export function deviceAuthenticator(
  store: Queryable,
  activity: ActivityRecorder,
  verified?: VerifiedTokens,
): { onRequest: onRequestHookHandler; identity: (request: FastifyRequest) => DeviceIdentity } {
  const identities = new WeakMap<FastifyRequest, DeviceIdentity>();
  const holders = new BatchedLookup((hashes) => devicesByTokenHash(store, hashes));
  const admit = (request: FastifyRequest, device: DeviceIdentity) => {
    identities.set(request, device);
    activity.seen(device.device_id, 'http');
  };
  const check = async (token: string | undefined): Promise<DeviceIdentity> => {
    const ticket = verified?.ticket();
    const device = await authenticateDevice(store, token, (hash) => holders.get(hash));
    // Only an active token gets here (authenticateDevice throws otherwise).
    if (ticket !== undefined) verified?.remember(token!, device, ticket);
    return device;
  };
  return {
    // A callback hook: a token verified recently passes without a promise or a turn of the event loop.
    onRequest: (request, _reply, done) => {
      const token = bearerToken(request.headers[Headers.authorization]);
      const known = token === undefined ? undefined : verified?.get(token);
      if (known) {
        admit(request, known);
        done();
        return;
      }
      check(token).then(
        (device) => {
          admit(request, device);
          done();
        },
        (error: unknown) => done(error as Error),
      );
    },
    identity: (request) => identities.get(request)!,
  };
}
