import { SignJWT } from 'jose';

/** An HS256 JWT with iat now and exp `expiresInSec` from now (default an hour; negative for an expired token). */
export async function hs256Token(secret: string, claims: Record<string, unknown>, options: { expiresInSec?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSec ?? 3600))
    .sign(new TextEncoder().encode(secret));
}
