import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Device tokens: a recognisable prefix (secret scanners, logs) and 256 random bits. */
export const DEVICE_TOKEN_PREFIX = 'sld_';

const DEVICE_TOKEN = /^sld_[A-Za-z0-9_-]{43}$/;

export function generateDeviceToken(): string {
  return `${DEVICE_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function looksLikeDeviceToken(token: string): boolean {
  return DEVICE_TOKEN.test(token);
}

/** What the database keeps instead of the token: lowercase hex SHA-256. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Compares two secrets in time independent of where they differ; hashing first
 * makes the lengths equal, so the length is not leaked either.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}
