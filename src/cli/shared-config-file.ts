import { readFileSync } from 'node:fs';
import type { SharedSyncConfig } from '../cloud/shared/declarations.js';
import { MIB, SNAPSHOT_LIMIT_DEFAULTS, type SnapshotLimits } from '../cloud/shared/snapshot-limits.js';
import { SynclineError } from '../protocol/errors.js';
import type { OptionTable } from './options.js';

export const sharedConfigOptions = {
  sharedConfig: {
    flag: 'shared-config',
    env: 'SYNCLINE_SHARED_CONFIG',
    kind: 'string',
    description: 'JSON file declaring the shared tables of two-way sync (off when unset); the server refuses to start on a declaration it cannot honour',
  },
  jwtSecret: { flag: 'jwt-secret', env: 'SYNCLINE_JWT_SECRET', kind: 'string', description: 'HS256 secret of device JWTs (overrides auth.hs256_secret in the shared config)', secret: true },
  jwksUrl: { flag: 'jwks-url', env: 'SYNCLINE_JWKS_URL', kind: 'string', description: 'JWKS URL for RS256/ES256 device JWTs (overrides auth.jwks_url in the shared config)' },
  jwtMaxLifetime: {
    flag: 'jwt-max-lifetime',
    env: 'SYNCLINE_JWT_MAX_LIFETIME',
    kind: 'string',
    description: 'longest lifetime (exp - iat) of a device JWT in seconds, default 86400; longer-lived tokens get 401 (overrides auth.max_lifetime_sec)',
  },
  jwtAllowNoExp: {
    flag: 'jwt-allow-no-exp',
    env: 'SYNCLINE_JWT_ALLOW_NO_EXP',
    kind: 'boolean',
    default: false,
    description: 'accept device JWTs without an exp claim (refused by default: a leaked one never expires)',
  },
  provision: {
    flag: 'provision',
    env: 'SYNCLINE_PROVISION',
    kind: 'boolean',
    default: false,
    description: "let the server add Syncline's bookkeeping columns and unique index to declared business tables (tables with a \"schema\"); without it, they are only checked",
  },
  snapshotMaxPerScope: {
    flag: 'snapshot-max-per-scope',
    env: 'SYNCLINE_SNAPSHOT_MAX_PER_SCOPE',
    kind: 'integer',
    default: SNAPSHOT_LIMIT_DEFAULTS.maxPerScope,
    description: 'snapshots one scope may hold at a time, across every server process; a new one frees the oldest',
  },
  snapshotMaxScopeMib: {
    flag: 'snapshot-max-scope-mib',
    env: 'SYNCLINE_SNAPSHOT_MAX_SCOPE_MIB',
    kind: 'integer',
    default: SNAPSHOT_LIMIT_DEFAULTS.maxScopeBytes / MIB,
    description: "MiB one scope's snapshots may hold in PostgreSQL; a build past it fails with 503 unavailable",
  },
  snapshotMaxTotalMib: {
    flag: 'snapshot-max-total-mib',
    env: 'SYNCLINE_SNAPSHOT_MAX_TOTAL_MIB',
    kind: 'integer',
    default: SNAPSHOT_LIMIT_DEFAULTS.maxBytes / MIB,
    description: 'MiB all snapshots may hold in PostgreSQL; past it new snapshots get 503 unavailable until some are freed',
  },
  snapshotIdleSeconds: {
    flag: 'snapshot-idle-seconds',
    env: 'SYNCLINE_SNAPSHOT_IDLE_SECONDS',
    kind: 'integer',
    default: SNAPSHOT_LIMIT_DEFAULTS.idleMs / 1000,
    description: 'a snapshot nobody read for this long is freed (a device still hydrating from it starts over)',
  },
} satisfies OptionTable;

interface SnapshotLimitOptions {
  snapshotMaxPerScope: number;
  snapshotMaxScopeMib: number;
  snapshotMaxTotalMib: number;
  snapshotIdleSeconds: number;
}

/** The snapshot caps of the flags; each must be at least 1. */
export function snapshotLimits(options: SnapshotLimitOptions): Partial<SnapshotLimits> {
  for (const [name, flag] of [
    ['snapshotMaxPerScope', 'snapshot-max-per-scope'],
    ['snapshotMaxScopeMib', 'snapshot-max-scope-mib'],
    ['snapshotMaxTotalMib', 'snapshot-max-total-mib'],
    ['snapshotIdleSeconds', 'snapshot-idle-seconds'],
  ] as const) {
    if (options[name] < 1) throw new SynclineError('invalid_config', `--${flag} must be at least 1, got ${options[name]}`, { field: flag });
  }
  return {
    maxPerScope: options.snapshotMaxPerScope,
    maxScopeBytes: options.snapshotMaxScopeMib * MIB,
    maxBytes: options.snapshotMaxTotalMib * MIB,
    idleMs: options.snapshotIdleSeconds * 1000,
  };
}

/** Reads and validates the shared-table declarations, with credential settings from flags or the environment taking precedence. */
export async function loadSharedConfig(
  options: { sharedConfig: string; jwtSecret: string; jwksUrl: string; jwtMaxLifetime: string; jwtAllowNoExp: boolean; provision?: boolean } & SnapshotLimitOptions,
): Promise<SharedSyncConfig | undefined> {
  if (!options.sharedConfig) return undefined;
  const snapshots = snapshotLimits(options);
  let text: string;
  try {
    text = readFileSync(options.sharedConfig, 'utf8');
  } catch (error) {
    throw new SynclineError('invalid_config', `cannot read the shared config ${options.sharedConfig}: ${(error as Error).message}`, { field: 'shared-config' });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new SynclineError('invalid_config', `the shared config ${options.sharedConfig} is not JSON: ${(error as Error).message}`, { field: 'shared-config' });
  }
  if (typeof document === 'object' && document !== null && !Array.isArray(document)) {
    const auth = { ...((document as { auth?: object }).auth ?? {}) } as Record<string, unknown>;
    if (options.jwtSecret) auth.hs256_secret = options.jwtSecret;
    if (options.jwksUrl) auth.jwks_url = options.jwksUrl;
    if (options.jwtMaxLifetime) auth.max_lifetime_sec = wholeSeconds(options.jwtMaxLifetime);
    if (options.jwtAllowNoExp) auth.allow_no_exp = true;
    document = { ...document, auth };
  }
  // The declarations' zod schemas load only when a config is given (not for `--help`).
  const { parseSharedConfig } = await import('../cloud/shared/declarations.js');
  return { ...parseSharedConfig(document, { requireAuth: true }), provision: options.provision === true, snapshots };
}

function wholeSeconds(text: string): number {
  if (!/^[1-9]\d*$/.test(text)) throw new SynclineError('invalid_config', `--jwt-max-lifetime must be a positive whole number of seconds, got "${text}"`, { field: 'jwt-max-lifetime' });
  return Number(text);
}
