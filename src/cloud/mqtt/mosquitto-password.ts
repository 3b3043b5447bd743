import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes in the format of Mosquitto's password file (mosquitto_passwd's
 * default since 2.0, `sha512-pbkdf2`): `$7$<iterations>$<base64 salt>$<base64 hash>`.
 * The cloud keeps this hash of each device token when the device is created (the
 * token itself is never stored), so `syncline admin mqtt-config` can write a
 * password file an external Mosquitto checks device tokens against.
 */

/** mosquitto_passwd's iteration count; the inputs are 256-bit random tokens, so the count is not what protects them. */
export const MOSQUITTO_PBKDF2_ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

export function mosquittoPasswordHash(password: string, options: { salt?: Buffer; iterations?: number } = {}): string {
  const salt = options.salt ?? randomBytes(SALT_BYTES);
  const iterations = options.iterations ?? MOSQUITTO_PBKDF2_ITERATIONS;
  const hash = pbkdf2Sync(password, salt, iterations, HASH_BYTES, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a `$7$` hash; false for any other or malformed format. */
export function verifyMosquittoPassword(password: string, encoded: string): boolean {
  const match = /^\$7\$(\d{1,7})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(encoded);
  if (!match) return false;
  const expected = Buffer.from(match[3]!, 'base64');
  const actual = pbkdf2Sync(password, Buffer.from(match[2]!, 'base64'), Number(match[1]), expected.length, 'sha512');
  return expected.length > 0 && timingSafeEqual(actual, expected);
}
