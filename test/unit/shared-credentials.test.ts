import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { JwtVerifier, validateJwtAuthConfig, type JwtAuthConfig } from '../../src/cloud/shared/credentials.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { hs256Token } from '../support/jwt.js';

const SECRET = 'a-test-secret-that-is-long-enough-32+';
const verifier = new JwtVerifier({ hs256Secret: SECRET });

/** Asserts a SynclineError with this code whose message and body never carry the token. */
async function refused(promise: Promise<unknown>, code: string, token?: string, pattern?: RegExp): Promise<SynclineError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SynclineError, `expected SynclineError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (pattern) assert.match(error.message, pattern);
  if (token) assert.ok(!JSON.stringify(error.toJSON()).includes(token.split('.')[2] ?? token));
  return error;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('JWT credentials: HS256', () => {
  test('a valid token gives user, tenant and source', async () => {
    const token = await hs256Token(SECRET, { sub: 'user-1', tenant_id: 'acme', sid: 'device-1' });
    assert.deepEqual(await verifier.verify(`Bearer ${token}`, undefined), { user: 'user-1', tenant: 'acme', source: 'device-1' });
  });

  test('missing header, other schemes and malformed tokens are unauthorized', async () => {
    await refused(verifier.verify(undefined, 'd1'), 'unauthorized', undefined, /missing/);
    const token = await hs256Token(SECRET, { sub: 'u' });
    await refused(verifier.verify(`Basic ${token}`, 'd1'), 'unauthorized', token, /Bearer/);
    await refused(verifier.verify('Bearer not-a-jwt', 'd1'), 'unauthorized', undefined, /malformed/);
    await refused(verifier.verify(`Bearer ${token.slice(0, -1)}!`, 'd1'), 'unauthorized');
  });

  test('a token signed with another secret is refused', async () => {
    const token = await hs256Token('another-secret-that-is-also-32-bytes-long', { sub: 'u', sid: 'd1' });
    await refused(verifier.verify(`Bearer ${token}`, undefined), 'unauthorized', token, /signature/);
  });

  test('an alg "none" token is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u', sid: 'd1', iat: now, exp: now + 600 })}.`;
    await refused(verifier.verify(`Bearer ${token}`, undefined), 'unauthorized', undefined, /algorithm/);
  });

  test('expired tokens and tokens not valid yet are refused beyond the clock tolerance', async () => {
    const expired = await hs256Token(SECRET, { sub: 'u', sid: 'd1' }, { expiresInSec: -120 });
    await refused(verifier.verify(`Bearer ${expired}`, undefined), 'unauthorized', expired, /expired/);
    const withinSkew = await hs256Token(SECRET, { sub: 'u', sid: 'd1' }, { expiresInSec: -10 });
    assert.equal((await verifier.verify(`Bearer ${withinSkew}`, undefined)).user, 'u');
    const early = await hs256Token(SECRET, { sub: 'u', sid: 'd1', nbf: Math.floor(Date.now() / 1000) + 600 });
    await refused(verifier.verify(`Bearer ${early}`, undefined), 'unauthorized', early, /not valid yet/);
  });

  test('issuer and audience must match when configured', async () => {
    const strict = new JwtVerifier({ hs256Secret: SECRET, issuer: 'https://idp.example', audience: 'syncline' });
    const good = await hs256Token(SECRET, { sub: 'u', sid: 'd1', iss: 'https://idp.example', aud: 'syncline' });
    assert.equal((await strict.verify(`Bearer ${good}`, undefined)).user, 'u');
    const wrongIss = await hs256Token(SECRET, { sub: 'u', sid: 'd1', iss: 'https://evil.example', aud: 'syncline' });
    await refused(strict.verify(`Bearer ${wrongIss}`, undefined), 'unauthorized', wrongIss, /issuer/);
    const wrongAud = await hs256Token(SECRET, { sub: 'u', sid: 'd1', iss: 'https://idp.example', aud: 'other' });
    await refused(strict.verify(`Bearer ${wrongAud}`, undefined), 'unauthorized', wrongAud, /audience/);
    const neither = await hs256Token(SECRET, { sub: 'u', sid: 'd1' });
    await refused(strict.verify(`Bearer ${neither}`, undefined), 'unauthorized', neither);
  });

  test('a missing, empty or non-string sub is refused', async () => {
    for (const claims of [{ sid: 'd1' }, { sub: '', sid: 'd1' }, { sub: 42, sid: 'd1' }]) {
      const token = await hs256Token(SECRET, claims);
      const error = await refused(verifier.verify(`Bearer ${token}`, undefined), 'unauthorized', token, /"sub"/);
      assert.equal(error.context.field, 'sub');
    }
  });

  test('a hostile sub or tenant (NUL, control characters, 300 characters) is refused without echoing it', async () => {
    for (const claims of [
      { sub: 'user\u0000admin', sid: 'd1' },
      { sub: 'user\nadmin', sid: 'd1' },
      { sub: 'x'.repeat(300), sid: 'd1' },
      { sub: 'u', tenant_id: 'acme\u0000', sid: 'd1' },
      { sub: 'u', tenant_id: 't'.repeat(201), sid: 'd1' },
    ]) {
      const token = await hs256Token(SECRET, claims);
      const error = await refused(verifier.verify(`Bearer ${token}`, undefined), 'unauthorized', token);
      assert.ok(!error.message.includes('admin') && !error.message.includes('xxxx') && !error.message.includes('tttt'));
    }
    const longest = await hs256Token(SECRET, { sub: 'x'.repeat(200), sid: 'd1' });
    assert.equal((await verifier.verify(`Bearer ${longest}`, undefined)).user.length, 200);
  });

  test('the source comes from the claim, else the header; both differing or neither is refused', async () => {
    const withSid = await hs256Token(SECRET, { sub: 'u', sid: 'device-1' });
    const withoutSid = await hs256Token(SECRET, { sub: 'u' });
    assert.equal((await verifier.verify(`Bearer ${withSid}`, undefined)).source, 'device-1');
    assert.equal((await verifier.verify(`Bearer ${withSid}`, 'device-1')).source, 'device-1');
    assert.equal((await verifier.verify(`Bearer ${withoutSid}`, 'device-2')).source, 'device-2');
    await refused(verifier.verify(`Bearer ${withSid}`, 'device-2'), 'unauthorized', withSid, /different source/);
    await refused(verifier.verify(`Bearer ${withoutSid}`, undefined), 'unauthorized', withoutSid, /no source/);
  });

  test('a source id outside [A-Za-z0-9._:-]{1,200} is refused from claim or header', async () => {
    const withoutSid = await hs256Token(SECRET, { sub: 'u' });
    for (const header of ['', 'dev ice', 'dev/1', 'd'.repeat(201), 'dev\u00001']) {
      await refused(verifier.verify(`Bearer ${withoutSid}`, header), 'unauthorized', withoutSid, /x-syncline-source/);
    }
    for (const sid of ['', 'dev;1', 42]) {
      const token = await hs256Token(SECRET, { sub: 'u', sid });
      await refused(verifier.verify(`Bearer ${token}`, undefined), 'unauthorized', token, /"sid"/);
    }
    assert.equal((await verifier.verify(`Bearer ${withoutSid}`, 'edge-01.site_A:42')).source, 'edge-01.site_A:42');
  });

  test('tenant and source claim names are configurable', async () => {
    const custom = new JwtVerifier({ hs256Secret: SECRET, tenantClaim: 'org', sourceClaim: 'device' });
    const token = await hs256Token(SECRET, { sub: 'u', org: 'o-1', device: 'd-9', tenant_id: 'ignored', sid: 'ignored' });
    assert.deepEqual(await custom.verify(`Bearer ${token}`, undefined), { user: 'u', tenant: 'o-1', source: 'd-9' });
  });

  test('a token without exp is refused by default and accepted only when allowed', async () => {
    const secret = new TextEncoder().encode(SECRET);
    const noExp = await new SignJWT({ sub: 'u', sid: 'd1' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(secret);
    const error = await refused(verifier.verify(`Bearer ${noExp}`, undefined), 'unauthorized', noExp, /no "exp" claim/);
    assert.deepEqual([error.context.field, error.context.reason], ['exp', 'exp_missing']);
    const lenient = new JwtVerifier({ hs256Secret: SECRET, allowNoExp: true });
    assert.equal((await lenient.verify(`Bearer ${noExp}`, undefined)).user, 'u');
  });

  test('a token living longer than the maximum lifetime is refused, counted from iat or from now', async () => {
    const dayAndHour = await hs256Token(SECRET, { sub: 'u', sid: 'd1' }, { expiresInSec: 86_400 + 3600 });
    const error = await refused(verifier.verify(`Bearer ${dayAndHour}`, undefined), 'unauthorized', dayAndHour, /longer than the maximum of 86400 s/);
    assert.equal(error.context.reason, 'lifetime_too_long');
    const day = await hs256Token(SECRET, { sub: 'u', sid: 'd1' }, { expiresInSec: 86_400 });
    assert.equal((await verifier.verify(`Bearer ${day}`, undefined)).user, 'u');
    const hourly = new JwtVerifier({ hs256Secret: SECRET, maxLifetimeSec: 3600 });
    await refused(hourly.verify(`Bearer ${day}`, undefined), 'unauthorized', day, /maximum of 3600 s/);
    // An iat set in the future cannot shorten the measured lifetime; neither can a missing one.
    const now = Math.floor(Date.now() / 1000);
    const secret = new TextEncoder().encode(SECRET);
    const futureIat = await new SignJWT({ sub: 'u', sid: 'd1' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now + 86_000).setExpirationTime(now + 86_400 + 3600).sign(secret);
    await refused(verifier.verify(`Bearer ${futureIat}`, undefined), 'unauthorized', futureIat, /longer than the maximum/);
    const noIat = await new SignJWT({ sub: 'u', sid: 'd1' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now + 2 * 86_400).sign(secret);
    await refused(verifier.verify(`Bearer ${noIat}`, undefined), 'unauthorized', noIat, /longer than the maximum/);
  });

  test('scopeOf gives the user or the tenant, and forbids tenant tables without a tenant claim', async () => {
    const withTenant = await verifier.verify(`Bearer ${await hs256Token(SECRET, { sub: 'u', tenant_id: 'acme', sid: 'd1' })}`, undefined);
    assert.equal(JwtVerifier.scopeOf(withTenant, 'user'), 'u');
    assert.equal(JwtVerifier.scopeOf(withTenant, 'tenant'), 'acme');
    const withoutTenant = await verifier.verify(`Bearer ${await hs256Token(SECRET, { sub: 'u', sid: 'd1' })}`, undefined);
    assert.equal(withoutTenant.tenant, undefined);
    assert.equal(JwtVerifier.scopeOf(withoutTenant, 'user'), 'u');
    assert.throws(() => JwtVerifier.scopeOf(withoutTenant, 'tenant'), (e: unknown) => e instanceof SynclineError && e.code === 'forbidden');
  });
});

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(alg: 'RS256' | 'ES256', kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function signed(key: SigningKey, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid }).setIssuedAt().setExpirationTime('1h').sign(key.privateKey);
}

describe('JWT credentials: JWKS over HTTP', () => {
  let server: Server;
  let jwksUrl: string;
  let fetches = 0;
  const published: JWK[] = [];
  let rsa: SigningKey;
  let ec: SigningKey;

  before(async () => {
    rsa = await signingKey('RS256', 'rsa-1');
    ec = await signingKey('ES256', 'ec-1');
    published.push(rsa.jwk, ec.jwk);
    server = createServer((request, response) => {
      if (request.url !== '/jwks.json') {
        response.writeHead(500).end();
        return;
      }
      fetches += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  });

  test('RS256 and ES256 tokens verify against the served JWKS, fetched once', async () => {
    const jwks = new JwtVerifier({ jwksUrl });
    const before = fetches;
    assert.deepEqual(await jwks.verify(`Bearer ${await signed(rsa, { sub: 'u-rsa', sid: 'd1' })}`, undefined), { user: 'u-rsa', source: 'd1' });
    assert.deepEqual(await jwks.verify(`Bearer ${await signed(ec, { sub: 'u-ec', tenant_id: 't' })}`, 'd2'), { user: 'u-ec', tenant: 't', source: 'd2' });
    assert.equal(fetches - before, 1);
  });

  test('an RS256 token signed by a key not in the JWKS is refused', async () => {
    const jwks = new JwtVerifier({ jwksUrl });
    const rogueSameKid = await signingKey('RS256', rsa.kid);
    const forged = await signed(rogueSameKid, { sub: 'u', sid: 'd1' });
    await refused(jwks.verify(`Bearer ${forged}`, undefined), 'unauthorized', forged, /signature/);
    const rogueNewKid = await signingKey('RS256', 'rogue');
    const unknown = await signed(rogueNewKid, { sub: 'u', sid: 'd1' });
    await refused(jwks.verify(`Bearer ${unknown}`, undefined), 'unauthorized', unknown, /key the JWKS does not hold/);
  });

  test('an HS256 token is refused when only a JWKS is configured (algorithm confusion)', async () => {
    const jwks = new JwtVerifier({ jwksUrl });
    // The classic attack: the RSA public key's bytes used as an HMAC secret.
    const token = await hs256Token(JSON.stringify(rsa.jwk), { sub: 'u', sid: 'd1' });
    await refused(jwks.verify(`Bearer ${token}`, undefined), 'unauthorized', token, /algorithm/);
    const none = `${b64({ alg: 'none' })}.${b64({ sub: 'u', sid: 'd1' })}.`;
    await refused(jwks.verify(`Bearer ${none}`, undefined), 'unauthorized', undefined, /algorithm/);
  });

  test('with both a secret and a JWKS, the token header alg picks the key', async () => {
    const both = new JwtVerifier({ hs256Secret: SECRET, jwksUrl });
    assert.equal((await both.verify(`Bearer ${await hs256Token(SECRET, { sub: 'u-hs' })}`, 'd1')).user, 'u-hs');
    assert.equal((await both.verify(`Bearer ${await signed(ec, { sub: 'u-ec' })}`, 'd1')).user, 'u-ec');
    const wrongSecret = await hs256Token('another-secret-that-is-also-32-bytes-long', { sub: 'u' });
    await refused(both.verify(`Bearer ${wrongSecret}`, 'd1'), 'unauthorized', wrongSecret, /signature/);
  });

  test('key rotation: a kid published after the first fetch is picked up once the refetch cooldown has passed', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const jwks = new JwtVerifier({ jwksUrl });
    assert.equal((await jwks.verify(`Bearer ${await signed(rsa, { sub: 'u' })}`, 'd1')).user, 'u');
    const rotated = await signingKey('ES256', 'ec-2');
    published.push(rotated.jwk);
    const token = await signed(rotated, { sub: 'u-rotated' });
    // jose refetches for an unknown kid at most every 30 s, so random kids cannot hammer the identity provider.
    await refused(jwks.verify(`Bearer ${token}`, 'd1'), 'unauthorized', token, /key the JWKS does not hold/);
    t.mock.timers.tick(31_000);
    const before = fetches;
    assert.equal((await jwks.verify(`Bearer ${token}`, 'd1')).user, 'u-rotated');
    assert.equal(fetches - before, 1);
  });

  test('a JWKS endpoint that fails is unavailable, not unauthorized', async () => {
    const broken = new JwtVerifier({ jwksUrl: jwksUrl.replace('/jwks.json', '/missing') });
    const token = await signed(rsa, { sub: 'u', sid: 'd1' });
    await refused(broken.verify(`Bearer ${token}`, undefined), 'unavailable', token);
  });
});

describe('validateJwtAuthConfig', () => {
  const invalid = (config: JwtAuthConfig, field: RegExp) =>
    assert.throws(() => validateJwtAuthConfig(config), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config' && field.test(e.message));

  test('accepts a secret, a JWKS URL or both', () => {
    validateJwtAuthConfig({ hs256Secret: 'x'.repeat(32) });
    validateJwtAuthConfig({ jwksUrl: 'https://idp.example/.well-known/jwks.json' });
    validateJwtAuthConfig({ hs256Secret: 'x'.repeat(32), jwksUrl: 'http://127.0.0.1:8080/jwks', clockToleranceSec: 0 });
  });

  test('refuses no key source, a short secret, a non-http(s) URL and a bad clock tolerance', () => {
    invalid({}, /secret or a JWKS URL/);
    invalid({ issuer: 'https://idp.example' }, /secret or a JWKS URL/);
    invalid({ hs256Secret: 'x'.repeat(31) }, /32 bytes/);
    invalid({ hs256Secret: '' }, /32 bytes/);
    invalid({ jwksUrl: 'file:///etc/jwks.json' }, /http\(s\)/);
    invalid({ jwksUrl: 'idp.example/jwks' }, /http\(s\)/);
    invalid({ hs256Secret: 'x'.repeat(32), clockToleranceSec: -1 }, /clock tolerance/);
    invalid({ hs256Secret: 'x'.repeat(32), maxLifetimeSec: 0 }, /maximum JWT lifetime/);
    invalid({ hs256Secret: 'x'.repeat(32), maxLifetimeSec: 1.5 }, /maximum JWT lifetime/);
    assert.throws(() => new JwtVerifier({ hs256Secret: 'short' }), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
  });

  test('counts the secret in UTF-8 bytes', () => {
    validateJwtAuthConfig({ hs256Secret: 'é'.repeat(16) });
  });
});
