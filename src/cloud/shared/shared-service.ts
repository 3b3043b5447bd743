import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import type { SharedWakeAuth } from '../mqtt/embedded-broker.js';
import type { Store } from '../store/store.js';
import { JwtVerifier } from './credentials.js';
import type { SharedSyncConfig } from './declarations.js';
import { provisionSharedTables } from './provision.js';
import { ScopeEvents } from './scope-events.js';
import { SnapshotBuilder } from './snapshots.js';

/** What the two-way sync routes need, made once per server. */
export interface SharedSync {
  config: SharedSyncConfig;
  /** Absent only when the embedding app authenticates two-way requests itself and no JWT setup was given. */
  verifier: JwtVerifier | undefined;
  events: ScopeEvents;
  snapshots: SnapshotBuilder;
}

/**
 * Checks the credentials setup, then makes PostgreSQL hold the declared tables; either refuses with every problem named.
 * `jwtOptional`: the embedding app authenticates requests itself, so a config without JWT settings is fine.
 */
export async function startSharedSync(store: Store, config: SharedSyncConfig, logger: Logger, options: { jwtOptional?: boolean } = {}): Promise<SharedSync> {
  const { auth } = config;
  const noJwt = auth.hs256_secret === undefined && auth.jwks_url === undefined;
  const verifier = options.jwtOptional && noJwt ? undefined : new JwtVerifier({
    ...(auth.hs256_secret !== undefined ? { hs256Secret: auth.hs256_secret } : {}),
    ...(auth.jwks_url !== undefined ? { jwksUrl: auth.jwks_url } : {}),
    ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
    ...(auth.audience !== undefined ? { audience: auth.audience } : {}),
    ...(auth.tenant_claim !== undefined ? { tenantClaim: auth.tenant_claim } : {}),
    ...(auth.source_claim !== undefined ? { sourceClaim: auth.source_claim } : {}),
    ...(auth.max_lifetime_sec !== undefined ? { maxLifetimeSec: auth.max_lifetime_sec } : {}),
    ...(auth.allow_no_exp !== undefined ? { allowNoExp: auth.allow_no_exp } : {}),
  });
  await provisionSharedTables(store, config, logger.child({ component: 'shared-sync' }));
  logger.info({ tables: config.tables.map((t) => `${t.name} (${t.direction}, ${t.conflict})`) }, 'two-way sync ready');
  const events = new ScopeEvents();
  await events.listen(store, logger.child({ component: 'shared-events' }));
  return { config, verifier, events, snapshots: new SnapshotBuilder(store, config, { ...(config.snapshots ? { limits: config.snapshots } : {}), logger: logger.child({ component: 'shared-snapshots' }) }) };
}

/** How the embedded MQTT broker checks a device that signs in with its sync JWT: the scope it may follow. */
export function sharedWakeAuth(shared: SharedSync): SharedWakeAuth {
  const kind = shared.config.tables[0]?.scope ?? 'user';
  const verifier = shared.verifier;
  if (!verifier) throw new SynclineError('invalid_config', 'MQTT wake-ups of two-way devices need JWT settings (hs256_secret or jwks_url)');
  return async (jwt, source) => JwtVerifier.scopeOf(await verifier.verify(`Bearer ${jwt}`, source), kind);
}
