import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { SynclineError, type ErrorContext } from '../../protocol/errors.js';
import { SOURCE_HEADER, type ScopeKind } from '../../protocol/shared-sync.js';
import { bearerToken } from '../auth/tokens.js';

export interface JwtAuthConfig {
  /** HS256 shared secret (at least 32 bytes). */
  hs256Secret?: string;
  /** URL of a JWKS document with RS256 / ES256 public keys (fetched and cached by jose's createRemoteJWKSet; unknown kid → refetch). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Claim naming the tenant for tables whose scope is 'tenant' (default 'tenant_id'). */
  tenantClaim?: string;
  /** Claim naming the device / source (default 'sid'); when the token has none, the x-syncline-source header names it. */
  sourceClaim?: string;
  /** Allowed clock skew in seconds (default 30). */
  clockToleranceSec?: number;
  /** Longest a token may live, `exp` minus `iat` (or minus now when `iat` is absent or in the future); default a day. */
  maxLifetimeSec?: number;
  /** Accept tokens without `exp` (off by default: such a token, once leaked, is valid forever). */
  allowNoExp?: boolean;
}

/** A leaked token is a key for as long as it lives: a day bounds that unless the operator says otherwise. */
export const DEFAULT_JWT_MAX_LIFETIME_SEC = 86_400;

export interface SharedPrincipal {
  /** `sub` of the token: the user. */
  user: string;
  /** The tenant claim when present. */
  tenant?: string;
  /** The device/source id: from the source claim, else the header. */
  source: string;
}

/** HMAC only with our own secret, public-key algorithms only via the JWKS: a JWKS key can never be used as an HMAC secret. */
const SECRET_ALGORITHMS = ['HS256'];
const JWKS_ALGORITHMS = ['RS256', 'ES256'];
const MIN_SECRET_BYTES = 32;
const MAX_CLAIM_LENGTH = 200;
// C0 and C1 controls: these values end up in logs, SQL rows and headers.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const SOURCE_ID = /^[A-Za-z0-9._:-]{1,200}$/;

export function validateJwtAuthConfig(config: JwtAuthConfig): void {
  const { hs256Secret, jwksUrl, clockToleranceSec } = config;
  if (hs256Secret === undefined && jwksUrl === undefined) {
    throw new SynclineError('invalid_config', 'JWT auth needs an HS256 secret or a JWKS URL (or both)');
  }
  if (hs256Secret !== undefined && Buffer.byteLength(hs256Secret, 'utf8') < MIN_SECRET_BYTES) {
    throw new SynclineError('invalid_config', `the HS256 secret must be at least ${MIN_SECRET_BYTES} bytes`, { field: 'hs256Secret' });
  }
  if (jwksUrl !== undefined && !isHttpUrl(jwksUrl)) {
    throw new SynclineError('invalid_config', 'the JWKS URL must be an absolute http(s) URL', { field: 'jwksUrl' });
  }
  if (clockToleranceSec !== undefined && !(Number.isFinite(clockToleranceSec) && clockToleranceSec >= 0)) {
    throw new SynclineError('invalid_config', 'the clock tolerance must be a non-negative number of seconds', { field: 'clockToleranceSec' });
  }
  const { maxLifetimeSec } = config;
  if (maxLifetimeSec !== undefined && !(Number.isSafeInteger(maxLifetimeSec) && maxLifetimeSec > 0)) {
    throw new SynclineError('invalid_config', 'the maximum JWT lifetime must be a positive whole number of seconds', { field: 'maxLifetimeSec' });
  }
}

export class JwtVerifier {
  readonly #secret: Uint8Array | undefined;
  readonly #jwks: JWTVerifyGetKey | undefined;
  readonly #config: JwtAuthConfig;
  readonly #tenantClaim: string;
  readonly #sourceClaim: string;

  constructor(config: JwtAuthConfig) {
    validateJwtAuthConfig(config);
    this.#config = config;
    this.#secret = config.hs256Secret === undefined ? undefined : new TextEncoder().encode(config.hs256Secret);
    this.#jwks = config.jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(config.jwksUrl));
    this.#tenantClaim = config.tenantClaim ?? 'tenant_id';
    this.#sourceClaim = config.sourceClaim ?? 'sid';
  }

  /** Verifies `authorization` header value ("Bearer <jwt>") and the optional source header value; returns the principal. */
  async verify(authorization: string | undefined, sourceHeader: string | undefined): Promise<SharedPrincipal> {
    if (authorization === undefined) throw unauthorized('the Authorization header is missing');
    const token = bearerToken(authorization);
    if (token === undefined) throw unauthorized('the Authorization header is not "Bearer <token>"');
    const payload = await this.#verifyToken(token);
    const user = claimText(payload.sub, 'sub');
    const tenantValue = payload[this.#tenantClaim];
    const source = this.#source(payload[this.#sourceClaim], sourceHeader);
    return tenantValue === undefined ? { user, source } : { user, tenant: claimText(tenantValue, this.#tenantClaim), source };
  }

  /** The scope value for a table's scope kind; throws SynclineError('forbidden', ...) when the token has no tenant claim but a tenant-scoped table is asked for. */
  static scopeOf(principal: SharedPrincipal, kind: ScopeKind): string {
    if (kind === 'user') return principal.user;
    if (principal.tenant !== undefined) return principal.tenant;
    throw new SynclineError('forbidden', 'this table is shared per tenant but the token carries no tenant claim', { field: 'tenant' });
  }

  async #verifyToken(token: string): Promise<JWTPayload> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized('the bearer token is malformed');
    }
    // With both configured the header's alg picks the key; the algorithm list still pins what that key may verify.
    const useSecret = this.#secret !== undefined && (this.#jwks === undefined || alg === 'HS256');
    const key = useSecret ? this.#secret : this.#jwks;
    const { issuer, audience, clockToleranceSec } = this.#config;
    try {
      const { payload } = await jwtVerify(token, key!, {
        algorithms: useSecret ? SECRET_ALGORITHMS : JWKS_ALGORITHMS,
        clockTolerance: clockToleranceSec ?? 30,
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      });
      this.#checkLifetime(payload);
      return payload;
    } catch (error) {
      if (error instanceof SynclineError) throw error;
      throw refusal(error, !useSecret);
    }
  }

  #checkLifetime(payload: JWTPayload): void {
    const { allowNoExp, maxLifetimeSec = DEFAULT_JWT_MAX_LIFETIME_SEC, clockToleranceSec = 30 } = this.#config;
    if (payload.exp === undefined) {
      if (allowNoExp) return;
      throw unauthorized('the bearer token has no "exp" claim; tokens must expire', { field: 'exp', reason: 'exp_missing' });
    }
    // A future iat would shorten the measured lifetime, so the lifetime counts from now at the latest.
    const now = Math.floor(Date.now() / 1000);
    const lifetime = payload.exp - Math.min(payload.iat ?? now, now);
    if (lifetime > maxLifetimeSec + clockToleranceSec) {
      throw unauthorized(`the bearer token lives ${lifetime} s, longer than the maximum of ${maxLifetimeSec} s`, { field: 'exp', reason: 'lifetime_too_long' });
    }
  }

  #source(claim: unknown, header: string | undefined): string {
    const name = this.#sourceClaim;
    if (claim !== undefined && !(typeof claim === 'string' && SOURCE_ID.test(claim))) {
      throw unauthorized(`the token's "${name}" claim is not a valid source id`, { field: name });
    }
    if (header !== undefined && !SOURCE_ID.test(header)) {
      throw unauthorized(`the ${SOURCE_HEADER} header is not a valid source id`, { field: SOURCE_HEADER });
    }
    if (claim !== undefined && header !== undefined && claim !== header) {
      throw unauthorized(`the ${SOURCE_HEADER} header names a different source than the token's "${name}" claim`, { field: SOURCE_HEADER });
    }
    const source = claim ?? header;
    if (source === undefined) {
      throw unauthorized(`no source: the token has no "${name}" claim and the ${SOURCE_HEADER} header is missing`, { field: SOURCE_HEADER });
    }
    return source;
  }
}

/**
 * A principal an embedding app's own authenticate hook returned, held to the same
 * rules as one read from a JWT: these values become SQL rows, log fields and topics.
 */
export function checkedPrincipal(value: SharedPrincipal): SharedPrincipal {
  const text = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_CLAIM_LENGTH && !CONTROL.test(v);
  let problem: string | undefined;
  if (!text(value?.user)) problem = 'user';
  else if (value.tenant !== undefined && !text(value.tenant)) problem = 'tenant';
  else if (!(typeof value.source === 'string' && SOURCE_ID.test(value.source))) problem = 'source';
  // The app's bug, not the caller's: a 500 that names the field in the log.
  if (problem) throw new SynclineError('internal', `the authenticate hook returned an invalid ${problem}`, { field: problem });
  return value.tenant === undefined ? { user: value.user, source: value.source } : { user: value.user, tenant: value.tenant, source: value.source };
}

function unauthorized(message: string, context: ErrorContext = {}): SynclineError {
  return new SynclineError('unauthorized', message, context);
}

function claimText(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw unauthorized(`the token's "${name}" claim is missing or not a non-empty string`, { field: name });
  }
  if (value.length > MAX_CLAIM_LENGTH || CONTROL.test(value)) {
    throw unauthorized(`the token's "${name}" claim is longer than ${MAX_CLAIM_LENGTH} characters or holds control characters`, { field: name });
  }
  return value;
}

function isHttpUrl(text: string): boolean {
  return URL.canParse(text) && ['http:', 'https:'].includes(new URL(text).protocol);
}

// Failures of the JWKS endpoint are ours, not the device's: a 401 would make it drop a good token.
const KEY_SET_FAULTS = new Set(['ERR_JOSE_GENERIC', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID']);

const CLAIM_MESSAGES: Record<string, string> = {
  nbf: 'the bearer token is not valid yet',
  iss: 'the bearer token has the wrong issuer',
  aud: 'the bearer token has the wrong audience',
};

/** jose's error as a SynclineError; the token itself and its claims never go into the message or cause. */
function refusal(error: unknown, remote: boolean): SynclineError {
  if (remote && (!(error instanceof errors.JOSEError) || KEY_SET_FAULTS.has(error.code))) {
    return new SynclineError('unavailable', 'the JWKS cannot be fetched or read; try again later', {}, { cause: error });
  }
  if (!(error instanceof errors.JOSEError)) return unauthorized('the bearer token is malformed');
  const context = { reason: error.code };
  if (error instanceof errors.JWTExpired) return unauthorized('the bearer token has expired', context);
  if (error instanceof errors.JWTClaimValidationFailed) {
    return unauthorized(CLAIM_MESSAGES[error.claim] ?? `the bearer token's "${error.claim}" claim is not acceptable`, { ...context, field: error.claim });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthorized('the bearer token signature does not verify', context);
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return unauthorized('the bearer token uses an algorithm that is not accepted', context);
  }
  if (error instanceof errors.JWKSNoMatchingKey) return unauthorized('the bearer token is signed by a key the JWKS does not hold', context);
  return unauthorized('the bearer token is malformed', context);
}
